"""Which dates' time series (stats_minute, stats_hourly) still match cdn_logs, without scanning it.

A daily run's window is D-2..D, but only D (and the dates a run re-ingests for late files) changed:
rescanning D-2 and D-1 every morning tripled the statistics' scan of the raw rows. Each write of
the two tables remembers, in its Delta commit (`userMetadata`), a digest of the cdn_logs files each
(distro, dt) partition of the window held when its statistics were computed. The next run compares
those digests with the table's files now (from Delta's log: no data read) and rebuilds only the
dates whose partitions differ. Anything unclear counts as changed: no digest, another writer's
commit (OPTIMIZE, an older cdnlake), the two tables disagreeing, another STATS_VERSION.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from spark_jobs.commit_files import commit_info, latest_commit_lines, updated_snapshot
from spark_jobs.contract import partitions_predicate, table_path

# Part of every digest: a change to a measure's rule then rebuilds every date once.
STATS_VERSION = "1"
TIME_SERIES_TABLES = ("stats_minute", "stats_hourly")
_KEY = "cdnlake_sources"
# "distro/dt" -> digest of the partition's files.
Digests = dict[str, str]


def _partition(distro: str, date: str) -> str:
    return f"{distro}/{date}"


def _distro_and_date(key: str) -> tuple[str, str]:
    distro, date = key.split("/", 1)
    return distro, date


def digests_of(files: Iterable[tuple[str, str, str, str]]) -> Digests:
    """(distro, dt, path, deletion vector) of each file -> one digest per (distro, dt) partition.
    Delta never rewrites a file in place, so the same names (and deletion vectors) are the same rows."""
    per_partition: dict[str, list[str]] = defaultdict(list)
    for distro, date, path, deletion_vector in files:
        per_partition[_partition(distro, date)].append(f"{path}\t{deletion_vector}")
    return {
        key: hashlib.sha256("\n".join([STATS_VERSION, *sorted(names)]).encode()).hexdigest()[:32]
        for key, names in per_partition.items()
    }


def cdn_logs_digests(spark: Any, warehouse: str, dates: Sequence[dt.date], distros: Sequence[str] | None) -> Digests:
    """Digests of cdn_logs' partitions of `dates` (and `distros`) now, from the table's snapshot:
    a query of Delta's file list, the same one a scan plans with, filtered by the partitions'
    shared predicate (validated values only)."""
    from pyspark.sql import DataFrame

    snapshot = updated_snapshot(spark, table_path(warehouse, "cdn_logs"))
    if snapshot is None:
        return {}
    files = DataFrame(snapshot.allFiles().toDF(), spark).selectExpr(
        "partitionValues['distro'] AS distro", "partitionValues['dt'] AS dt", "path",
        "coalesce(to_json(deletionVector), '') AS deletion_vector")  # fmt: skip
    rows = files.where(partitions_predicate(dict.fromkeys(dates, distros))).collect()
    return digests_of(tuple(r) for r in rows)


def remembered_digests(spark: Any, warehouse: str) -> Digests:
    """The digests both time-series tables' latest commits remember alike ({} for anything else)."""
    remembered: list[Digests] = []
    for table in TIME_SERIES_TABLES:
        lines = latest_commit_lines(spark, table_path(warehouse, table))
        remembered.append(_from_commit(lines) if lines is not None else {})
    first, *others = remembered
    return {k: v for k, v in first.items() if all(o.get(k) == v for o in others)}


def _from_commit(lines: Sequence[str]) -> Digests:
    info = commit_info(lines) or {}
    try:
        digests = json.loads(info.get("userMetadata") or "{}").get(_KEY)
    except (ValueError, AttributeError):  # another writer's free-form metadata
        return {}
    return {str(k): str(v) for k, v in digests.items()} if isinstance(digests, dict) else {}


def commit_metadata(digests: Digests) -> str:
    """userMetadata of the time-series writes: the window's digests as the written rows stand."""
    return json.dumps({_KEY: dict(sorted(digests.items()))}, separators=(",", ":"))


def unchanged_dates(candidates: Iterable[dt.date], now: Digests, remembered: Digests) -> list[dt.date]:
    """Candidates whose every partition in cdn_logs has the digest its statistics were built from.
    A date without partitions is left out: there is nothing to scan, and the tables keep what they
    have (as when a scan found no row)."""
    by_date: dict[str, list[str]] = defaultdict(list)
    for key in now:
        by_date[_distro_and_date(key)[1]].append(key)

    def unchanged(keys: list[str]) -> bool:
        return bool(keys) and all(remembered.get(k) == now[k] for k in keys)

    return sorted(d for d in candidates if unchanged(by_date.get(d.isoformat(), [])))


def dates_with_partitions(candidates: Iterable[dt.date], now: Digests) -> list[dt.date]:
    present = {_distro_and_date(key)[1] for key in now}
    return sorted(d for d in candidates if d.isoformat() in present)


def to_remember(now: Digests, remembered: Digests, window: Iterable[dt.date],
                distros: Sequence[str] | None) -> Digests:  # fmt: skip
    """What the written rows stand for: the window's partitions now (`now`: those of `distros`), and
    other distributions' as remembered (a run for some distributions leaves their rows as they were).
    Only the window's dates: the next run's window is within it, and the metadata stays small."""
    dates = {d.isoformat() for d in window}
    others = {k: v for k, v in remembered.items()
              if distros and _distro_and_date(k)[1] in dates and _distro_and_date(k)[0] not in distros}  # fmt: skip
    return others | now
