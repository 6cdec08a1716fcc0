"""The daily pipeline's stages as plain functions of (settings, date, distributions).

Each stage takes dates, URIs and settings (never a SparkSession or DataFrame), so the Prefect
tasks in flows/daily.py can wrap them one-to-one and the Spark work can run anywhere the runner
sends it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdnlake import report_data, sources
from cdnlake.integrations import aws
from cdnlake.late_files import IngestPlan, earlier_dates, plan_ingest
from cdnlake.operations import with_operations
from cdnlake.runners.local import runner_for
from cdnlake.settings import Settings
from cdnlake.storage import Store
from flows.artifacts import flow_run_id
from spark_jobs.params import AggregateParams, CompactParams, IngestParams, ReconcileParams

log = logging.getLogger(__name__)
_RECENT_DAYS = 7


class StageStopped(RuntimeError):
    """A check decided the run must stop before loading or reporting; the message says why."""


@dataclass
class RawCheck:
    date: str
    files: int
    bytes: int
    per_distro: dict[str, int]
    anomalies: list[str] = field(default_factory=list)
    recent_average_bytes: float | None = None


def _ids(distributions: list[str] | None) -> tuple[str, ...] | None:
    return tuple(distributions) if distributions else None


def _s3_client(settings: Settings) -> Any:
    return aws.s3_client(settings) if settings.source.startswith(("s3://", "s3a://")) else None


def recent_volume(settings: Settings, date: dt.date, distributions: list[str] | None) -> float | None:
    """Average raw bytes per day over the recent days already ingested (None if there are none)."""
    days = [(date - dt.timedelta(days=i)).isoformat() for i in range(1, _RECENT_DAYS + 1)]
    files = report_data.read_table(aws.warehouse(settings), "ingest_files", [("dt", "in", days)])
    if files.empty:
        return None
    if distributions:
        files = files[files["distro"].isin(distributions)]
    per_day = files.groupby("dt")["size_bytes"].sum()
    return float(statistics.mean(per_day)) if len(per_day) else None


def check_raw_files(settings: Settings, date: dt.date, distributions: list[str] | None) -> RawCheck:
    """List the date's raw files and look for trouble before loading: none, a format change, low volume."""
    wanted = set(distributions) if distributions else None
    client = _s3_client(settings)
    found = sources.list_source(settings.source, {date}, wanted, client)
    per_distro: dict[str, int] = {}
    for f in found:
        per_distro[f.distro] = per_distro.get(f.distro, 0) + 1
    check = RawCheck(date.isoformat(), len(found), sum(f.size for f in found), per_distro)
    if not found:
        check.anomalies.append(f"no raw log files for {date} under {settings.source}")
    sample = found[:: max(1, -(-len(found) // sources.SAMPLE_FILES))]  # spread over the day's hours
    alarm = sources.format_alarm(date, [sources.file_fit(f.uri, client) for f in sample])
    if alarm:
        check.anomalies.append(alarm)
    average = recent_volume(settings, date, distributions)
    check.recent_average_bytes = average
    if average and check.bytes < settings.min_volume_ratio * average:
        check.anomalies.append(
            f"volume {check.bytes:,} bytes is below {settings.min_volume_ratio:.0%} "
            f"of the recent average {average:,.0f}"
        )
    return check


def dates_to_ingest(settings: Settings, date: dt.date, distributions: list[str] | None) -> IngestPlan:
    """D, and each earlier date with late or changed files, or with files but nothing loaded yet."""
    earlier = earlier_dates(date, settings.late_days)
    loaded = report_data.read_table(
        aws.warehouse(settings), "ingest_files", [("dt", "in", [d.isoformat() for d in earlier])]
    )
    if distributions and not loaded.empty:
        loaded = loaded[loaded["distro"].isin(distributions)]
    wanted = set(distributions) if distributions else None
    listed = sources.list_source(settings.source, set(earlier), wanted, _s3_client(settings))
    return plan_ingest(date, settings.late_days, listed, loaded)


def ingest_date(settings: Settings, date: dt.date, distributions: list[str] | None) -> dict[str, Any]:
    params = IngestParams(date=date, source=settings.source, warehouse=settings.warehouse,
                          distributions=_ids(distributions), anonymize_ip=settings.anonymize_ip,
                          keep_cookies=settings.keep_cookies, v2_delimiter=settings.v2_delimiter)  # fmt: skip
    return runner_for(settings).run_job(params)


def format_ingest(result: dict[str, Any]) -> str:
    lines = [f"{result['date']}: {result['files']} files, {result['lines_read']:,} lines read, "
             f"{result['loaded']:,} loaded, {result['rejected']:,} rejected"]  # fmt: skip
    for distro, d in sorted(result.get("per_distro", {}).items()):
        lines.append(f"  {distro}: {d['files']} files, {d['lines_read']:,} read, {d['loaded']:,} loaded, "
                     f"{d['rejected']:,} rejected")  # fmt: skip
    return "\n".join(lines)


def compact(settings: Settings, date: dt.date, distributions: list[str] | None) -> dict[str, Any]:
    return runner_for(settings).run_job(CompactParams(date, settings.warehouse, _ids(distributions)))


def aggregate(
    settings: Settings, date: dt.date, distributions: list[str] | None, dates: list[dt.date]
) -> dict[str, Any]:
    params = AggregateParams(date, settings.warehouse, _ids(distributions), settings.report_tz, tuple(dates))
    return runner_for(settings).run_job(params)


def reconcile(settings: Settings, date: dt.date, distributions: list[str] | None) -> dict[str, Any]:
    return runner_for(settings).run_job(ReconcileParams(date, settings.warehouse, _ids(distributions)))


def reports_store(settings: Settings) -> Store:
    """The reports location (local folder or S3): outputs under `<date>/`, the e-mail ledger."""
    return aws.store(settings, settings.reports)


def build_report(
    settings: Settings, date: dt.date, distributions: list[str] | None, crosscheck: dict[str, Any] | None = None,
    late: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write cdn_statistics.csv, summary.json and cdn_report.pdf for the date into `<reports>/<date>/`.

    `crosscheck`: a cloudwatch_crosscheck() result, shown as a small table in the PDF when given.
    The files are rendered in a private temporary folder, then put into the reports store.
    `late`: the run's late files (cdnlake.operations.late_files_summary); alerts and usage are always added.
    """
    from reporting.outputs import summary_dict, write_outputs

    data = report_data.build_report_data(
        aws.warehouse(settings), date, settings.report_tz, distributions, dt.datetime.now(dt.UTC).replace(tzinfo=None)
    )
    if crosscheck is not None:
        data = dataclasses.replace(data, crosscheck=crosscheck_data(crosscheck))
    data = with_operations(settings, data, distributions, late)
    store = reports_store(settings)
    uris = {}
    with tempfile.TemporaryDirectory(prefix="cdnlake-report-") as staging:
        for kind, path in write_outputs(data, Path(staging)).items():
            key = f"{date.isoformat()}/{path.name}"
            store.write(key, path.read_bytes())
            uris[kind] = store.uri(key)
    return {"paths": uris, "summary": summary_dict(data)}


def send_email(
    settings: Settings, date: dt.date, distributions: list[str] | None, resend: bool,
    crosscheck: dict[str, Any] | None = None, late: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The morning e-mail: SES when enabled, else an .eml in the outbox; once per date unless forced.

    Once per (date, distribution set), also across crashes and concurrent runs: the ledger in
    the reports store (reporting/ledger.py). The CSV and PDF attached are the ones in the store.
    `crosscheck`: a cloudwatch_crosscheck() result, added as a line under the body when given.
    """
    from reporting.delivery import OutboxSender, SesSender, deliver
    from reporting.email import EmailConfig, build_message
    from reporting.ledger import EmailLedger
    from reporting.outputs import CSV_NAME, PDF_NAME

    store = reports_store(settings)
    data = report_data.build_report_data(
        aws.warehouse(settings), date, settings.report_tz, distributions, dt.datetime.now(dt.UTC).replace(tzinfo=None)
    )
    if crosscheck is not None:
        data = dataclasses.replace(data, crosscheck=crosscheck_data(crosscheck))
    data = with_operations(settings, data, distributions, late)
    body = Path(settings.email_template).read_text(encoding="utf-8") if settings.email_template else None
    config = EmailConfig(
        sender=settings.email_sender, to=list(settings.email_to), cc=list(settings.email_cc),
        bcc=list(settings.email_bcc), environment=settings.environment,
        **({"body_template": body} if body else {}),
    )  # fmt: skip
    attachments = [store.read(f"{date.isoformat()}/{name}") for name in (CSV_NAME, PDF_NAME)]
    if None in attachments:
        raise FileNotFoundError(f"the report of {date} is not in {store.location}: run the report stage first")
    message = build_message(data, attachments[0], attachments[1], config)
    if settings.ses_enabled:
        import boto3

        sender: Any = SesSender(boto3.client("sesv2", region_name=settings.aws_region))
    else:
        sender = OutboxSender(Path(settings.outbox))
    result = deliver(date, message, sender, EmailLedger(store), force=resend, distributions=distributions,
                     run=flow_run_id() or "")  # fmt: skip
    return {"sent": result.sent, "message_id": result.message_id, "detail": result.detail, "via": sender.kind}


def report_and_email(
    settings: Settings, date: dt.date, distributions: list[str] | None, resend: bool
) -> dict[str, Any]:
    check = safe_crosscheck(settings, date, distributions)
    report = build_report(settings, date, distributions, check)
    result = {"report": report["paths"], "email": send_email(settings, date, distributions, resend, check)}
    return result | ({"crosscheck": check} if check is not None else {})


def safe_crosscheck(settings: Settings, date: dt.date, distributions: list[str] | None) -> dict[str, Any] | None:
    """cloudwatch_crosscheck(), but a CloudWatch outage or missing permission never blocks the report."""
    try:
        return cloudwatch_crosscheck(settings, date, distributions)
    except Exception as exc:  # the cross-check is a second opinion, the report is the product
        log.warning("cloudwatch cross-check skipped: %s: %s", type(exc).__name__, exc)
        return None


# ---------------------------------------------------------------- catalog and CloudWatch cross-check


def register_catalog(settings: Settings) -> dict[str, Any] | None:
    """Register the Delta tables in Glue (create or update); None with the embedded default (no catalog)."""
    if not settings.glue_database:
        return None
    import boto3

    from cdnlake.integrations import glue as catalog

    glue = boto3.client("glue", region_name=settings.aws_region)
    tables = catalog.register_tables(glue, settings.glue_database, settings.warehouse, settings.glue_table_prefix)
    return {"catalog": "glue", "database": settings.glue_database, "tables": tables}


def logs_hourly(warehouse: str | report_data.Warehouse, start: dt.datetime, end: dt.datetime,
                distributions: list[str] | None) -> Any:  # fmt: skip
    """stats_hourly rows in [start, end) (naive UTC) as distro, ts, request_count, bytes_requested."""
    import pandas as pd

    rows = report_data.read_table(warehouse, "stats_hourly", [("dt", "in", report_data.utc_dates(start, end))])
    columns = ["distro", "ts", "request_count", "bytes_requested"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    if distributions:
        rows = rows[rows["distro"].isin(distributions)]
    rows = rows.assign(ts=pd.to_datetime(rows["dt"]) + pd.to_timedelta(rows["hour"], unit="h"))
    return rows[(rows["ts"] >= start) & (rows["ts"] < end)][columns].reset_index(drop=True)


def _known_distributions(settings: Settings, date: dt.date) -> list[str]:
    """Distributions seen in the last week: one whose logs stopped arriving entirely is still checked."""
    days = [(date - dt.timedelta(days=i)).isoformat() for i in range(_RECENT_DAYS + 1)]
    rows = report_data.read_table(aws.warehouse(settings), "stats_hourly", [("dt", "in", days)])
    return sorted(rows["distro"].unique().tolist()) if not rows.empty else []


def cloudwatch_crosscheck(settings: Settings, date: dt.date, distributions: list[str] | None) -> dict[str, Any] | None:
    """Logs vs CloudWatch for report day D (None when not configured): table, alerts, summary line.

    JSON-friendly, so it can be a task result and go into summary.json; crosscheck_data() turns it
    into the report's CrossCheck.
    """
    if not settings.cloudwatch_enabled:
        return None
    import boto3

    from cdnlake.integrations import cloudwatch

    start, end = report_data.utc_range(date, settings.report_tz)
    ids = list(distributions or settings.distributions or _known_distributions(settings, date))
    client = boto3.client("cloudwatch", region_name=cloudwatch.CLOUDFRONT_REGION)
    metrics = cloudwatch.fetch_hourly(client, ids, date, start, end)
    logs = logs_hourly(aws.warehouse(settings), start, end, ids)
    table, alerts = cloudwatch.compare(metrics, logs, settings.cloudwatch_threshold_pct)
    for line in alerts:
        log.warning("cloudwatch cross-check: %s", line)
    records = table.astype(object).where(table.notna(), None).to_dict(orient="records")
    result = {"date": date.isoformat(), "window_utc": [start.isoformat(), end.isoformat()],
              "threshold_pct": settings.cloudwatch_threshold_pct, "table": records, "alerts": alerts}  # fmt: skip
    result["summary"] = crosscheck_data(result).summary_line()
    return result


def crosscheck_data(result: dict[str, Any] | None) -> Any:
    """The report's CrossCheck from a cloudwatch_crosscheck() result (None stays None)."""
    if result is None:
        return None
    import pandas as pd

    from reporting.model import CROSSCHECK_COLUMNS, CrossCheck

    table = pd.DataFrame(result["table"], columns=list(CROSSCHECK_COLUMNS))
    return CrossCheck(table=table, alerts=list(result["alerts"]), threshold_pct=float(result["threshold_pct"]))
