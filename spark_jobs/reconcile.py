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
from spark_jobs.local_frames import local_frame
from spark_jobs.params import ReconcileParams
from spark_jobs.reconcile_checks import (  # re-exported: the checks' home before they were shared
    RAW_TOTALS_SQL,
    ReconciliationError,
    checked,
    compare_accounting,
    compare_measures,
)
from spark_jobs.schema import CDN_LOGS_SCHEMA
from spark_jobs.storage import table_exists, table_path

_STATS_KEYS = ("distro", "dt", "hour")
__all__ = ["RAW_TOTALS_SQL", "ReconciliationError", "compare_accounting", "compare_measures", "reconcile", "run"]


def _read(spark: SparkSession, warehouse: str, table: str, predicate: str) -> DataFrame | None:
    if not table_exists(spark, warehouse, table):
        return None
    return spark.read.format("delta").load(table_path(warehouse, table)).where(predicate)


def raw_totals(spark: SparkSession, warehouse: str, predicate: str) -> dict[str, int]:
    """Every measure computed directly on the cdn_logs rows matching `predicate`."""
    logs = _read(spark, warehouse, "cdn_logs", predicate)
    if logs is None:
        logs = local_frame(spark, [], CDN_LOGS_SCHEMA)
    return {k: int(v) for k, v in spark.sql(RAW_TOTALS_SQL, logs=logs).first().asDict().items()}


def stats_totals(spark: SparkSession, warehouse: str, predicate: str) -> dict[str, int]:
    """Each stats_hourly measure column summed over the rows matching `predicate` ({} if no table)."""
    stats = _read(spark, warehouse, "stats_hourly", predicate)
    if stats is None:
        return {}
    measures = [c for c in stats.columns if c not in _STATS_KEYS]
    row = stats.agg(*[F.coalesce(F.sum(c), F.lit(0)).alias(c) for c in measures]).first()
    return {c: int(row[c]) for c in measures}


def ingest_accounting(spark: SparkSession, warehouse: str, predicate: str) -> list[dict[str, Any]]:
    files = _read(spark, warehouse, "ingest_files", predicate)
    if files is None:
        return []
    return [r.asDict() for r in files.select("source_file", "lines_read", "loaded", "rejected").collect()]


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
    return checked(date, distributions, raw, stats, files)


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
