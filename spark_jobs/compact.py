"""Compact one date's partitions into few large files (Delta OPTIMIZE), then drop old files.

CloudFront delivers thousands of small files a day; the original system's queries got 70-80%
faster once each distribution and day was one file. OPTIMIZE bin-packs up to 1 GiB per file.
The small-file problem is a matter of file count, and OPTIMIZE rewrites a whole partition in one
task (47 s for a 2M-line day here, longer than the ingest's write): partitions with at most
--max-files files are left as they are, and in the others only files under 64 MiB are rewritten.
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from spark_jobs import args as job_args
from spark_jobs.commit_files import COMPACTED_TABLES
from spark_jobs.params import CompactParams
from spark_jobs.storage import table_exists, table_path

MIN_FILE_SIZE = str(64 * 1024 * 1024)  # files this large are not rewritten


def files_per_partition(spark: SparkSession, path: str, predicate: str) -> dict[str, int]:
    """Number of data files per `distro` partition for the predicate (from the Delta log, no scan)."""
    files = spark.read.format("delta").load(path).where(predicate).inputFiles()
    return dict(Counter(re.search(r"/distro=([^/]+)/", f)[1] for f in files))  # type: ignore[index]


def crowded_predicate(counts: dict[str, int], predicate: str, max_files: int) -> str | None:
    """`predicate` narrowed to the distro partitions with more than max_files files, or None."""
    crowded = sorted(d for d, n in counts.items() if n > max_files)
    if not crowded:
        return None
    return f"({predicate}) AND distro IN (" + ", ".join(f"'{d}'" for d in crowded) + ")"


def run(spark: SparkSession, params: CompactParams) -> dict[str, Any]:
    started = time.monotonic()
    predicate = job_args.partition_predicate(params.date, params.distributions)
    result: dict[str, Any] = {"date": params.date.isoformat(), "tables": {}}
    spark.conf.set("spark.databricks.delta.optimize.minFileSize", MIN_FILE_SIZE)
    for table in COMPACTED_TABLES:
        if not table_exists(spark, params.warehouse, table):
            continue
        path = table_path(params.warehouse, table)
        counts = files_per_partition(spark, path, predicate)
        crowded = crowded_predicate(counts, predicate, params.max_files)
        added = removed = 0
        if crowded:
            metrics = DeltaTable.forPath(spark, path).optimize().where(crowded).executeCompaction()
            row = metrics.select("metrics.numFilesAdded", "metrics.numFilesRemoved").first()
            added, removed = (int(row[0]), int(row[1])) if row else (0, 0)
            # Only after a rewrite are the files listed again: a run with nothing to do reads each log once.
            counts = files_per_partition(spark, path, predicate) if table == "cdn_logs" else counts
        result["tables"][table] = {"files_added": added, "files_removed": removed}
        if table == "cdn_logs":
            result["files_per_partition"] = counts
    if params.vacuum:
        for table in COMPACTED_TABLES:
            if table_exists(spark, params.warehouse, table):
                # Default retention (7 days) keeps time travel and concurrent readers safe.
                DeltaTable.forPath(spark, table_path(params.warehouse, table)).vacuum()
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="compact", description=__doc__)
    job_args.add_common(parser, warehouse=True)
    parser.add_argument("--vacuum", action="store_true", help="remove files older than the retention")
    parser.add_argument("--max-files", type=int, default=8,
                        help="partitions with at most this many files are left alone (0: always)")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    job_args.run_main(build_parser(), run, argv, CompactParams)


if __name__ == "__main__":
    main()
