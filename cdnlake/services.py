"""The services a run uses, built once from the settings and handed down to every stage.

A flow run (or a command) calls `build_services(settings)` once: one Spark runner (its
SparkSession is started once and reused by every stage), one notifier, one e-mail sender, one
reports store, one warehouse reader, one source lister and a clock. The stages of
cdnlake/pipeline.py take a `Services` and build nothing themselves.

Tests hand a flow a `Services` holding fakes with `use_services` (as the command line hands it
the settings with cdnlake.run_settings.use_settings): services are never a flow parameter
(SPEC section 6), so nothing an operator or the Prefect API could set reaches them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdnlake import sources
from cdnlake.clock import utc_now
from cdnlake.installed import Installed
from cdnlake.integrations import aws
from cdnlake.notify import Notifier, notifier_from_settings
from cdnlake.report_data import Warehouse
from cdnlake.run_settings import current_settings, use_settings
from cdnlake.runners.jobs import SparkRunner
from cdnlake.settings import Settings
from cdnlake.storage import Store, is_s3


@dataclass(frozen=True)
class SourceLister:
    """The raw landing area: lists the CloudFront log files of some dates (local folder or S3).

    `s3_client` is also what reads a file's first bytes (the format check): None for a local source.
    """

    location: str
    s3_client: Any = None

    def list(self, dates: Iterable[dt.date], distributions: Iterable[str] | None = None) -> list[sources.SourceFile]:
        wanted = set(distributions) if distributions else None
        return sources.list_source(self.location, set(dates), wanted, self.s3_client)


@dataclass(frozen=True)
class Services:
    """Everything a run talks to besides its parameters (tests swap one for a fake with dataclasses.replace)."""

    settings: Settings
    runner: SparkRunner
    notifier: Notifier
    email_sender: Any  # reporting.delivery.EmailSender (imported lazily: it pulls in the e-mail stack)
    reports: Store
    warehouse: Warehouse
    source: SourceLister
    clock: Callable[[], dt.datetime] = utc_now  # aware UTC

    def now(self) -> dt.datetime:
        """The clock's time as naive UTC (what the report's `generated at` takes)."""
        return self.clock().astimezone(dt.UTC).replace(tzinfo=None)


def build_email_sender(settings: Settings) -> Any:
    """Amazon SES v2 when CDNLAKE_SES_ENABLED, else `.eml` files in the outbox."""
    from reporting.delivery import OutboxSender, SesSender

    if settings.ses_enabled:
        import boto3

        return SesSender(boto3.client("sesv2", region_name=settings.aws_region))
    return OutboxSender(Path(settings.outbox))


def build_services(settings: Settings, **given: Any) -> Services:
    """The real services of `settings`, each built once; `given` ones (e.g. a shared runner) are used as they are."""
    from cdnlake.runners.local import build_runner

    def one(name: str, build: Callable[[], Any]) -> Any:
        return given[name] if name in given else build()

    client = one("s3_client", lambda: aws.s3_client(settings) if is_s3(settings.source) else None)
    return Services(
        settings=settings,
        runner=one("runner", lambda: build_runner(settings)),
        notifier=one("notifier", lambda: notifier_from_settings(settings)),
        email_sender=one("email_sender", lambda: build_email_sender(settings)),
        reports=one("reports", lambda: aws.store(settings, settings.reports)),
        warehouse=one("warehouse", lambda: aws.warehouse(settings)),
        source=one("source", lambda: SourceLister(settings.source, client)),
        clock=one("clock", lambda: utc_now),
    )


def build_services_starting_spark(settings: Settings) -> Services:
    """build_services, with an in-process runner's SparkSession already starting in the background:
    the commands that run the flow overlap the JVM's start with their own (Prefect's server, a sample)."""
    from cdnlake.runners.local import start_spark_early

    services = build_services(settings)
    start_spark_early(services.runner)
    return services


_installed: Installed[Services] = Installed()


def current_services() -> Services:
    """The innermost `use_services` of this process, else the services of the current settings."""
    return _installed.current(lambda: build_services(current_settings()))


@contextmanager
def use_services(services: Services) -> Iterator[Services]:
    """Flows called in this process (and its task threads) use `services`, and their settings
    (cdnlake.run_settings.current_settings), until the block ends."""
    with _installed.use(services), use_settings(services.settings):
        yield services


__all__ = ["Services", "SourceLister", "build_email_sender", "build_services", "build_services_starting_spark",
           "current_services", "use_services"]
