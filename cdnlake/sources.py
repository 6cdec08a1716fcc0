"""Looking at the raw landing area from the orchestrator (no Spark): local folders or S3."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from spark_jobs.log_fields import ALL_FIELDS
from spark_jobs.log_keys import listed_as

# Enough bytes of a file to see its headers and first data lines.
_PEEK_BYTES = 64 * 1024


@dataclass(frozen=True)
class SourceFile:
    uri: str
    size: int
    distro: str
    date: str
    hour: int


def _split_s3(uri: str) -> tuple[str, str]:
    rest = uri.split("://", 1)[1]
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix


def _walk(source: str, s3_client: object | None) -> Iterator[tuple[str, int, dt.date]]:
    if source.startswith(("s3://", "s3a://")):
        bucket, prefix = _split_s3(source)
        if s3_client is None:
            raise ValueError("an S3 client is needed to list " + source)
        paginator = s3_client.get_paginator("list_objects_v2")  # type: ignore[attr-defined]
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield f"s3://{bucket}/{obj['Key']}", int(obj["Size"]), obj["LastModified"].astimezone(dt.UTC).date()
        return
    root = Path(source)
    if not root.is_dir():
        raise FileNotFoundError(f"raw log location {source} does not exist")
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            stat = os.stat(path)
            yield path, stat.st_size, dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC).date()


def list_source(
    source: str, dates: set[dt.date], distributions: set[str] | None = None, s3_client: object | None = None
) -> list[SourceFile]:
    """CloudFront log files under `source` (any depth) of `dates`, by name or key path (legacy and
    standard logging v2 layouts, the same rule as the ingest job's listing)."""
    wanted = {d.isoformat() for d in dates}
    found = []
    for uri, size, modified in _walk(source, s3_client):
        listed = listed_as(uri, modified, wanted)
        if listed and (not distributions or listed[0] in distributions):
            found.append(SourceFile(uri, size, *listed))
    return sorted(found, key=lambda f: f.uri)


def peek_lines(path: str, limit: int = 20) -> list[str]:
    """The first lines of a local gz file; [] when it cannot be read (the ingest records why)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_PEEK_BYTES)
        text = zlib.decompressobj(31).decompress(head)
    except (OSError, zlib.error, gzip.BadGzipFile):
        return []
    return text.decode("utf-8", "replace").split("\n")[:limit]


def column_count_problems(path: str) -> list[str]:
    """Column count check on a file's first lines, as the original system did before loading.

    A malformed line now and then is normal (it becomes a reject and the report counts it); a file
    whose lines mostly do not fit its header is a format change, and that is what stops a run.
    """
    declared, checked, bad = 33, 0, []
    problems = []
    lines = [line.removeprefix("\ufeff").rstrip("\r") for line in peek_lines(path)[:-1]]
    if lines and lines[0].startswith("{"):
        return []  # a v2 JSON delivery: records, not columns (Parquet does not peek as gzip text)
    for i, line in enumerate(lines, start=1):
        if line.startswith("#Fields:"):
            names = line.split(":", 1)[1].split()
            declared = len(names)
            # Any v2 selection of known fields is fine; unknown names outside 18-33 are a change.
            if not 18 <= declared <= 33 and not set(names) <= set(ALL_FIELDS):
                problems.append(f"{path}: header declares {declared} fields (expected 18-33)")
        elif line and not line.startswith("#"):
            checked += 1
            count = len(line.split("\t"))
            if count not in (declared, declared + 1):
                bad.append(f"line {i}: {count} fields, header declares {declared}")
    if bad and len(bad) * 2 >= checked:
        problems.append(f"{path}: {len(bad)} of the first {checked} lines do not fit the header ({bad[0]})")
    return problems
