"""Ingest one UTC date of raw CloudFront logs into cdn_logs, cdn_logs_rejects and ingest_files."""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import time
import uuid
from collections.abc import Sequence
from typing import Any

from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from spark_jobs import args as job_args
from spark_jobs import storage
from spark_jobs.commit_files import files_written
from spark_jobs.log_fields import field_delimiter
from spark_jobs.log_keys import escape_glob
from spark_jobs.params import IngestParams
from spark_jobs.privacy import IP_MODES, PrivacyOptions
from spark_jobs.raw_reader import ReaderOptions, read_binary_batches
from spark_jobs.schema import (
    CDN_LOGS_SCHEMA,
    INGEST_FILES_SCHEMA,
    PARSED_SCHEMA,
    REJECTS_SCHEMA,
)
from spark_jobs.storage import RawFile, listed_raw_files, read_file_list, table_path
from spark_jobs.useragent import agent_table, with_user_agent_details

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


def with_duplicate_files(parsed: DataFrame, duplicates: dict[str, str]) -> DataFrame:
    """Reject every line of a file whose bytes equal an earlier file's (same delivery twice)."""
    if not duplicates:
        return parsed
    mapping = F.create_map(*[F.lit(x) for pair in duplicates.items() for x in pair])
    original = F.element_at(mapping, F.col("source_file"))
    reason = F.when(
        F.col("line_no").isNotNull() & original.isNotNull(),
        F.coalesce("reason", F.concat(F.lit("duplicate file: same bytes as "), original)),
    ).otherwise(F.col("reason"))
    return parsed.withColumn("reason", reason)


def find_duplicates(markers: list[Any]) -> dict[str, str]:
    """{duplicate path: first path} for files with identical content (by sha256)."""
    first: dict[str, str] = {}
    duplicates: dict[str, str] = {}
    for row in sorted(markers, key=lambda r: r["source_file"]):
        digest = row["value"]
        if digest in first:
            duplicates[row["source_file"]] = first[digest]
        else:
            first[digest] = row["source_file"]
    return duplicates


def _request_hashes(staged: DataFrame) -> DataFrame:
    good = staged.where(F.col("line_no").isNotNull() & F.col("reason").isNull()
                        & F.col("x_edge_request_id").isNotNull())  # fmt: skip
    return good.select("source_file", "line_no", "x_edge_request_id", "c_country",
                       F.xxhash64("x_edge_request_id").alias("request_hash"))  # fmt: skip


def duplicate_requests(spark: SparkSession, staged: DataFrame) -> DataFrame | None:
    """(source_file, line_no, duplicate) for each good line whose request id an earlier line has;
    None when no two good lines share an id (the usual day).

    x-edge-request-id is unique per request, so a repeat is the same request delivered twice (a
    file re-sent under another name, an overlapping concatenation). The first by (file, line) is
    kept. One action shuffles 64-bit hashes of all ids and returns the hashes seen more than once
    (a few, or none); only the lines with those hashes are compared by id.
    """
    hashed = staged.transform(_request_hashes)
    shared = hashed.groupBy("request_hash").count().where(F.col("count") > 1).select("request_hash")
    colliding = [(r[0],) for r in shared.collect()]
    if not colliding:
        return None
    suspects = spark.createDataFrame(colliding, "request_hash bigint")
    # A request delivered by legacy and v2 logging keeps the v2 copy (it carries the viewer's country).
    window = Window.partitionBy("x_edge_request_id").orderBy(F.col("c_country").isNull(), "source_file", "line_no")
    first = F.first(F.struct("source_file", "line_no")).over(window)
    return (
        hashed.join(F.broadcast(suspects), "request_hash")
        .withColumns({"n": F.row_number().over(window), "first": first})
        .where(F.col("n") > 1)
        .select("source_file", "line_no", F.concat(
            F.lit("duplicate request id: first at "), F.col("first.source_file"),
            F.lit(" line "), F.col("first.line_no").cast("string"),
        ).alias("duplicate"))
    )  # fmt: skip


def with_duplicate_requests(staged: DataFrame, duplicates: DataFrame) -> DataFrame:
    """Reject the repeated requests found by duplicate_requests (their reason says where the first is)."""
    joined = staged.join(duplicates, ["source_file", "line_no"], "left")
    return joined.withColumn("reason", F.coalesce("reason", "duplicate")).drop("duplicate")


def rejects_frame(staged: DataFrame, run_id: str) -> DataFrame:
    """Rejected lines and damaged-file markers (line_no NULL) with their reason."""
    rejected = staged.filter(F.col("reason").isNotNull())
    return rejected.select(
        "source_file",
        "line_no",
        F.col("value").alias("raw_line"),
        "reason",
        F.lit(run_id).alias("ingest_run"),
        "distro",
        "dt",
    )


def unread_reason(f: RawFile) -> str:
    # Spark's file sources skip zero-length files, so they never reach the reader.
    return "zero-byte file (not gzip)" if f.size == 0 else "file was not read"


def unread_files_frame(spark: SparkSession, files: list[RawFile], seen: set[str], run_id: str) -> DataFrame:
    """Reject rows for listed files that produced no marker row, so none goes unrecorded."""
    rows = [(f.path, None, None, unread_reason(f), run_id, f.distro, f.date) for f in files if f.path not in seen]
    return spark.createDataFrame(rows, REJECTS_SCHEMA)


def ingest_files_rows(
    files: list[RawFile], accounting: dict[str, Any], duplicates: dict[str, str], run_id: str
) -> list[tuple[Any, ...]]:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = []
    for f in files:
        a = accounting.get(f.path)
        lines, rejected = (a["lines_read"], a["rejected"]) if a else (0, 0)
        damage = a["reason"] if a else unread_reason(f)
        modified = dt.datetime.fromtimestamp(f.modified_ms / 1000, dt.UTC).replace(tzinfo=None)
        rows.append(
            (f.path, f.path.rsplit("/", 1)[-1], f.size, modified, lines, lines - rejected, rejected,
             damage is not None, duplicates.get(f.path), run_id, now, f.distro, f.date)
        )  # fmt: skip
    return rows


def agg_file_accounting(staged: DataFrame) -> DataFrame:
    """Per file: its marker (`value` = sha256, `reason` = damage), lines read and lines rejected."""
    is_line = F.col("line_no").isNotNull()
    return staged.groupBy("source_file").agg(
        F.max(F.when(~is_line, F.col("value"))).alias("value"),
        F.max(F.when(~is_line, F.col("reason"))).alias("reason"),
        F.count_if(is_line).alias("lines_read"),
        F.count_if(is_line & F.col("reason").isNotNull()).alias("rejected"),
    )


def ensure_cdn_logs(spark: SparkSession, path: str) -> None:
    """Create cdn_logs with its schema and properties, or bring an older table's properties up to date."""
    if not DeltaTable.isDeltaTable(spark, path):
        builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(CDN_LOGS_SCHEMA)
        builder = builder.partitionedBy("distro", "dt")
        for key, value in CDN_LOGS_PROPERTIES.items():
            builder = builder.property(key, value)
        try:
            builder.execute()
        except Exception:
            # Another process's first run created it meanwhile (DELTA_CREATE_TABLE_WITH_NON_EMPTY_LOCATION).
            if not DeltaTable.isDeltaTable(spark, path):
                raise
        return
    add_missing_columns(spark, path)
    current = DeltaTable.forPath(spark, path).detail().first()["properties"]
    changed = {k: v for k, v in CDN_LOGS_PROPERTIES.items() if current.get(k) != v}
    if changed:
        settings = ", ".join(f"'{k}' = '{v}'" for k, v in changed.items())
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({settings})")


def add_missing_columns(spark: SparkSession, path: str) -> None:
    """A table made by an earlier version gains the columns added since (the v2 fields), NULL in
    its existing rows; a replaceWhere overwrite would otherwise refuse the wider rows."""
    existing = {f.name for f in spark.read.format("delta").load(path).schema.fields}
    missing = [f for f in CDN_LOGS_SCHEMA.fields if f.name not in existing]
    if missing:
        columns = ", ".join(f"{f.name} {f.dataType.simpleString().upper()}" for f in missing)
        spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS ({columns})")


def write_partitions(df: DataFrame, path: str, predicate: str) -> None:
    """Replace exactly the partitions matching `predicate` (re-running a date never duplicates)."""
    (
        df.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", predicate)
        .partitionBy("distro", "dt")
        .save(path)
    )


def write_cdn_logs(spark: SparkSession, staged_lines: DataFrame, warehouse: str, predicate: str) -> None:
    """The loaded lines, with the User-Agent details of their distinct agents, into cdn_logs."""
    loaded = staged_lines.filter(F.col("line_no").isNotNull() & F.col("reason").isNull())
    agents = [r[0] for r in loaded.select("cs_user_agent").distinct().collect()]
    logs = with_user_agent_details(loaded, agent_table(spark, agents)).select(*CDN_LOGS_SCHEMA.fieldNames())
    ensure_cdn_logs(spark, table_path(warehouse, "cdn_logs"))
    write_partitions(logs, table_path(warehouse, "cdn_logs"), predicate)


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
    predicate = job_args.partition_predicate(date, sorted({f.distro for f in files}) if wanted else None)

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", _FILES_PER_ARROW_BATCH)
    # Spark checks the listed paths again before reading, in a job of one task per path past 32
    # paths (96 tasks a distribution: 9 s of a 2M-line ingest on 2 cores); one task per core
    # keeps it parallel on a cluster (S3 requests) without the per-task overhead.
    cores = str(spark.sparkContext.defaultParallelism)
    spark.conf.set("spark.sql.sources.parallelPartitionDiscovery.parallelism", cores)
    # The parsed day is read five times. On local disk, not in the heap: kept in memory it ran the
    # JVM out of a 3 GiB heap at 8M lines (the day grows, the executors do not); on disk the
    # 2M-line ingest took 8% longer and its peak memory fell from 4.4 to 2.9 GiB (bench/RESULTS.md).
    staged = read_raw_lines(spark, files, reader_options(params, ip_hash_key)).persist(StorageLevel.DISK_ONLY)
    repeated: DataFrame | None = None
    try:
        # The first action parses every file into the cache and yields each file's accounting.
        accounting = {r["source_file"]: r.asDict() for r in staged.transform(agg_file_accounting).collect()}
        duplicates = find_duplicates(list(accounting.values()))
        staged_lines = with_duplicate_files(staged, duplicates)
        # The marker's `value` is the file digest, not a line: keep only its reason in rejects.
        staged_lines = staged_lines.withColumn("value", F.when(F.col("line_no").isNotNull(), F.col("value")))
        repeated = duplicate_requests(spark, staged_lines)
        repeats: dict[str, int] = {}
        if repeated is not None:  # usually None: then the lines are written without a join
            repeated = repeated.persist(StorageLevel.MEMORY_AND_DISK)
            repeats = {r["source_file"]: r["count"] for r in repeated.groupBy("source_file").count().collect()}
            staged_lines = with_duplicate_requests(staged_lines, repeated)
        for path, a in accounting.items():
            a["rejected"] = a["lines_read"] if path in duplicates else a["rejected"] + repeats.get(path, 0)
        write_cdn_logs(spark, staged_lines, params.warehouse, predicate)
        rejects = rejects_frame(staged_lines, run_id).unionByName(
            unread_files_frame(spark, files, set(accounting), run_id)
        )
        write_partitions(rejects, table_path(params.warehouse, "cdn_logs_rejects"), predicate)
    finally:
        staged.unpersist()
        if repeated is not None:
            repeated.unpersist()
    rows = ingest_files_rows(files, accounting, duplicates, run_id)
    files_df = spark.createDataFrame(rows, INGEST_FILES_SCHEMA)
    write_partitions(files_df, table_path(params.warehouse, "ingest_files"), predicate)
    written = {"files_written": files_written(spark, params.warehouse, date)}  # compaction decides from it
    return result | summarise(rows) | written | {"seconds": round(time.monotonic() - started, 2)}


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
