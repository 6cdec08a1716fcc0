"""Files per partition from a Delta commit's own `add` actions: compaction decided without a listing.

The ingest replaces whole (distro, dt) partitions in one commit per table, so that commit's `add`
actions are every file those partitions hold afterwards. Read at the end of the ingest (the
`_delta_log/<version>.json` of the table's latest commit, through Hadoop's FileSystem so s3a and
local paths alike), they let the flow skip the compact job when no partition is crowded, instead of
reconstructing a snapshot per table to count files (bench/RESULTS.md, session 6).

Spark-free at import: the flow uses `crowded_partitions` and `nothing_to_compact`; only
`files_written` and `table_state` talk to the JVM, through the session they are handed.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spark_jobs.contract import table_path, to_hadoop_uri

COMPACTED_TABLES = ("cdn_logs", "cdn_logs_rejects", "ingest_files")
# Per table, per distro: the files the date's partition holds after the commit.
FilesWritten = dict[str, dict[str, int]]


def files_per_distro(commit_lines: Iterable[str], date: dt.date) -> dict[str, int]:
    """Data files added per `distro` partition of `date` by one commit (its JSON lines)."""
    counts: Counter[str] = Counter()
    for line in commit_lines:
        if not line.strip():
            continue
        add = json.loads(line).get("add")
        if add is None:
            continue
        values = add.get("partitionValues") or {}
        if values.get("dt") == date.isoformat() and values.get("distro"):
            counts[values["distro"]] += 1
    return dict(counts)


def commit_info(commit_lines: Iterable[str]) -> dict[str, Any] | None:
    """A commit's commitInfo action (operation, userMetadata...), None without one."""
    for line in commit_lines:
        info = json.loads(line).get("commitInfo") if line.strip() else None
        if info is not None:
            return dict(info)
    return None


def commit_operation(commit_lines: Iterable[str]) -> str | None:
    """The operation (WRITE, MERGE, OPTIMIZE...) a commit's commitInfo names."""
    info = commit_info(commit_lines)
    return str(info.get("operation")) if info is not None else None


def _delta_log(spark: Any, path: str) -> Any:
    jvm = spark.sparkContext._jvm
    return jvm.org.apache.spark.sql.delta.DeltaLog.forTable(
        spark._jsparkSession, jvm.org.apache.hadoop.fs.Path(to_hadoop_uri(path)))


def _snapshot(spark: Any, path: str) -> Any:
    """The table's snapshot as this driver knows it: right after a commit of this driver, the one
    Delta keeps in memory (no listing, no job; DeltaTable.history ran a job per table)."""
    return _delta_log(spark, path).unsafeVolatileSnapshot()


@dataclass(frozen=True)
class TableState:
    """What a writer needs to know of an existing table: its columns and its properties."""

    columns: tuple[str, ...]
    properties: dict[str, str]


def updated_snapshot(spark: Any, path: str) -> Any | None:
    """The table's latest snapshot (a listing of `_delta_log` and its newest commits; the file list
    stays lazy), or None when there is no table: another process may have committed since the
    snapshot this driver holds."""
    none = spark.sparkContext._jvm.scala.Option.empty()
    snapshot = _delta_log(spark, path).update(False, none, none)
    return snapshot if int(snapshot.version()) >= 0 else None


def latest_commit_lines(spark: Any, path: str) -> list[str] | None:
    """The JSON lines of the table's latest commit (None: no table)."""
    snapshot = updated_snapshot(spark, path)
    if snapshot is None:
        return None
    return _read_text(spark, f"{path}/_delta_log/{int(snapshot.version()):020d}.json").splitlines()


def table_state(spark: Any, path: str) -> TableState | None:
    """Columns and properties of the table's latest snapshot (None: no table yet), from Delta's log
    alone: a listing of `_delta_log` and its newest commits, no Spark job (reading the schema
    through a DataFrame and DeltaTable.detail() were a snapshot and a job each, every ingest).
    Updated, not the cached snapshot (updated_snapshot)."""
    snapshot = updated_snapshot(spark, path)
    if snapshot is None:
        return None
    jvm = spark.sparkContext._jvm
    metadata = snapshot.metadata()
    properties = jvm.scala.jdk.javaapi.CollectionConverters.asJava(metadata.configuration())
    return TableState(tuple(metadata.schema().fieldNames()), {str(k): str(v) for k, v in properties.items()})


def _latest_version(spark: Any, path: str) -> int:
    return int(_snapshot(spark, path).version())


def _read_text(spark: Any, uri: str) -> str:
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(to_hadoop_uri(uri))
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    stream = fs.open(path)
    try:
        return str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
    finally:
        stream.close()


def files_written(spark: Any, warehouse: str, dates: Sequence[dt.date],
                  tables: Sequence[str] = COMPACTED_TABLES) -> dict[str, FilesWritten]:  # fmt: skip
    """Per date (ISO), files per distro in each table's latest commit, which must be a WRITE (the
    ingest's replaceWhere, one commit for all its dates); a table whose latest commit is anything
    else is left out, and the flow then runs the compact job for that date as before."""
    written: dict[str, FilesWritten] = {d.isoformat(): {} for d in dates}
    for table in tables:
        path = table_path(warehouse, table)
        lines = _read_text(spark, f"{path}/_delta_log/{_latest_version(spark, path):020d}.json").splitlines()
        if commit_operation(lines) == "WRITE":
            for date in dates:
                written[date.isoformat()][table] = files_per_distro(lines, date)
    return written


def crowded_partitions(written: Mapping[str, Mapping[str, int]], max_files: int,
                       tables: Sequence[str] = COMPACTED_TABLES) -> dict[str, list[str]] | None:  # fmt: skip
    """Per table, the distros with more than `max_files` files; None when `written` does not
    cover every table (then only the compact job can tell)."""
    if any(t not in written for t in tables):
        return None
    return {t: sorted(d for d, n in written[t].items() if n > max_files) for t in tables}


def nothing_to_compact(date: dt.date, written: Mapping[str, Mapping[str, int]],
                       tables: Sequence[str] = COMPACTED_TABLES) -> dict[str, Any]:  # fmt: skip
    """The compact job's result for a date with no crowded partition (what it would have returned)."""
    return {
        "date": date.isoformat(),
        "tables": {t: {"files_added": 0, "files_removed": 0} for t in tables},
        "files_per_partition": dict(written.get("cdn_logs", {})),
        "decided_from": "ingest commit",
        "seconds": 0.0,
    }
