"""Weekly cache-miss analysis: association rules over the last 7 days, as a Prefect flow."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, task

from cdnlake.run_settings import current_settings
from cdnlake.settings import Settings
from spark_jobs.contract import default_date

WEEK = 7


@task(retries=2, retry_delay_seconds=30)
def analyze_week(settings: Settings, start: dt.date, end: dt.date) -> dict[str, Any]:
    from cdnlake.misses import analyze_misses

    return analyze_misses(settings, start, end, list(settings.distributions) or None)


@flow(name="cdn-weekly-misses", log_prints=True)
def cdn_weekly_misses(end: dt.date | None = None) -> dict[str, Any]:
    """Rules for the 7 days ending with `end` (default: yesterday); writes the miss page and CSVs.

    Settings come from the run's environment (cdnlake/run_settings.py), never from a parameter.
    """
    settings = current_settings()
    end = end or default_date(settings.report_tz)
    start = end - dt.timedelta(days=WEEK - 1)
    result = analyze_week(settings, start, end)
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
