"""Fakes of the run's services (cdnlake/services.py) for the flow tests: no patching of tasks or globals.

A test builds `Services` with some of these in place of the real ones and hands them to the flow
with `tests.flow_runs.run_flow` (cdnlake.services.use_services): the flow and its stages run for
real, only what talks to Spark, SES, Slack or the landing area is replaced.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from cdnlake.notify import ProgressEvent
from cdnlake.sources import SourceFile
from spark_jobs.params import JobParams

JobResult = Callable[[JobParams], dict[str, Any]]


def ingested(params: Any) -> dict[str, Any]:
    """A canned ingest result, per date of the job: 10 lines read, 9 loaded, 1 rejected."""
    per_date = {d.isoformat(): {"date": d.isoformat(), "files": 1, "lines_read": 10, "loaded": 9, "rejected": 1}
                for d in params.all_dates}  # fmt: skip
    return per_date[params.date.isoformat()] | {"per_date": per_date}


def reconciled(params: Any) -> dict[str, Any]:
    return {"date": str(params.date)}


class FakeRunner:
    """A Spark runner that records the typed parameters of every job and answers from `results`
    (by job name; the canned defaults otherwise)."""

    def __init__(self, **results: JobResult) -> None:
        self.results: dict[str, JobResult] = {"ingest": ingested, "reconcile": reconciled} | results
        self.calls: list[JobParams] = []
        self.applications: list[str] = []  # run ids of the application() contexts entered
        self.in_application: list[bool] = []  # per call: inside an application() context?
        self._open = 0
        self._lock = threading.Lock()

    def run_job(self, params: JobParams) -> dict[str, Any]:
        with self._lock:
            self.calls.append(params)
            self.in_application.append(self._open > 0)
        answer = self.results.get(params.job)
        return answer(params) if answer else {}

    @contextmanager
    def application(self, run_id: str = "") -> Iterator[None]:
        with self._lock:
            self.applications.append(run_id)
            self._open += 1
        try:
            yield
        finally:
            with self._lock:
                self._open -= 1

    def jobs(self) -> list[tuple[str, str]]:
        """(job, date) of every call, in order."""
        return [(p.job, str(getattr(p, "date", ""))) for p in self.calls]


class Recorder:
    """A notifier that keeps every progress event."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    def send(self, event: ProgressEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[tuple[str, str | None]]:
        return [(e.kind, e.stage) for e in self.events]


class FakeSender:
    """An e-mail sender that keeps the report date of every message it is given."""

    kind = "fake"

    def __init__(self) -> None:
        self.dates: list[str] = []
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()

    def send(self, message: EmailMessage, recipients: Any) -> str:
        from reporting.email import REPORT_DATE_HEADER

        with self._lock:
            self.dates.append(str(message[REPORT_DATE_HEADER]))
            self.messages.append(message)
            return f"<fake-{len(self.dates)}@example.com>"

    def attachments(self, index: int = -1) -> dict[str, bytes]:
        """File name -> bytes of the attachments of a message it was given."""
        message = self.messages[index]
        return {str(part.get_filename()): part.get_payload(decode=True) for part in message.iter_attachments()}


@dataclass
class NewestDateSource:
    """A landing area holding one real raw file for the newest date asked about (none for `missing`
    dates) and nothing for earlier dates: no late files, so a run ingests its own date only.
    Records every listing it was asked for."""

    file: Path
    distro: str = "e1fake"
    missing: set[dt.date] = field(default_factory=set)
    listings: list[set[dt.date]] = field(default_factory=list)
    s3_client: Any = None
    location: str = "fake://landing"

    def list(self, dates: Iterable[dt.date], distributions: Iterable[str] | None = None) -> list[SourceFile]:
        asked = set(dates)
        self.listings.append(asked)
        newest = max(asked)
        if newest in self.missing:
            return []
        stat = self.file.stat()
        return [SourceFile(str(self.file), stat.st_size, self.distro, newest.isoformat(), 0, modified=stat.st_mtime)]


@dataclass
class EveryDateSource:
    """A landing area with one real raw file for each of `days` (a fresh warehouse's window)."""

    folder: Path
    days: list[dt.date]
    s3_client: Any = None
    location: str = "fake://landing"
    files: dict[dt.date, Path] = field(init=False)

    def __post_init__(self) -> None:
        from cdnlake.demo import generate_days

        generated = generate_days(self.folder, self.days, 1, [48] * len(self.days), seed=3, files_per_hour=1)
        self.files = {day: sorted(g.files)[0] for day, g in generated.items()}

    def list(self, dates: Iterable[dt.date], distributions: Iterable[str] | None = None) -> list[SourceFile]:
        found = [(day, self.files[day]) for day in sorted(set(dates)) if day in self.files]
        return [SourceFile(str(f), f.stat().st_size, "e1fake", day.isoformat(), 0, modified=f.stat().st_mtime)
                for day, f in found]  # fmt: skip


def one_raw_file(folder: Path) -> Path:
    """A real, well-formed gzip log file (the check stage reads its first lines)."""
    from cdnlake.demo import generate_days

    day = dt.date(2024, 6, 9)
    generated = generate_days(folder, [day], 1, [48], seed=3, files_per_hour=1)
    return sorted(generated[day].files)[0]
