"""The run's summary as Prefect artifacts: what the operators look at in the UI after each run.

Rendering is pure (tested without a server); `publish_artifacts` only calls the Prefect API and
never fails the run: the report and the e-mail matter, the artifacts are a convenience.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from cdnlake.operations import operations_markdown
from reporting.insights import day_header

log = logging.getLogger(__name__)

GB = 2**30
# Artifact keys: lower-case letters, digits and dashes (Prefect rejects anything else).
SUMMARY_KEY = "cdn-daily-summary"
INSIGHTS_KEY = "cdn-daily-insights"
PDF_KEY = "cdn-report-pdf"
CSV_KEY = "cdn-statistics-csv"


def uri_for(path: str) -> str:
    """A link the UI can open: s3 URIs as they are, local paths as absolute file:// URIs."""
    if path.startswith(("s3://", "s3a://", "http://", "https://", "file://")):
        return path
    return Path(path).resolve().as_uri()


def run_url() -> str | None:
    """The flow run's page in the Prefect UI, when there is a UI to link to."""
    from prefect.runtime import flow_run

    url = flow_run.ui_url
    # Without PREFECT_UI_URL (e.g. the temporary local server) Prefect returns "None/flow-runs/...".
    return url if isinstance(url, str) and url.startswith("http") else None


def flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    return flow_run.id


def ingest_totals(results: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Files and lines over the dates ingested by a run."""
    keys = ("files", "lines_read", "loaded", "rejected", "damaged_files")
    return {k: sum(int(r.get(k, 0)) for r in results.values()) for k in keys}


def day_totals(report_summary: dict[str, Any], date: dt.date) -> dict[str, Any]:
    """Requests, bytes and peak of the report day, for the COMPLETE line and the summary."""
    days = {str(k): v for k, v in (report_summary.get("days") or {}).items()}
    day = days.get(date.isoformat(), {})
    requested = int(day.get("bytes_requested", 0))
    return {"requests": int(day.get("request_count", 0)), "bytes": requested, "gb": round(requested / GB, 2),
            "peak": report_summary.get("peak_text")}  # fmt: skip


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    return [_row(headers), _row(["---"] * len(headers)), *(_row(r) for r in rows)]


def render_markdown(summary: dict[str, Any]) -> str:
    """Totals, peak, data quality and the duration of each stage, as Markdown."""
    totals = summary.get("totals") or {}
    quality = summary.get("quality") or {}
    ingest = summary.get("ingest") or {}
    lines = [f"# CDN daily {summary.get('date')}", ""]
    lines += [f"- distributions: {', '.join(summary.get('distributions') or []) or 'all'}",
              f"- dates ingested: {', '.join(summary.get('dates_ingested') or []) or 'none'}",
              f"- requests: {int(totals.get('requests', 0)):,}",
              f"- bytes requested: {float(totals.get('gb', 0.0)):,.2f} GB",
              f"- peak: {summary.get('peak_text') or 'n/a'}",
              f"- e-mail: {(summary.get('email') or {}).get('detail', 'not sent')}", ""]  # fmt: skip
    lines += ["## Data quality", ""]
    lines += _table(
        ["files", "damaged files", "lines read", "loaded", "rejected"],
        [[quality.get(k, 0) for k in ("files", "damaged_files", "lines_read", "loaded", "rejected")]],
    )
    per_date = ingest.get("per_date") or {}
    if per_date:
        lines += ["", "## Ingest", ""]
        lines += _table(["date", "files", "lines read", "loaded", "rejected"],
                        [[d, r.get("files", 0), r.get("lines_read", 0), r.get("loaded", 0), r.get("rejected", 0)]
                         for d, r in sorted(per_date.items())])  # fmt: skip
    durations = summary.get("durations") or {}
    lines += ["", "## Stages", ""]
    lines += _table(["stage", "seconds"], [[stage, f"{secs:.1f}"] for stage, secs in durations.items()])
    if summary.get("anomalies"):
        lines += ["", "## Anomalies", "", *(f"- {a}" for a in summary["anomalies"])]
    lines += operations_markdown(summary)
    return "\n".join(lines) + "\n"


def insights_rows(summary: dict[str, Any]) -> list[dict[str, str]]:
    """The day-over-day table (MEASURES | JUN-08 | JUN-09 | TREND) as records for a table artifact."""
    rows = []
    for record in summary.get("insights") or []:
        previous = day_header(dt.date.fromisoformat(record["previous_date"]))
        current = day_header(dt.date.fromisoformat(record["current_date"]))
        rows.append({"MEASURES": record["measure"], previous: record["previous"], current: record["current"],
                     "TREND": record["trend"]})  # fmt: skip
    return rows


@task(name="publish-artifacts", cache_policy=NO_CACHE)
def publish_artifacts(summary: dict[str, Any]) -> list[str]:
    """Create the markdown, table and link artifacts of a run; returns the keys created."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    date = summary.get("date", "")
    created: list[str] = []
    try:
        create_markdown_artifact(render_markdown(summary), key=SUMMARY_KEY, description=f"CDN daily summary {date}")
        created.append(SUMMARY_KEY)
        rows = insights_rows(summary)
        if rows:
            create_table_artifact(rows, key=INSIGHTS_KEY, description=f"Day-over-day insights {date}")
            created.append(INSIGHTS_KEY)
        report = summary.get("report") or {}
        for key, kind, text in ((PDF_KEY, "pdf", "cdn_report.pdf"), (CSV_KEY, "csv", "cdn_statistics.csv")):
            if report.get(kind):
                create_link_artifact(uri_for(report[kind]), link_text=f"{text} ({date})", key=key,
                                     description=f"{text} of {date}")  # fmt: skip
                created.append(key)
    except Exception as exc:  # the run's real outputs are already written; don't fail it for the UI
        log.warning("could not create Prefect artifacts: %s: %s", type(exc).__name__, exc)
    return created
