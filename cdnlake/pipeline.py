"""The daily pipeline's stages as plain functions of (services, date, distributions).

Each stage takes dates, URIs and the run's services (cdnlake/services.py: runner, stores, source
lister, clock; never a SparkSession or DataFrame), so the Prefect tasks in flows/daily.py wrap
them one-to-one, tests hand them fakes, and the Spark work runs wherever the runner sends it.

Within a run the source is listed once (`list_raw_files`: D and the earlier dates a late file may
belong to) and that listing feeds the check, the late-file plan and the ingest job; the report's
data is built once (`report_data_for`) and feeds the report and the e-mail, which attaches the
bytes the report stage produced.
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdnlake import report_data, sources
from cdnlake.crosscheck import cloudwatch_crosscheck, crosscheck_data
from cdnlake.late_files import IngestPlan, earlier_dates, plan_ingest
from cdnlake.operations import with_operations
from cdnlake.reconciliation import reconcile_written
from cdnlake.services import Services
from cdnlake.settings import Settings
from cdnlake.sources import SourceFile
from flows.artifacts import flow_run_id
from spark_jobs.commit_files import crowded_partitions, nothing_to_compact
from spark_jobs.log_fields import field_delimiter
from spark_jobs.params import AggregateParams, CompactParams, IngestParams, ListedFile, ReconcileParams

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


def _of_date(listing: list[SourceFile], date: dt.date) -> list[SourceFile]:
    return [f for f in listing if f.date == date.isoformat()]


def list_raw_files(services: Services, date: dt.date, distributions: list[str] | None) -> list[SourceFile]:
    """The run's one listing of the source: D and the earlier dates of the late-file check."""
    return services.source.list({date, *earlier_dates(date, services.settings.late_days)}, distributions)


def recent_volume(services: Services, date: dt.date, distributions: list[str] | None) -> float | None:
    """Average raw bytes per day over the recent days already ingested (None if there are none)."""
    days = [(date - dt.timedelta(days=i)).isoformat() for i in range(1, _RECENT_DAYS + 1)]
    files = report_data.read_table(services.warehouse, "ingest_files", [("dt", "in", days)])
    if files.empty:
        return None
    if distributions:
        files = files[files["distro"].isin(distributions)]
    per_day = files.groupby("dt")["size_bytes"].sum()
    return float(statistics.mean(per_day)) if len(per_day) else None


def check_raw_files(services: Services, date: dt.date, distributions: list[str] | None,
                    listing: list[SourceFile] | None = None) -> RawCheck:  # fmt: skip
    """Look at the date's raw files before loading: none, a format change, low volume.

    `listing`: the run's list_raw_files(); without it (a check on its own) the date is listed here.
    """
    settings = services.settings
    found = _of_date(listing, date) if listing is not None else services.source.list({date}, distributions)
    per_distro: dict[str, int] = {}
    for f in found:
        per_distro[f.distro] = per_distro.get(f.distro, 0) + 1
    check = RawCheck(date.isoformat(), len(found), sum(f.size for f in found), per_distro)
    if not found:
        check.anomalies.append(f"no raw log files for {date} under {settings.source}")
    sample = found[:: max(1, -(-len(found) // sources.SAMPLE_FILES))]  # spread over the day's hours
    delimiter = field_delimiter(settings.v2_delimiter)
    client = services.source.s3_client
    alarm = sources.format_alarm(date, [sources.file_fit(f.uri, client, delimiter) for f in sample])
    if alarm:
        check.anomalies.append(alarm)
    average = recent_volume(services, date, distributions)
    check.recent_average_bytes = average
    if average and check.bytes < settings.min_volume_ratio * average:
        check.anomalies.append(
            f"volume {check.bytes:,} bytes is below {settings.min_volume_ratio:.0%} "
            f"of the recent average {average:,.0f}"
        )
    return check


def dates_to_ingest(services: Services, date: dt.date, distributions: list[str] | None,
                    listing: list[SourceFile]) -> IngestPlan:  # fmt: skip
    """D, and each earlier date with late or changed files, or with files but nothing loaded yet."""
    earlier = earlier_dates(date, services.settings.late_days)
    loaded = report_data.read_table(services.warehouse, "ingest_files", [("dt", "in", [str(d) for d in earlier])])
    wanted = set(distributions) if distributions else None
    return plan_ingest(date, services.settings.late_days, [f for f in listing if f.date != date.isoformat()],
                       loaded, wanted)  # fmt: skip


def listed_files(listing: list[SourceFile], dates: Sequence[dt.date]) -> tuple[ListedFile, ...]:
    """The dates' files of the run's listing, as the ingest job takes them."""
    wanted = {d.isoformat() for d in dates}
    return tuple(ListedFile(f.uri, f.size, int((f.modified or 0) * 1000)) for f in listing if f.date in wanted)


def ingest_params(services: Services, dates: Sequence[dt.date], distributions: list[str] | None,
                  listing: list[SourceFile] | None = None) -> IngestParams:  # fmt: skip
    """One ingest job for `dates` (the newest is the job's date); `listing` (the run's
    list_raw_files) is what the job reads, else it lists the source itself."""
    settings, newest = services.settings, max(dates)
    return IngestParams(date=newest, source=settings.source, warehouse=settings.warehouse,
                        distributions=_ids(distributions), anonymize_ip=settings.anonymize_ip,
                        keep_cookies=settings.keep_cookies, v2_delimiter=settings.v2_delimiter,
                        files=listed_files(listing, dates) if listing is not None else None,
                        dates=tuple(d for d in sorted(set(dates)) if d != newest))  # fmt: skip


def ingest_date(services: Services, date: dt.date, distributions: list[str] | None,
                listing: list[SourceFile] | None = None) -> dict[str, Any]:  # fmt: skip
    """Load one date (`cdnlake ingest`); the job's result."""
    return services.runner.run_job(ingest_params(services, [date], distributions, listing))


def ingest_dates(services: Services, dates: Sequence[dt.date], distributions: list[str] | None,
                 listing: list[SourceFile] | None = None) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Load the run's dates in ONE job (its fixed cost paid once); each date's accounting by ISO
    date, as a job per date returned it."""
    result = services.runner.run_job(ingest_params(services, dates, distributions, listing))
    return {d: result["per_date"][d] for d in sorted(result["per_date"])}


def format_ingest(result: dict[str, Any]) -> str:
    lines = [f"{result['date']}: {result['files']} files, {result['lines_read']:,} lines read, "
             f"{result['loaded']:,} loaded, {result['rejected']:,} rejected"]  # fmt: skip
    for distro, d in sorted(result.get("per_distro", {}).items()):
        lines.append(f"  {distro}: {d['files']} files, {d['lines_read']:,} read, {d['loaded']:,} loaded, "
                     f"{d['rejected']:,} rejected")  # fmt: skip
    return "\n".join(lines)


def compact(services: Services, date: dt.date, distributions: list[str] | None,
            written: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:  # fmt: skip
    """Compact the date's partitions. `written`: the ingest's `files_written` (files per table and
    distro in its own commits); when no partition is crowded the job is not run at all."""
    params = CompactParams(date, services.settings.warehouse, _ids(distributions))
    crowded = crowded_partitions(written, params.max_files) if written is not None else None
    if crowded is not None and not any(crowded.values()):
        return nothing_to_compact(date, written or {})
    return services.runner.run_job(params)


def aggregate(
    services: Services, date: dt.date, distributions: list[str] | None, dates: list[dt.date]
) -> dict[str, Any]:
    s = services.settings
    return services.runner.run_job(AggregateParams(date, s.warehouse, _ids(distributions), s.report_tz, tuple(dates)))


def reconcile(services: Services, date: dt.date, distributions: list[str] | None,
              raw_totals: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:  # fmt: skip
    """Reconcile the date. `raw_totals`: the aggregate job's `raw_totals` (per date): then no Spark
    job, the written tables are checked against them (cdnlake/reconciliation.py)."""
    raw = (raw_totals or {}).get(date.isoformat())
    if raw is None:
        return services.runner.run_job(ReconcileParams(date, services.settings.warehouse, _ids(distributions)))
    return reconcile_written(services.warehouse, date, _ids(distributions), raw)


# ---------------------------------------------------------------- report and e-mail
def report_data_for(services: Services, date: dt.date, distributions: list[str] | None,
                    crosscheck: dict[str, Any] | None = None, late: dict[str, Any] | None = None) -> Any:  # fmt: skip
    """The report's data (reporting.model.ReportData), once per run: the report and the e-mail share it.

    `crosscheck`: a cloudwatch_crosscheck() result (converted here, once); `late`: the run's late
    files (cdnlake.operations.late_files_summary); alerts and usage are always added.
    """
    import dataclasses

    settings = services.settings
    data = report_data.build_report_data(services.warehouse, date, settings.report_tz, distributions, services.now())
    if crosscheck is not None:
        data = dataclasses.replace(data, crosscheck=crosscheck_data(crosscheck))
    return with_operations(settings, data, distributions, late, services.warehouse)


def build_report(services: Services, data: Any) -> dict[str, Any]:
    """Write cdn_statistics.csv, summary.json and cdn_report.pdf of `data` into `<reports>/<date>/`.

    The files are rendered in a private temporary folder, then put into the reports store; the
    CSV and PDF bytes come back too (`attachments`) for the e-mail of the same run.
    """
    from reporting.outputs import CSV_NAME, PDF_NAME, summary_dict, write_outputs

    uris, attachments = {}, {}
    with tempfile.TemporaryDirectory(prefix="cdnlake-report-") as staging:
        for kind, path in write_outputs(data, Path(staging)).items():
            key = f"{data.date.isoformat()}/{path.name}"
            content = path.read_bytes()
            services.reports.write(key, content)
            uris[kind] = services.reports.uri(key)
            if path.name in (CSV_NAME, PDF_NAME):  # what the e-mail attaches
                attachments[path.name] = content
    return {"paths": uris, "summary": summary_dict(data), "attachments": attachments}


def record_stage_seconds(services: Services, date: dt.date, durations: dict[str, float], run_seconds: float) -> bool:
    """Add each stage's seconds to the date's summary.json (written by the report stage, before the
    e-mail stage ended). False, with a warning, when it cannot: the run's work is done by then, and a
    summary without timings is not worth failing it."""
    from reporting.outputs import SUMMARY_NAME, with_stage_seconds

    key = f"{date.isoformat()}/{SUMMARY_NAME}"
    try:
        written = services.reports.read(key)
        if written is None:
            raise FileNotFoundError(f"no {key} in {services.reports.location}")
        services.reports.write(key, with_stage_seconds(written, durations, run_seconds))
        return True
    except Exception as exc:  # see the docstring
        log.warning("stage seconds not added to summary.json: %s: %s", type(exc).__name__, exc)
        return False


def send_email(services: Services, data: Any, resend: bool, attachments: dict[str, bytes] | None = None,
               distributions: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """The morning e-mail of `data`: SES or an .eml in the outbox (services.email_sender); once per date unless forced.

    Once per (date, distribution set), also across crashes and concurrent runs: the ledger in
    the reports store (reporting/ledger.py). `attachments`: the report stage's CSV and PDF bytes
    by file name; without them (an e-mail sent on its own) the ones in the reports store.
    """
    from reporting.delivery import deliver
    from reporting.email import EmailConfig, build_message
    from reporting.ledger import EmailLedger
    from reporting.outputs import CSV_NAME, PDF_NAME

    settings, store, date = services.settings, services.reports, data.date
    body = Path(settings.email_template).read_text(encoding="utf-8") if settings.email_template else None
    config = EmailConfig(
        sender=settings.email_sender, to=list(settings.email_to), cc=list(settings.email_cc),
        bcc=list(settings.email_bcc), environment=settings.environment,
        **({"body_template": body} if body else {}),
    )  # fmt: skip
    files = attachments or {}
    csv, pdf = (files.get(name) or store.read(f"{date.isoformat()}/{name}") for name in (CSV_NAME, PDF_NAME))
    if csv is None or pdf is None:
        raise FileNotFoundError(f"the report of {date} is not in {store.location}: run the report stage first")
    sender = services.email_sender
    result = deliver(date, build_message(data, csv, pdf, config), sender, EmailLedger(store), force=resend,
                     distributions=distributions, run=flow_run_id() or "")  # fmt: skip
    return {"sent": result.sent, "message_id": result.message_id, "detail": result.detail, "via": sender.kind}


def report_and_email(services: Services, date: dt.date, distributions: list[str] | None,
                     resend: bool) -> dict[str, Any]:  # fmt: skip
    """`cdnlake report`: the cross-check, the report and the e-mail of a date, without ingesting."""
    check = safe_crosscheck(services, date, distributions)
    data = report_data_for(services, date, distributions, check)
    report = build_report(services, data)
    result = {"report": report["paths"],
              "email": send_email(services, data, resend, report["attachments"], distributions)}  # fmt: skip
    return result | ({"crosscheck": check} if check is not None else {})


def safe_crosscheck(services: Services, date: dt.date, distributions: list[str] | None) -> dict[str, Any] | None:
    """cloudwatch_crosscheck(), but a CloudWatch outage or missing permission never blocks the report."""
    try:
        return cloudwatch_crosscheck(services.settings, date, distributions, services.warehouse)
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
