"""Ingest one UTC date of raw CloudFront logs into cdn_logs, cdn_logs_rejects and ingest_files."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import os
import time
import uuid
from collections.abc import Sequence
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from spark_jobs import args as job_args
from spark_jobs import storage
from spark_jobs.commit_files import files_written
from spark_jobs.ingest_accounting import (
    INLINE_REJECTS,
    file_rejects,
    find_duplicates,
    ingest_files_rows,
    observe_files,
    observed_accounting,
    summarise,
)
from spark_jobs.ingest_duplicates import move_duplicates
from spark_jobs.log_fields import field_delimiter
from spark_jobs.log_keys import escape_glob
from spark_jobs.params import IngestParams
from spark_jobs.privacy import IP_MODES, PrivacyOptions
from spark_jobs.raw_reader import ReaderOptions, read_binary_batches
from spark_jobs.schema import CDN_LOGS_SCHEMA, INGEST_FILES_SCHEMA, PARSED_SCHEMA, REJECTS_SCHEMA
from spark_jobs.storage import RawFile, listed_raw_files, read_file_list, table_path

# Files are read whole by Python workers: a few per Arrow batch keeps worker memory bounded.
_FILES_PER_ARROW_BATCH = "4"


# Delta collects min/max/null statistics per file for these columns only: with its default (the
# first 32 columns) statistics cost 3x the Parquet write itself. These are what queries filter on
# besides the distro/dt partitions.
CDN_LOGS_PROPERTIES = {
    "delta.dataSkippingStatsColumns": "ts,hour,sc_status,x_edge_location,x_edge_response_result_type",
}

# The IP hash key never travels on a command line (a Spark conf would be on the JVM's argv, seen
# by `ps`), nor in IngestParams (to_argv): the in-process runner passes it to run() directly; a
# Kubernetes driver gets this variable from the Secret (secretKeyRef) and run() reads it here.
# The hashing closure carries it to the executors.
HASH_KEY_ENV = "CDNLAKE_IP_HASH_KEY"


def privacy_options(params: IngestParams, ip_hash_key: str = "") -> PrivacyOptions:
    key = ip_hash_key or os.environ.get(HASH_KEY_ENV, "")
    return PrivacyOptions(ip_mode=params.anonymize_ip, hash_key=key.encode(), keep_cookies=params.keep_cookies)


def reader_options(params: IngestParams, ip_hash_key: str = "") -> ReaderOptions:
    privacy = privacy_options(params, ip_hash_key)
    return ReaderOptions(privacy, field_delimiter(params.v2_delimiter), params.date.isoformat())


def read_raw_lines(spark: SparkSession, files: list[RawFile], options: ReaderOptions) -> DataFrame:
    """One typed row per data line (plus one marker row per file) of the given raw files.

    One file scan per distribution: Spark packs a scan's files into tasks by size, so with a single
    scan every task held all distributions and wrote a file into each partition (~11 small files
    per distribution-day at 2M lines, which compaction then rewrote); per distribution each task
    writes one.
    """
    parse = functools.partial(read_binary_batches, options=options)
    by_distro: dict[str, list[str]] = {}
    for f in files:
        # Spark globs the paths it is given: `[`, `*`, `?` in a file name must be read literally.
        by_distro.setdefault(f.distro, []).append(escape_glob(f.path))
    scans = [spark.read.format("binaryFile").load(paths).mapInArrow(parse, PARSED_SCHEMA)
             for _, paths in sorted(by_distro.items())]  # fmt: skip
    return functools.reduce(DataFrame.unionByName, scans)


def ensure_cdn_logs(spark: SparkSession, path: str) -> dict[str, str]:
    """The writer options cdn_logs needs: a new table gets its properties from the first write
    (creating it first was a commit and a snapshot of its own, ~5 s of a first run); an older
    table gains the columns and properties added since. Two first runs at once: the second's
    commit fails on the first's and the task's retry writes into the table it made."""
    if not DeltaTable.isDeltaTable(spark, path):
        return dict(CDN_LOGS_PROPERTIES)
    add_missing_columns(spark, path)
    current = DeltaTable.forPath(spark, path).detail().first()["properties"]
    changed = {k: v for k, v in CDN_LOGS_PROPERTIES.items() if current.get(k) != v}
    if changed:
        settings = ", ".join(f"'{k}' = '{v}'" for k, v in changed.items())
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({settings})")
    return {}


def add_missing_columns(spark: SparkSession, path: str) -> None:
    """A table made by an earlier version gains the columns added since (the v2 fields), NULL in
    its existing rows; a replaceWhere overwrite would otherwise refuse the wider rows."""
    existing = {f.name for f in spark.read.format("delta").load(path).schema.fields}
    missing = [f for f in CDN_LOGS_SCHEMA.fields if f.name not in existing]
    if missing:
        columns = ", ".join(f"{f.name} {f.dataType.simpleString().upper()}" for f in missing)
        spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS ({columns})")


def write_partitions(df: DataFrame, path: str, predicate: str, options: dict[str, str] | None = None) -> None:
    """Replace exactly the partitions matching `predicate` (re-running a date never duplicates)."""
    writer = df.write.format("delta").mode("overwrite").option("replaceWhere", predicate).options(**(options or {}))
    writer.partitionBy("distro", "dt").save(path)


def write_cdn_logs(parsed: DataFrame, warehouse: str, predicate: str) -> None:
    """The loaded lines (no reason, not a marker) into cdn_logs: the job that parses the files."""
    loaded = parsed.filter(F.col("line_no").isNotNull() & F.col("reason").isNull())
    path = table_path(warehouse, "cdn_logs")
    options = ensure_cdn_logs(parsed.sparkSession, path)
    write_partitions(loaded.select(*CDN_LOGS_SCHEMA.fieldNames()), path, predicate, options)


def reread_rejects(spark: SparkSession, files: list[RawFile], options: ReaderOptions, run_id: str) -> DataFrame:
    """The rejected lines of files that had too many to come inline, read from those files again."""
    parsed = read_raw_lines(spark, files, dataclasses.replace(options, inline_rejects=None))
    rejected = parsed.where(F.col("line_no").isNotNull() & F.col("reason").isNotNull())
    return rejected.select("source_file", "line_no", F.col("value").alias("raw_line"), "reason",
                           F.lit(run_id).alias("ingest_run"), "distro", "dt")  # fmt: skip


def raw_files(spark: SparkSession, params: IngestParams, wanted: set[str] | None) -> list[RawFile]:
    """The date's raw files: those the run listed (`files`, or the `--files-from` document), else one
    listing of the source here (a job run alone)."""
    listed = read_file_list(spark, params.files_from) if params.files_from else params.files
    if listed is None:
        return storage.list_raw_files(spark, params.source, {params.date}, wanted)
    return listed_raw_files(spark, listed, {params.date}, wanted)


def run(spark: SparkSession, params: IngestParams, ip_hash_key: str = "") -> dict[str, Any]:
    """Ingest params.date; returns per-distribution accounting (lines read = loaded + rejected).

    `ip_hash_key`: the key for CDNLAKE_ANONYMIZE_IP=hash (else the CDNLAKE_IP_HASH_KEY variable).
    One job parses the files and writes cdn_logs, observing each file's accounting and its rejected
    lines on the way (spark_jobs/ingest_accounting.py); repeats are then moved out of what was
    written (spark_jobs/ingest_duplicates.py); rejects and ingest_files come from the driver.
    """
    started = time.monotonic()
    date: dt.date = params.date
    run_id = params.run_id or uuid.uuid4().hex[:12]
    wanted = set(params.distributions) if params.distributions else None
    files = raw_files(spark, params, wanted)
    result: dict[str, Any] = {"date": date.isoformat(), "run_id": run_id, "files": len(files)}
    if not files:
        # Nothing to load: leave the tables as they are rather than wiping the date.
        return result | {"lines_read": 0, "loaded": 0, "rejected": 0, "per_distro": {}}
    distros = sorted({f.distro for f in files})
    predicate = job_args.partition_predicate(date, distros if wanted else None)

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", _FILES_PER_ARROW_BATCH)
    # Spark checks the listed paths again before reading, in a job of one task per path past 32
    # paths (96 tasks a distribution: 9 s of a 2M-line ingest on 2 cores); one task per core
    # keeps it parallel on a cluster (S3 requests) without the per-task overhead.
    cores = str(spark.sparkContext.defaultParallelism)
    spark.conf.set("spark.sql.sources.parallelPartitionDiscovery.parallelism", cores)
    options = dataclasses.replace(reader_options(params, ip_hash_key), inline_rejects=INLINE_REJECTS)
    observation = Observation(f"ingest-{run_id}")
    parsed = read_raw_lines(spark, files, options).transform(lambda df: observe_files(df, observation))
    write_cdn_logs(parsed, params.warehouse, predicate)
    accounting = observed_accounting(observation)
    duplicates = find_duplicates(accounting.markers)
    moved = move_duplicates(spark, table_path(params.warehouse, "cdn_logs"), (date.isoformat(), distros),
                            duplicates, run_id)  # fmt: skip
    rejects = spark.createDataFrame(file_rejects(files, accounting, run_id), REJECTS_SCHEMA)
    if moved is not None:
        rejects = rejects.unionByName(moved.rejects)
    overflowing = set(accounting.overflowing())
    if overflowing:
        rejects = rejects.unionByName(reread_rejects(spark, [f for f in files if f.path in overflowing], options,
                                                     run_id))  # fmt: skip
    write_partitions(rejects, table_path(params.warehouse, "cdn_logs_rejects"), predicate)
    rows = ingest_files_rows(files, accounting, duplicates, moved.per_file if moved else {}, run_id)
    files_df = spark.createDataFrame(rows, INGEST_FILES_SCHEMA)
    write_partitions(files_df, table_path(params.warehouse, "ingest_files"), predicate)
    written = {"files_written": files_written(spark, params.warehouse, date)}  # compaction decides from it
    return result | summarise(rows) | written | {"seconds": round(time.monotonic() - started, 2)}


def v2_delimiter(value: str) -> str:
    try:
        field_delimiter(value)
        return value
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--v2-delimiter: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    job_args.add_common(parser, warehouse=True, source=True)
    parser.add_argument("--run-id", default=None, help="identifier stored with every row")
    parser.add_argument("--anonymize-ip", choices=IP_MODES, default="truncate",
                        help="client IPs: truncate (IPv4 /24, IPv6 /48, default), hash (keyed), none")
    parser.add_argument("--keep-cookies", action="store_true", help="store cs(Cookie) (dropped by default)")
    parser.add_argument("--v2-delimiter", type=v2_delimiter, default="tab",
                        help="field delimiter of standard logging v2 text deliveries (default: tab)")
    parser.add_argument("--files-from", type=job_args.location, default=None,
                        help="JSON list of the raw files to read ({uri, size, modified_ms}); else the source is listed")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    job_args.run_main(build_parser(), run, argv, IngestParams)


if __name__ == "__main__":
    main()
