"""The daily pipeline's stages as plain functions of (settings, date, distributions).

Each stage takes dates, URIs and settings (never a SparkSession or DataFrame), so the Prefect
tasks in flows/daily.py can wrap them one-to-one and the Spark work can run anywhere the runner
sends it.
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows import report_data, sources
from flows.runner import runner_for
from flows.settings import Settings

log = logging.getLogger(__name__)
REPORT_WINDOW_DAYS = 3
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


def _job_args(settings: Settings, date: dt.date, distributions: list[str] | None, source: bool = False) -> list[str]:
    args = ["--date", date.isoformat(), "--warehouse", settings.warehouse]
    if source:
        args += ["--source", settings.source]
    if distributions:
        args += ["--distributions", ",".join(distributions)]
    return args


def _s3_client(settings: Settings) -> Any:
    if not settings.source.startswith(("s3://", "s3a://")):
        return None
    import boto3

    return boto3.client("s3", region_name=settings.aws_region)


def recent_volume(settings: Settings, date: dt.date, distributions: list[str] | None) -> float | None:
    """Average raw bytes per day over the recent days already ingested (None if there are none)."""
    days = [(date - dt.timedelta(days=i)).isoformat() for i in range(1, _RECENT_DAYS + 1)]
    files = report_data.read_table(settings.warehouse, "ingest_files", [("dt", "in", days)])
    if files.empty:
        return None
    if distributions:
        files = files[files["distro"].isin(distributions)]
    per_day = files.groupby("dt")["size_bytes"].sum()
    return float(statistics.mean(per_day)) if len(per_day) else None


def check_raw_files(settings: Settings, date: dt.date, distributions: list[str] | None) -> RawCheck:
    """List the date's raw files and look for trouble before loading: none, bad columns, low volume."""
    wanted = set(distributions) if distributions else None
    found = sources.list_source(settings.source, {date}, wanted, _s3_client(settings))
    per_distro: dict[str, int] = {}
    for f in found:
        per_distro[f.distro] = per_distro.get(f.distro, 0) + 1
    check = RawCheck(date.isoformat(), len(found), sum(f.size for f in found), per_distro)
    if not found:
        check.anomalies.append(f"no raw log files for {date} under {settings.source}")
    for f in found[:: max(1, len(found) // 20)]:  # a sample of files is enough to catch a format change
        if not f.uri.startswith("s3"):
            check.anomalies += sources.column_count_problems(f.uri)[:3]
    average = recent_volume(settings, date, distributions)
    check.recent_average_bytes = average
    if average and check.bytes < settings.min_volume_ratio * average:
        check.anomalies.append(
            f"volume {check.bytes:,} bytes is below {settings.min_volume_ratio:.0%} "
            f"of the recent average {average:,.0f}"
        )
    return check


def dates_to_ingest(settings: Settings, date: dt.date, distributions: list[str] | None) -> list[dt.date]:
    """D always; D-1 and D-2 too when they have raw files but nothing in the warehouse yet."""
    earlier = [date - dt.timedelta(days=i) for i in range(REPORT_WINDOW_DAYS - 1, 0, -1)]
    loaded = report_data.read_table(
        settings.warehouse, "ingest_files", [("dt", "in", [d.isoformat() for d in earlier])]
    )
    done = set(loaded["dt"]) if not loaded.empty else set()
    missing = [d for d in earlier if d.isoformat() not in done]
    wanted = set(distributions) if distributions else None
    with_files = {f.date for f in sources.list_source(settings.source, set(missing), wanted, _s3_client(settings))}
    return [d for d in missing if d.isoformat() in with_files] + [date]


def ingest_date(settings: Settings, date: dt.date, distributions: list[str] | None) -> dict[str, Any]:
    args = _job_args(settings, date, distributions, source=True) + ["--anonymize-ip", settings.anonymize_ip]
    if settings.keep_cookies:
        args.append("--keep-cookies")
    return runner_for(settings).run_job("ingest", args)


def format_ingest(result: dict[str, Any]) -> str:
    lines = [f"{result['date']}: {result['files']} files, {result['lines_read']:,} lines read, "
             f"{result['loaded']:,} loaded, {result['rejected']:,} rejected"]  # fmt: skip
    for distro, d in sorted(result.get("per_distro", {}).items()):
        lines.append(f"  {distro}: {d['files']} files, {d['lines_read']:,} read, {d['loaded']:,} loaded, "
                     f"{d['rejected']:,} rejected")  # fmt: skip
    return "\n".join(lines)


def compact(settings: Settings, date: dt.date, distributions: list[str] | None) -> dict[str, Any]:
    return runner_for(settings).run_job("compact", _job_args(settings, date, distributions))


def aggregate(
    settings: Settings, date: dt.date, distributions: list[str] | None, dates: list[dt.date]
) -> dict[str, Any]:
    args = _job_args(settings, date, distributions) + ["--report-tz", settings.report_tz]
    if dates:
        args += ["--dates", ",".join(d.isoformat() for d in dates)]
    return runner_for(settings).run_job("aggregate", args)


def reconcile(settings: Settings, date: dt.date, distributions: list[str] | None) -> dict[str, Any]:
    return runner_for(settings).run_job("reconcile", _job_args(settings, date, distributions))


def report_dir(settings: Settings, date: dt.date) -> Path:
    if settings.reports.startswith("s3"):
        raise NotImplementedError("s3 reports are uploaded by flows.storage.publish_reports")
    return Path(settings.reports) / date.isoformat()


def build_report(settings: Settings, date: dt.date, distributions: list[str] | None) -> dict[str, Any]:
    """Write cdn_statistics.csv, summary.json and cdn_report.pdf for the date from the tables."""
    from reporting.outputs import summary_dict, write_outputs

    data = report_data.build_report_data(
        settings.warehouse, date, settings.report_tz, distributions, dt.datetime.now(dt.UTC).replace(tzinfo=None)
    )
    paths = write_outputs(data, report_dir(settings, date))
    return {"paths": {k: str(v) for k, v in paths.items()}, "summary": summary_dict(data)}


def send_email(settings: Settings, date: dt.date, distributions: list[str] | None, resend: bool) -> dict[str, Any]:
    """The morning e-mail: SES when enabled, else an .eml in the outbox; once per date unless forced."""
    from reporting.delivery import OutboxSender, SesSender, deliver
    from reporting.email import EmailConfig, build_message
    from reporting.ledger import SentLedger

    folder = report_dir(settings, date)
    data = report_data.build_report_data(
        settings.warehouse, date, settings.report_tz, distributions, dt.datetime.now(dt.UTC).replace(tzinfo=None)
    )
    body = Path(settings.email_template).read_text(encoding="utf-8") if settings.email_template else None
    config = EmailConfig(
        sender=settings.email_sender, to=list(settings.email_to), cc=list(settings.email_cc),
        bcc=list(settings.email_bcc), environment=settings.environment,
        **({"body_template": body} if body else {}),
    )  # fmt: skip
    message = build_message(
        data, (folder / "cdn_statistics.csv").read_bytes(), (folder / "cdn_report.pdf").read_bytes(), config
    )
    if settings.ses_enabled:
        import boto3

        sender: Any = SesSender(boto3.client("sesv2", region_name=settings.aws_region))
        ledger_path = Path(settings.reports) / "sent_ledger.json"
    else:
        sender = OutboxSender(Path(settings.outbox))
        ledger_path = Path(settings.outbox) / "sent_ledger.json"
    result = deliver(date, message, sender, SentLedger(ledger_path), force=resend)
    return {"sent": result.sent, "message_id": result.message_id, "detail": result.detail, "via": sender.kind}


def report_and_email(
    settings: Settings, date: dt.date, distributions: list[str] | None, resend: bool
) -> dict[str, Any]:
    report = build_report(settings, date, distributions)
    return {"report": report["paths"], "email": send_email(settings, date, distributions, resend)}
