"""What the ingest learns about each file while it writes cdn_logs, without a pass of its own.

The reader's marker row per file carries the file's digest, damage and line counts; the rejected
lines are few. Both are gathered by a Spark `Observation` on the one job that parses the files and
writes cdn_logs, so the parsed rows are never cached and read again (before: the day's rows went
to local disk and were read five times, bench/RESULTS.md session 6). A file with more rejects than
INLINE_REJECTS leaves them out of the observation; they are read again from that file alone.
Several dates in one job: the files are keyed by path (each listed for one date), the duplicates
and the results go per date.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from spark_jobs.ingest_duplicates import MovedLines
from spark_jobs.ingest_reader import read_raw_lines
from spark_jobs.local_frames import local_frame
from spark_jobs.raw_reader import ReaderOptions
from spark_jobs.schema import INGEST_FILES_SCHEMA, REJECTS_SCHEMA
from spark_jobs.storage import RawFile

# Rejected lines per file carried to the driver by the observation (a few per file on a real day);
# 4,000 files a day x 100 lines stays a few tens of MB on the driver whatever the files hold.
INLINE_REJECTS = 100

_MARKER = ("source_file", "dt", "value", "reason", "file_lines", "file_rejected")
_REJECT = ("source_file", "line_no", "value", "reason", "distro", "dt")


def observe_files(parsed: DataFrame, observation: Observation) -> DataFrame:
    """`parsed` with its markers and inline rejected lines gathered into `observation`."""
    is_marker = F.col("line_no").isNull()
    is_reject = F.col("line_no").isNotNull() & F.col("reason").isNotNull()
    collected: list[Column] = [
        F.collect_list(F.when(is_marker, F.struct(*_MARKER))).alias("markers"),
        F.collect_list(F.when(is_reject, F.struct(*_REJECT))).alias("rejects"),
    ]
    return parsed.observe(observation, *collected)


@dataclass
class FileAccounting:
    """Per file: digest, damage, lines read and rejected; the rejected lines seen inline."""

    markers: dict[str, dict[str, Any]]
    inline_rejects: list[tuple[Any, ...]] = field(default_factory=list)

    def overflowing(self) -> list[str]:
        """Files whose rejected lines were too many to come inline (read again for them)."""
        return sorted(p for p, m in self.markers.items() if m["rejected"] > INLINE_REJECTS)


def observed_accounting(observation: Observation) -> FileAccounting:
    metrics = observation.get
    markers = {
        m["source_file"]: {"dt": m["dt"], "value": m["value"], "reason": m["reason"], "lines_read": m["file_lines"],
                           "rejected": m["file_rejected"]}
        for m in metrics["markers"]
    }  # fmt: skip
    rejects = [tuple(r[k] for k in _REJECT) for r in metrics["rejects"]]
    return FileAccounting(markers, rejects)


def find_duplicates(markers: dict[str, dict[str, Any]]) -> dict[str, str]:
    """{duplicate path: first path} for files of the same date with identical content (by sha256).
    Per date, as when each date was a job of its own: a file listed for another date is not
    compared (its lines carry that date's rows, or are rejected there for their date)."""
    first: dict[tuple[str, str], str] = {}
    duplicates: dict[str, str] = {}
    for path in sorted(markers):
        key = (markers[path]["dt"], markers[path]["value"])
        if key in first:
            duplicates[path] = first[key]
        else:
            first[key] = path
    return duplicates


def unread_reason(f: RawFile) -> str:
    # Spark's file sources skip zero-length files, so they never reach the reader.
    return "zero-byte file (not gzip)" if f.size == 0 else "file was not read"


def file_rejects(files: list[RawFile], accounting: FileAccounting, run_id: str) -> list[tuple[Any, ...]]:
    """Rejects rows for damaged files (line_no NULL, the damage) and for listed files the reader
    never saw, plus the inline rejected lines: nothing listed goes unrecorded."""
    rows = [(s, n, v, r, run_id, d, t) for s, n, v, r, d, t in accounting.inline_rejects]
    for f in files:
        marker = accounting.markers.get(f.path)
        if marker is None:
            rows.append((f.path, None, None, unread_reason(f), run_id, f.distro, f.date))
        elif marker["reason"] is not None:
            rows.append((f.path, None, None, marker["reason"], run_id, f.distro, f.date))
    return rows


def ingest_files_rows(
    files: list[RawFile], accounting: FileAccounting, duplicates: dict[str, str], moved: dict[str, int],
    run_id: str,
) -> list[tuple[Any, ...]]:
    """One ingest_files row per listed file; `moved`: lines per file rejected after the write
    (repeated request ids), a duplicate file's lines are all rejected."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = []
    for f in files:
        marker = accounting.markers.get(f.path)
        lines, rejected = (marker["lines_read"], marker["rejected"]) if marker else (0, 0)
        rejected = lines if f.path in duplicates else rejected + moved.get(f.path, 0)
        damage = marker["reason"] if marker else unread_reason(f)
        modified = dt.datetime.fromtimestamp(f.modified_ms / 1000, dt.UTC).replace(tzinfo=None)
        rows.append(
            (f.path, f.path.rsplit("/", 1)[-1], f.size, modified, lines, lines - rejected, rejected,
             damage is not None, duplicates.get(f.path), run_id, now, f.distro, f.date)
        )  # fmt: skip
    return rows


def summarise(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """Totals and per-distribution accounting from ingest_files rows."""
    names = INGEST_FILES_SCHEMA.fieldNames()
    per: dict[str, dict[str, int]] = {}
    totals = {"lines_read": 0, "loaded": 0, "rejected": 0, "damaged_files": 0, "duplicate_files": 0}
    for row in rows:
        r = dict(zip(names, row, strict=True))
        d = per.setdefault(r["distro"], {"files": 0, "lines_read": 0, "loaded": 0, "rejected": 0})
        d["files"] += 1
        for key in ("lines_read", "loaded", "rejected"):
            d[key] += r[key]
            totals[key] += r[key]
        totals["damaged_files"] += int(r["damaged"])
        totals["duplicate_files"] += int(r["duplicate_of"] is not None)
    return totals | {"per_distro": per}


def summarise_by_date(rows: list[tuple[Any, ...]]) -> dict[str, dict[str, Any]]:
    """summarise() per date (ISO) of ingest_files rows."""
    at = INGEST_FILES_SCHEMA.fieldNames().index("dt")
    by_date: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_date.setdefault(row[at], []).append(row)
    return {date: summarise(of_date) for date, of_date in by_date.items()}


def all_rejects(spark: SparkSession, files: list[RawFile], accounting: FileAccounting, moved: MovedLines | None,
                reread: ReaderOptions, run_id: str) -> DataFrame:  # fmt: skip
    """The rejects rows of an ingest: damaged and unread files and the lines seen inline, the lines
    moved out of cdn_logs afterwards (repeats), and the rejected lines of files that had too many
    to come inline, read again from those files alone with `reread` (every rejected line kept)."""
    rejects = local_frame(spark, file_rejects(files, accounting, run_id), REJECTS_SCHEMA)
    if moved is not None:
        rejects = rejects.unionByName(moved.rejects)
    overflowing = set(accounting.overflowing())
    if overflowing:
        parsed = read_raw_lines(spark, [f for f in files if f.path in overflowing], reread)
        rejected = parsed.where(F.col("line_no").isNotNull() & F.col("reason").isNotNull())
        rejects = rejects.unionByName(rejected.select(
            "source_file", "line_no", F.col("value").alias("raw_line"), "reason", F.lit(run_id).alias("ingest_run"),
            "distro", "dt"))  # fmt: skip
    return rejects
