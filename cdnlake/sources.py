"""Looking at the raw landing area from the orchestrator (no Spark): local folders or S3."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from spark_jobs.raw_reader import parse_file_name

# Enough bytes of a file to see its headers and first data lines.
_PEEK_BYTES = 64 * 1024


@dataclass(frozen=True)
class SourceFile:
    uri: str
    size: int
    distro: str
    date: str
    hour: int
    modified: float | None = None  # seconds since the epoch (S3 LastModified, local mtime)


def _split_s3(uri: str) -> tuple[str, str]:
    rest = uri.split("://", 1)[1]
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix


def _walk(source: str, s3_client: object | None) -> Iterator[tuple[str, int, float]]:
    if source.startswith(("s3://", "s3a://")):
        bucket, prefix = _split_s3(source)
        if s3_client is None:
            raise ValueError("an S3 client is needed to list " + source)
        paginator = s3_client.get_paginator("list_objects_v2")  # type: ignore[attr-defined]
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield f"s3://{bucket}/{obj['Key']}", int(obj["Size"]), obj["LastModified"].timestamp()
        return
    root = Path(source)
    if not root.is_dir():
        raise FileNotFoundError(f"raw log location {source} does not exist")
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            stat = os.stat(path)
            yield path, stat.st_size, stat.st_mtime


def list_source(
    source: str, dates: set[dt.date], distributions: set[str] | None = None, s3_client: object | None = None
) -> list[SourceFile]:
    """CloudFront log files under `source` (any depth) whose name's UTC hour is on `dates`."""
    wanted = {d.isoformat() for d in dates}
    found = []
    for uri, size, modified in _walk(source, s3_client):
        parsed = parse_file_name(uri)
        if parsed and parsed[1] in wanted and (not distributions or parsed[0] in distributions):
            found.append(SourceFile(uri, size, *parsed, modified=modified))
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
    for i, line in enumerate(peek_lines(path)[:-1], start=1):
        if line.startswith("#Fields:"):
            declared = len(line.split(":", 1)[1].split())
            if not 18 <= declared <= 33:
                problems.append(f"{path}: header declares {declared} fields (expected 18-33)")
        elif line and not line.startswith("#"):
            checked += 1
            count = len(line.split("\t"))
            if count not in (declared, declared + 1):
                bad.append(f"line {i}: {count} fields, header declares {declared}")
    if bad and len(bad) * 2 >= checked:
        problems.append(f"{path}: {len(bad)} of the first {checked} lines do not fit the header ({bad[0]})")
    return problems
