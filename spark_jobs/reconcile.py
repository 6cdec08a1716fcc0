"""Data-quality reconciliation of one UTC date: statistics vs raw rows vs ingest accounting.

Checks, for date D and the selected distributions:
(a) every measure of stats_hourly summed over D equals the same measure computed on cdn_logs;
(b) the cdn_logs rows of D equal sum(loaded) of ingest_files for D;
(c) every file of ingest_files: lines_read = loaded + rejected.
All mismatches are collected and raised together as a ReconciliationError.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs import args as job_args
from spark_jobs.params import ReconcileParams
from spark_jobs.schema import CDN_LOGS_SCHEMA
from spark_jobs.storage import table_exists, table_path

# Written again, as SQL text, instead of reusing spark_jobs.aggregate: a rule coded wrong once
# then shows up as a mismatch rather than agreeing with itself.
RAW_TOTALS_SQL = """
SELECT
  count(*) AS request_count,
  count_if(x_edge_response_result_type = 'Hit') AS hit_count,
  count_if(x_edge_response_result_type = 'Miss') AS miss_count,
  count_if(x_edge_response_result_type = 'RefreshHit') AS refresh_hit_count,
  count_if(x_edge_response_result_type IN ('LimitExceeded', 'CapacityExceeded', 'Error')) AS error_count,
  count_if(sc_status >= 200 AND sc_status < 300 AND x_edge_result_type = 'Error') AS incomplete_count,
  count_if(sc_status DIV 100 = 2) AS http2xx_count,
  count_if(sc_status DIV 100 = 3) AS http3xx_count,
  count_if(sc_status DIV 100 = 4) AS http4xx_count,
  count_if(sc_status DIV 100 = 5) AS http5xx_count,
  coalesce(sum(sc_bytes), 0) AS bytes_requested,
  coalesce(sum(CASE WHEN x_edge_response_result_type = 'Miss' THEN sc_bytes END), 0) AS bytes_missed,
  coalesce(sum(CASE WHEN x_edge_response_result_type = 'Hit' THEN sc_bytes END), 0) AS bytes_hit
FROM {logs}
"""
_STATS_KEYS = ("distro", "dt", "hour")


class ReconciliationError(RuntimeError):
    """Statistics, raw rows and ingest accounting disagree; `mismatches` lists every difference."""

    def __init__(self, date: dt.date, mismatches: list[str]) -> None:
        self.date = date
        self.mismatches = mismatches
        lines = "\n".join(f"  - {m}" for m in mismatches)
        super().__init__(f"reconciliation of {date.isoformat()} failed ({len(mismatches)} mismatches):\n{lines}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Orchestrators pickle failures (task states, retries); the default would lose the arguments.
        return (type(self), (self.date, self.mismatches))


def _read(spark: SparkSession, warehouse: str, table: str, predicate: str) -> DataFrame | None:
    if not table_exists(spark, warehouse, table):
        return None
    return spark.read.format("delta").load(table_path(warehouse, table)).where(predicate)


def raw_totals(spark: SparkSession, warehouse: str, predicate: str) -> dict[str, int]:
    """Every measure computed directly on the cdn_logs rows matching `predicate`."""
    logs = _read(spark, warehouse, "cdn_logs", predicate)
    if logs is None:
        logs = spark.createDataFrame([], CDN_LOGS_SCHEMA)
    return {k: int(v) for k, v in spark.sql(RAW_TOTALS_SQL, logs=logs).first().asDict().items()}


def stats_totals(spark: SparkSession, warehouse: str, predicate: str) -> dict[str, int]:
    """Each stats_hourly measure column summed over the rows matching `predicate` ({} if no table)."""
    stats = _read(spark, warehouse, "stats_hourly", predicate)
    if stats is None:
        return {}
    measures = [c for c in stats.columns if c not in _STATS_KEYS]
    row = stats.agg(*[F.coalesce(F.sum(c), F.lit(0)).alias(c) for c in measures]).first()
    return {c: int(row[c]) for c in measures}


def compare_measures(stats: dict[str, int], raw: dict[str, int], date: dt.date) -> list[str]:
    if not stats:  # no statistics table yet: it must then have nothing to account for
        stats = dict.fromkeys(raw, 0)
    problems = [f"{m}: statistics {stats[m]} != raw rows {raw[m]} ({date})" for m in raw
                if m in stats and stats[m] != raw[m]]  # fmt: skip
    problems += [f"{m}: missing from stats_hourly ({date})" for m in raw if m not in stats]
    problems += [f"{m}: stats_hourly column with no raw-row check ({date})" for m in stats if m not in raw]
    return problems


def ingest_accounting(spark: SparkSession, warehouse: str, predicate: str) -> list[dict[str, Any]]:
    files = _read(spark, warehouse, "ingest_files", predicate)
    if files is None:
        return []
    return [r.asDict() for r in files.select("source_file", "lines_read", "loaded", "rejected").collect()]


def compare_accounting(files: list[dict[str, Any]], logs_rows: int, date: dt.date) -> list[str]:
    loaded = sum(f["loaded"] for f in files)
    problems = []
    if loaded != logs_rows:
        problems.append(f"loaded rows: cdn_logs {logs_rows} != ingest_files.loaded {loaded} ({date})")
    for f in sorted(files, key=lambda f: f["source_file"]):
        if f["lines_read"] != f["loaded"] + f["rejected"]:
            problems.append(f"{f['source_file']}: lines_read {f['lines_read']} != loaded {f['loaded']} "
                            f"+ rejected {f['rejected']} ({date})")  # fmt: skip
    return problems


def reconcile(
    spark: SparkSession, warehouse: str, date: dt.date, distributions: Sequence[str] | None = None
) -> dict[str, Any]:
    """Run checks (a)-(c) for UTC `date`; return the checked totals or raise ReconciliationError."""
    predicate = job_args.partition_predicate(date, distributions)
    # Three small, independent reads: side by side, the run waits for the slowest instead of the sum
    # (each is mostly a Delta snapshot and a job's fixed cost).
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="cdnlake-reconcile") as pool:
        raw_future = pool.submit(raw_totals, spark, warehouse, predicate)
        files_future = pool.submit(ingest_accounting, spark, warehouse, predicate)
        stats_future = pool.submit(stats_totals, spark, warehouse, predicate)
        raw, files, stats = raw_future.result(), files_future.result(), stats_future.result()
    mismatches = compare_measures(stats, raw, date)
    mismatches += compare_accounting(files, raw["request_count"], date)
    if mismatches:
        raise ReconciliationError(date, mismatches)
    return {
        "date": date.isoformat(),
        "distributions": list(distributions) if distributions else None,
        "measures": raw,
        "cdn_logs_rows": raw["request_count"],
        "files": len(files),
        **{k: sum(f[k] for f in files) for k in ("lines_read", "loaded", "rejected")},
    }


def run(spark: SparkSession, params: ReconcileParams) -> dict[str, Any]:
    started = time.monotonic()
    result = reconcile(spark, params.warehouse, params.date, params.distributions)
    return result | {"seconds": round(time.monotonic() - started, 2)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reconcile", description=__doc__)
    job_args.add_common(parser, warehouse=True)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    job_args.run_main(build_parser(), run, argv, ReconcileParams)


if __name__ == "__main__":
    main()
