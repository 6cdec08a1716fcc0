"""Prefect 3 flows: `cdn-daily` (one UTC date) and `cdn-backfill` (a range of dates).

Stages (tasks), in order: check raw files -> ingest -> compact -> aggregate -> reconcile -> report ->
e-mail. Reconciliation compares the statistics tables with the raw rows of `cdn_logs`, so it runs
after aggregate (SPEC section 6 lists it earlier, but there is nothing to compare before the
statistics exist); a mismatch stops the run before anything is reported or e-mailed.

Warehouse writes (ingest, compact, aggregate) hold a slot of the Prefect global concurrency limit
`cdnlake-warehouse-writes`, so a backfill, the daily schedule and a manual re-run never write the
tables at the same time. Create it once per Prefect server:

    prefect gcl create cdnlake-warehouse-writes --limit 1

Without it the writes are serialised within the process only (and a line says so).

Besides, a run holds the lock of every date it writes (cdnlake/locks.py: a lock file or S3 object
under the warehouse, seen by every process) from ingest to the e-mail, so a second run of the same
date started anywhere waits for the first (CDNLAKE_LOCK_WAIT_SECONDS) or fails saying who holds it.
The date locks are taken before the global limit's slot, in date order: no run waits for a slot
while holding up another.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency as global_concurrency
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from cdnlake import locks, operations, pipeline
from cdnlake.notify import StageProgress
from cdnlake.services import Services, current_services, use_services
from cdnlake.settings import Settings
from flows.artifacts import day_totals, flow_run_id, ingest_totals, publish_artifacts, run_url
from spark_jobs.contract import default_date

log = logging.getLogger(__name__)

DAILY_FLOW = "cdn-daily"
WRITE_LIMIT = "cdnlake-warehouse-writes"
STAGES = ("check", "ingest", "compact", "aggregate", "reconcile", "report", "email")
_LOCAL_WRITES = threading.Lock()

# Caching off everywhere: a re-run of a date must really re-ingest, re-aggregate and re-check.
# Listing, Spark submission and e-mail are I/O: retried with exponential backoff and jitter so a
# throttled S3 listing or a busy cluster gets a second chance without a thundering herd.
_IO: dict[str, Any] = dict(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=10),
                             retry_jitter_factor=0.5, cache_policy=NO_CACHE)  # fmt: skip
# Spark jobs replace whole partitions (idempotent), so a retry is safe; they are long, so fewer.
_SPARK: dict[str, Any] = dict(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=30),
                              retry_jitter_factor=0.5, cache_policy=NO_CACHE)  # fmt: skip


class BackfillError(RuntimeError):
    """Some dates of a backfill failed; the message lists them."""


# ---------------------------------------------------------------- tasks (one per stage)
# The stages are plain functions of cdnlake.pipeline; these wrap them one-to-one. Each takes the
# run's services (built once per flow run, cdnlake/services.py) as its first argument. Task results
# stay in memory within the flow run (NO_CACHE: nothing is persisted), so the listing and the
# report data are handed from one task to the next, not rebuilt.
list_raw_files_task = task(name="list-raw-files", **_IO)(pipeline.list_raw_files)
check_raw_files_task = task(name="check-raw-files", **_IO)(pipeline.check_raw_files)
dates_to_ingest_task = task(name="dates-to-ingest", **_IO)(pipeline.dates_to_ingest)
# One ingest job for all the run's dates. A retry re-runs it whole, which is idempotent: each date's
# partitions are replaced (replaceWhere), never appended to.
ingest_task = task(name="ingest", **_SPARK)(pipeline.ingest_dates)
compact_task = task(name="compact", task_run_name="compact-{date}", **_SPARK)(pipeline.compact)
aggregate_task = task(name="aggregate", **_SPARK)(pipeline.aggregate)
report_data_task = task(name="report-data", task_run_name="report-data-{date}", retries=1, retry_delay_seconds=10,
                        cache_policy=NO_CACHE)(pipeline.report_data_for)  # fmt: skip
build_report_task = task(name="build-report", retries=1, retry_delay_seconds=10,
                         cache_policy=NO_CACHE)(pipeline.build_report)  # fmt: skip


def _worth_retrying_email(task: Any, task_run: Any, state: Any) -> bool:
    """Not when the ledger says the e-mail may have gone out (EmailStateUnknown: an operator
    decides, with --resend-email) or SES refused it for good: a retry would only repeat that."""
    from reporting.delivery import DeliveryError
    from reporting.ledger import EmailStateUnknown

    error = state.data
    return not isinstance(error, EmailStateUnknown) and not (isinstance(error, DeliveryError) and error.permanent)


send_email_task = task(name="send-email", retry_condition_fn=_worth_retrying_email, **_IO)(pipeline.send_email)
# The reconcile job raises on any mismatch; bad data does not improve on a retry.
reconcile_task = task(name="reconcile", task_run_name="reconcile-{date}", retries=0,
                      cache_policy=NO_CACHE)(pipeline.reconcile)  # fmt: skip
catalog_task = task(name="register-catalog", **_IO)(pipeline.register_catalog)
# Never raises (a CloudWatch outage must not block the report); None when not configured.
crosscheck_task = task(name="cloudwatch-crosscheck", cache_policy=NO_CACHE)(pipeline.safe_crosscheck)


def _limit_exists(name: str) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            client.read_global_concurrency_limit_by_name(name)
        return True
    except ObjectNotFound:
        return False


@contextmanager
def warehouse_writes() -> Iterator[None]:
    """Hold a slot of the global limit for the warehouse writes (or a process lock without it)."""
    if _limit_exists(WRITE_LIMIT):
        with global_concurrency(WRITE_LIMIT, occupy=1):
            yield
        return
    log.debug("global concurrency limit %s does not exist: writes are serialised in this process only "
             "(create it with `prefect gcl create %s --limit 1`)", WRITE_LIMIT, WRITE_LIMIT)  # fmt: skip
    with _LOCAL_WRITES:
        yield


def _handle_anomalies(run: StageProgress, settings: Settings, check: pipeline.RawCheck) -> None:
    """Tell the operators about suspicious raw files; stop unless CDNLAKE_ON_ANOMALY=continue."""
    if not check.anomalies:
        return
    shown = "; ".join(check.anomalies[:5]) + (
        f" (+{len(check.anomalies) - 5} more)" if len(check.anomalies) > 5 else ""
    )
    stop = settings.on_anomaly == "stop"
    action = "stopping" if stop else "continuing (CDNLAKE_ON_ANOMALY=continue)"
    run.event("warning", detail=f"raw files of {check.date} look wrong: {shown}; {action}")
    if stop:
        raise pipeline.StageStopped(
            f"raw files of {check.date} look wrong: {shown}. Fix the source, or set CDNLAKE_ON_ANOMALY=continue "
            "to load them anyway"
        )


# ---------------------------------------------------------------- the flows
def _run_stages(run: StageProgress, services: Services, date: dt.date, distributions: list[str] | None,
                resend_email: bool) -> dict[str, Any]:  # fmt: skip
    settings = services.settings
    with run.stage("check"):
        listing = list_raw_files_task(services, date, distributions)  # the run's only listing of the source
        check = check_raw_files_task(services, date, distributions, listing)
        _handle_anomalies(run, settings, check)
        plan = dates_to_ingest_task(services, date, distributions, listing)
        dates = plan.dates
    with ExitStack() as date_locks, ExitStack() as writes, ExitStack() as spark_app:
        with run.stage("ingest"):  # waiting for (or failing on) another run's date lock shows here
            held = date_locks.enter_context(locks.date_locks(
                settings, dates, flow_run_id(), on_wait=lambda text: run.event("warning", detail=text)))  # fmt: skip
            writes.enter_context(warehouse_writes())
            # On Kubernetes the run's Spark jobs share one SparkApplication (cdnlake/runners/k8s_run.py).
            spark_app.enter_context(services.runner.application(flow_run_id() or ""))
            held.check()  # a run that lost a date's lock stops before its next write or e-mail
            ingested = ingest_task(services, dates, distributions, listing)
            late = operations.late_files_summary(plan, ingested)
            for line in late["lines"]:
                run.event("warning", detail=line)
        with run.stage("compact"):
            for d in dates:
                held.check()
                compact_task(services, d, distributions, ingested[d.isoformat()].get("files_written"))
        with run.stage("aggregate"):
            held.check()
            aggregated = aggregate_task(services, date, distributions, dates)
            catalog = catalog_task(settings)
        writes.close()  # the date locks stay: reconcile checks what this run wrote, the e-mail is once per date
        with run.stage("reconcile"):  # every date whose rows changed; a mismatch stops the run here
            raw = aggregated.get("raw_totals")  # the aggregate's scan: no second read of cdn_logs
            reconciled = {d.isoformat(): reconcile_task(services, d, distributions, raw) for d in dates}
        spark_app.close()  # the report and the e-mail need no Spark
        with run.stage("report"):
            crosscheck = crosscheck_task(services, date, distributions)
            data = report_data_task(services, date, distributions, crosscheck, late)  # once: report and e-mail
            held.check()
            report = build_report_task(services, data)
        with run.stage("email"):
            held.check()
            email = send_email_task(services, data, resend_email, report["attachments"], distributions)
    figures = report["summary"]
    operations.announce(run, figures.get("alerts") or [], settings, date)
    return {
        "date": date.isoformat(),
        "distributions": list(distributions or []),
        "dates_ingested": sorted(ingested),
        "anomalies": list(check.anomalies),
        "ingest": {"totals": ingest_totals(ingested), "per_date": ingested},
        "totals": day_totals(figures, date),
        "peak": figures.get("peak"),
        "peak_text": figures.get("peak_text"),
        "quality": figures.get("quality"),
        "insights": figures.get("insights"),
        # Dates whose statistics were rebuilt, and the window's dates left as they were (unchanged rows).
        "statistics": {"rebuilt": aggregated.get("dates", []), "unchanged": aggregated.get("unchanged", [])},
        "reconcile": reconciled,
        "report": report["paths"],
        "email": email,
        "catalog": catalog,
        "crosscheck": crosscheck,
        "late_files": figures.get("late_files"),
        "alerts": figures.get("alerts") or [],
        "usage": figures.get("usage"),
        "morning": figures.get("morning"),
    }


def _daily(date: dt.date | None, distributions: list[str] | None, resend_email: bool) -> dict[str, Any]:
    services = current_services()  # once per run: the caller's (use_services), else built from the settings
    settings = services.settings
    day = date or default_date(settings.report_tz, services.clock())
    wanted = [d.lower() for d in distributions] if distributions else list(settings.distributions) or None
    run = StageProgress(services.notifier, DAILY_FLOW, day, STAGES, wanted, run_url)
    run.event("begin")
    summary = _run_stages(run, services, day, wanted, resend_email)
    summary |= {"durations": run.durations, "duration_s": run.elapsed, "run_url": run_url(),
                "flow_run_id": flow_run_id()}  # fmt: skip
    pipeline.record_stage_seconds(services, day, run.durations, run.elapsed)
    run.event("complete", duration_s=run.elapsed, totals=summary["totals"], detail=operations.complete_note(summary))
    publish_artifacts(summary)
    return summary


# Parameters are what an operator chooses, nothing else: the settings (locations, recipients, Spark,
# secrets) come from the run's environment through cdnlake/run_settings.py, validated there, and
# the services built from them from cdnlake/services.py (tests install fakes there).
@flow(name=DAILY_FLOW, description="CloudFront logs of one UTC date -> Delta Lake -> statistics -> report -> e-mail")
def cdn_daily(
    date: dt.date | None = None, distributions: list[str] | None = None, resend_email: bool = False
) -> dict[str, Any]:
    """The daily pipeline for `date` (default: yesterday in CDNLAKE_REPORT_TZ); returns the run summary."""
    return _daily(date, distributions, resend_email)


@flow(name="cdn-rerun", description="cdn-daily for a date the operator names")
def cdn_rerun(date: dt.date, distributions: list[str] | None = None, resend_email: bool = False) -> dict[str, Any]:
    """The same pipeline as cdn-daily, with `date` required (the manual re-run deployment)."""
    return _daily(date, distributions, resend_email)


@task(name="backfill-date", task_run_name="backfill-{date}", cache_policy=NO_CACHE)
def backfill_date_task(date: dt.date, distributions: list[str] | None, resend_email: bool) -> dict[str, Any]:
    # A flow called inside a task is a subflow of the backfill (supported since Prefect 3.0).
    return cdn_daily(date=date, distributions=distributions, resend_email=resend_email)


def _outcome(state: Any) -> dict[str, Any]:
    if state.is_completed():
        summary = state.result()
        return {"status": "completed", "totals": summary["totals"], "email": summary["email"].get("detail"),
                "report": summary["report"].get("pdf")}  # fmt: skip
    error = state.result(raise_on_failure=False)
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(state.message)
    return {"status": "failed", "error": text[:500]}


def _backfill_dates(dates: list[dt.date], distributions: list[str] | None, resend_email: bool,
                    concurrency: int) -> dict[dt.date, Any]:  # fmt: skip
    """The final state of cdn-daily for each date, run one after the other or `concurrency` at a time."""
    if concurrency <= 1:
        return {d: cdn_daily(date=d, distributions=distributions, resend_email=resend_email, return_state=True)
                for d in dates}  # fmt: skip
    runner: Any  # the submit() overloads of Prefect confuse mypy for a sync task
    with ThreadPoolTaskRunner(max_workers=concurrency) as runner:
        futures = {d: runner.submit(backfill_date_task, {"date": d, "distributions": distributions,
                                                         "resend_email": resend_email})
                   for d in dates}  # fmt: skip
        for future in futures.values():
            future.wait()
        return {d: f.state for d, f in futures.items()}


@flow(name="cdn-backfill", description="cdn-daily for every date from start to end (inclusive)")
def cdn_backfill(
    start: dt.date,
    end: dt.date,
    distributions: list[str] | None = None,
    resend_email: bool = False,
    concurrency: int = 1,
) -> dict[str, Any]:
    """Run cdn-daily per date: one after the other, or `concurrency` at a time.

    With concurrency > 1 the dates' checks, reports and e-mails overlap while their warehouse
    writes still take turns (global concurrency limit `cdnlake-warehouse-writes`).
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    dates = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    with use_services(current_services()):  # one runner (one SparkSession), notifier, ... for every date
        states = _backfill_dates(dates, distributions, resend_email, concurrency)
    results = {d.isoformat(): _outcome(s) for d, s in states.items()}
    failed = [d for d, r in results.items() if r["status"] == "failed"]
    summary = {"start": start.isoformat(), "end": end.isoformat(), "dates": results, "failed": failed}
    if failed:
        raise BackfillError(f"{len(failed)} of {len(dates)} dates failed: {', '.join(failed)}")
    return summary


__all__ = ["BackfillError", "cdn_backfill", "cdn_daily", "cdn_rerun"]
