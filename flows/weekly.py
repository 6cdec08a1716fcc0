"""Weekly cache-miss analysis: association rules over the last 7 days, as a Prefect flow."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from cdnlake.services import Services, current_services
from spark_jobs.contract import default_date

WEEK = 7


@task(retries=2, retry_delay_seconds=30, cache_policy=NO_CACHE)  # services are not hashable inputs
def analyze_week(services: Services, start: dt.date, end: dt.date) -> dict[str, Any]:
    from cdnlake.misses import analyze_misses

    return analyze_misses(services, start, end, list(services.settings.distributions) or None)


@flow(name="cdn-weekly-misses", log_prints=True)
def cdn_weekly_misses(end: dt.date | None = None) -> dict[str, Any]:
    """Rules for the 7 days ending with `end` (default: yesterday); writes the miss page and CSVs.

    Settings and services come from the run's environment (cdnlake/services.py), never from a parameter.
    """
    services = current_services()  # built once for the run; tests install fakes (use_services)
    end = end or default_date(services.settings.report_tz, services.clock())
    start = end - dt.timedelta(days=WEEK - 1)
    result = analyze_week(services, start, end)
    try:
        from prefect.artifacts import create_markdown_artifact

        rules = result.get("top_rules", [])
        lines = [f"# Cache-miss rules {start} – {end}", "", "| antecedent | consequent | support | confidence | lift |",
                 "|---|---|---|---|---|"]  # fmt: skip
        lines += [f"| {r['antecedent']} | {r['consequent']} | {r['support']:.6f} | {r['confidence']:.2f} | "
                  f"{r['lift']:.2f} |" for r in rules]  # fmt: skip
        create_markdown_artifact("\n".join(lines), key="cdn-weekly-misses")
    except Exception as exc:  # an artifact is a convenience: never fail the analysis for it
        print(f"could not create the artifact: {exc}")
    return result
