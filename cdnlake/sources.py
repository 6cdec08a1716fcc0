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
    """CloudFront log files under `source` (any depth) of `dates`, by name or key path (legacy and
    standard logging v2 layouts, the same rule as the ingest job's listing)."""
    wanted = {d.isoformat() for d in dates}
    found = []
    for uri, size, modified in _walk(source, s3_client):
        listed = listed_as(uri, dt.datetime.fromtimestamp(modified, dt.UTC).date(), wanted)
        if listed and (not distributions or listed[0] in distributions):
            found.append(SourceFile(uri, size, *listed, modified=modified))
    return sorted(found, key=lambda f: f.uri)


def head_bytes(uri: str, s3_client: object | None = None, size: int = _PEEK_BYTES) -> bytes:
    """The first `size` bytes of a raw file, local or on S3 (a ranged GET: the file is not downloaded)."""
    if uri.startswith(("s3://", "s3a://")):
        bucket, key = _split_s3(uri)
        if s3_client is None:
            raise ValueError("an S3 client is needed to read " + uri)
        response = s3_client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{size - 1}")  # type: ignore[attr-defined]
        return bytes(response["Body"].read())
    with open(uri, "rb") as handle:
        return handle.read(size)


def peek_lines(path: str, limit: int = 50, s3_client: object | None = None) -> list[str]:
    """The first lines of a gz file; [] when it cannot be read (the ingest records why).

    The last line may be cut by the peek: callers drop it. A UTF-8 BOM and CRLF endings are removed.
    """
    try:
        text = zlib.decompressobj(31).decompress(head_bytes(path, s3_client))
    except (OSError, zlib.error, gzip.BadGzipFile):
        return []
    lines = text.decode("utf-8", "replace").removeprefix("\ufeff").split("\n")[:limit]
    return [line.removesuffix("\r") for line in lines]


@dataclass(frozen=True)
class FileFit:
    """How the sampled first lines of one file fit its `#Fields` header."""

    uri: str
    checked: int
    bad: int
    example: str = ""  # the first misfit, or the header problem
    bad_header: bool = False


def file_fit(uri: str, s3_client: object | None = None) -> FileFit:
    """Column count check on a file's first lines, as the original system did before loading."""
    declared, checked, bad, example, bad_header = 33, 0, 0, "", False
    lines = peek_lines(uri, s3_client=s3_client)[:-1]
    if lines and lines[0].startswith("{"):
        return FileFit(uri, 0, 0)  # a v2 JSON delivery: records, not columns (Parquet does not peek as text)
    for i, line in enumerate(lines, start=1):
        if line.startswith("#Fields:"):
            names = line.split(":", 1)[1].split()
            declared = len(names)
            # Any v2 selection of known fields is fine; unknown names outside 18-33 are a change.
            if not 18 <= declared <= 33 and not set(names) <= set(ALL_FIELDS):
                bad_header, example = True, f"header declares {declared} fields (expected 18-33)"
        elif line and not line.startswith("#"):
            checked += 1
            count = len(line.split("\t"))
            if bad_header or count not in (declared, declared + 1):
                bad += 1
                example = example or f"line {i}: {count} fields, header declares {declared}"
    return FileFit(uri, checked, bad, example, bad_header)


def column_count_problems(path: str) -> list[str]:
    """One file's verdict: a file whose lines mostly do not fit its header (or whose header is
    impossible) is a format change; a malformed line now and then is normal (a reject)."""
    fit = file_fit(path)
    if fit.bad_header:
        return [f"{path}: {fit.example}"]
    if fit.bad and fit.bad * 2 >= fit.checked:
        return [f"{path}: {fit.bad} of the first {fit.checked} lines do not fit the header ({fit.example})"]
    return []


# The format alarm is a rule about the date, not a file (README "Failure modes"): over the first
# lines of up to SAMPLE_FILES files of the date, at least FORMAT_ALARM_SHARE of the data lines do
# not fit their file's #Fields header, and at least FORMAT_ALARM_MIN_LINES lines were sampled.
# A few malformed lines, or a one-line file whose only line is malformed, are rejects at ingest.
SAMPLE_FILES = 20
FORMAT_ALARM_SHARE = 0.5
FORMAT_ALARM_MIN_LINES = 20


def format_alarm(date: dt.date, fits: list[FileFit]) -> str | None:
    """The day-level verdict on the sampled files' column counts: a message, or None when fine."""
    checked, bad = sum(f.checked for f in fits), sum(f.bad for f in fits)
    if checked < FORMAT_ALARM_MIN_LINES or bad < FORMAT_ALARM_SHARE * checked:
        return None
    worst = max(fits, key=lambda f: f.bad)
    return (f"format change? {bad} of {checked} sampled lines of {date} ({len(fits)} files) do not fit their "
            f"#Fields header, e.g. {worst.uri}: {worst.example}")  # fmt: skip
