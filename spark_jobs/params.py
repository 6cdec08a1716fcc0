"""Typed parameters of the Spark jobs: what the flow hands a job, validated where it is built.

The in-process runner passes these objects straight to `spark_jobs.<job>.run(spark, params)`;
only a job started by spark-submit (Kubernetes) goes through a command line, with `to_argv()` on
the submitting side and the job's argparse parser plus `from_namespace()` on the other. Spark-free,
so the flows and the CLI build parameters without importing PySpark.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from spark_jobs.contract import DISTRO_RE, location
from spark_jobs.log_fields import field_delimiter

_TZ_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-/]{0,63}$")


def _check_distributions(values: tuple[str, ...] | None) -> None:
    for d in values or ():
        if not DISTRO_RE.match(d):
            raise ValueError(f"not a CloudFront distribution id: {d!r}")


def check_zone(value: str) -> None:
    """An IANA zone name; it ends up in a replaceWhere predicate, so only plain names pass."""
    try:
        if not _TZ_RE.match(value):
            raise ZoneInfoNotFoundError(value)
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"not an IANA time zone: {value!r}") from None


def _argv_value(value: Any) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return ",".join(_argv_value(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class JobParams:
    """Common behaviour: validation of locations and ids, the argv form, the namespace form."""

    job: ClassVar[str]

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("source", "warehouse"):
                try:
                    location(value)
                except argparse.ArgumentTypeError as exc:
                    raise ValueError(f"{f.name}: {exc}") from None
            elif f.name == "distributions":
                if value is not None and not isinstance(value, tuple):
                    object.__setattr__(self, "distributions", tuple(value))
                _check_distributions(self.distributions)  # type: ignore[attr-defined]
            elif f.name == "dates" and not isinstance(value, tuple):
                object.__setattr__(self, "dates", tuple(value or ()))

    def to_argv(self) -> list[str]:
        """The job's command line (spark-submit): `--name value`, flags for true booleans."""
        argv: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            flag = "--" + f.name.replace("_", "-")
            if value is None or value is False or value == ():
                continue
            argv += [flag] if value is True else [flag, _argv_value(value)]
        return argv

    @classmethod
    def from_namespace(cls, namespace: Any) -> JobParams:
        """From the job's parsed arguments (argparse.Namespace or a mapping)."""
        values: Mapping[str, Any] = namespace if isinstance(namespace, Mapping) else vars(namespace)
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    def replace(self, **changes: Any) -> JobParams:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ListedFile:
    """A raw file as the orchestrator listed it (cdnlake.sources): the ingest job reads these
    instead of listing the source again. `modified_ms`: S3 LastModified or the local mtime."""

    uri: str
    size: int
    modified_ms: int

    def as_json(self) -> dict[str, Any]:
        return {"uri": self.uri, "size": self.size, "modified_ms": self.modified_ms}


def files_to_json(files: tuple[ListedFile, ...]) -> bytes:
    """The `--files-from` document: a JSON list of {uri, size, modified_ms}."""
    return json.dumps([f.as_json() for f in files]).encode("utf-8")


def files_from_json(data: bytes | str) -> tuple[ListedFile, ...]:
    """The files of a `--files-from` document; ValueError naming the problem when it is not one."""
    try:
        items = json.loads(data)
        return tuple(ListedFile(str(i["uri"]), int(i["size"]), int(i["modified_ms"])) for i in items)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"not a file list ([{{uri, size, modified_ms}}, ...]): {exc}") from None


@dataclass(frozen=True)
class IngestParams(JobParams):
    """`dates`: the run's other dates, ingested by the same job (one parse and write, one commit
    per table for all of them: a fresh warehouse's first run pays the fixed cost once).
    `files`: the dates' raw files as the run listed them (the job then lists nothing); None: the
    job lists `source` itself (`cdnlake ingest`). `files_from`: where a submitted job reads that list
    (a JSON file written next to the warehouse, cdnlake/runners/kubernetes.py): the argv stays small."""

    job: ClassVar[str] = "ingest"
    date: dt.date
    source: str
    warehouse: str
    distributions: tuple[str, ...] | None = None
    run_id: str | None = None
    anonymize_ip: str = "truncate"
    keep_cookies: bool = False
    v2_delimiter: str = "tab"  # of standard logging v2 text deliveries; `tab` or one character
    files: tuple[ListedFile, ...] | None = None
    files_from: str | None = None
    dates: tuple[dt.date, ...] = ()

    @property
    def all_dates(self) -> list[dt.date]:
        """Every date the job ingests (`date` and `dates`), oldest first."""
        return sorted({self.date, *self.dates})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.anonymize_ip not in ("none", "truncate", "hash"):
            raise ValueError(f"anonymize_ip: none, truncate or hash (got {self.anonymize_ip!r})")
        field_delimiter(self.v2_delimiter)  # raises ValueError naming what is allowed
        if self.files is not None and not isinstance(self.files, tuple):
            object.__setattr__(self, "files", tuple(self.files))
        if self.files is not None and self.files_from is not None:
            raise ValueError("files and files_from: give the list one way")
        if self.files_from is not None:
            try:
                location(self.files_from)
            except argparse.ArgumentTypeError as exc:
                raise ValueError(f"files_from: {exc}") from None

    def to_argv(self) -> list[str]:
        if self.files is not None:  # a list of thousands of files has no place on a command line
            raise ValueError("an ingest with a file list goes through --files-from (write the list first)")
        return super().to_argv()


@dataclass(frozen=True)
class CompactParams(JobParams):
    job: ClassVar[str] = "compact"
    date: dt.date
    warehouse: str
    distributions: tuple[str, ...] | None = None
    vacuum: bool = False
    max_files: int = 8


@dataclass(frozen=True)
class AggregateParams(JobParams):
    job: ClassVar[str] = "aggregate"
    date: dt.date
    warehouse: str
    distributions: tuple[str, ...] | None = None
    report_tz: str = "UTC"
    dates: tuple[dt.date, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        check_zone(self.report_tz)


@dataclass(frozen=True)
class ReconcileParams(JobParams):
    job: ClassVar[str] = "reconcile"
    date: dt.date
    warehouse: str
    distributions: tuple[str, ...] | None = None


@dataclass(frozen=True)
class MissesParams(JobParams):
    job: ClassVar[str] = "analyze_misses"
    start: dt.date
    end: dt.date
    warehouse: str
    distributions: tuple[str, ...] | None = None
    sample_fraction: float = 0.01
    min_support: float = 0.0005
    min_confidence: float = 0.3
    include_error: bool = False
    seed: int = 42

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        for name in ("sample_fraction", "min_support", "min_confidence"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1]: {getattr(self, name)}")


# The registry of jobs by name: what a runner accepts and how a job's command line is typed.
PARAMS: dict[str, type[JobParams]] = {
    p.job: p for p in (IngestParams, CompactParams, AggregateParams, ReconcileParams, MissesParams)
}
JOBS: tuple[str, ...] = tuple(PARAMS)
