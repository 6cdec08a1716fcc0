"""Where things live: table locations under the warehouse and the listing of raw files.

Listing goes through Hadoop's FileSystem so one code path serves local folders and S3 (s3a).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import SparkSession

from spark_jobs.raw_reader import parse_file_name

TABLES = (
    "cdn_logs",
    "cdn_logs_rejects",
    "ingest_files",
    "stats_hourly",
    "stats_minute",
    "stats_top_objects",
    "stats_top_referrers",
    "stats_edge_locations",
    "stats_viewers",
    "miss_rules",
    "miss_top_objects",
    "miss_edge_ratio",
)


class SourceNotFoundError(RuntimeError):
    """The raw log location does not exist."""


@dataclass(frozen=True)
class RawFile:
    path: str
    size: int
    modified_ms: int
    distro: str
    date: str
    hour: int


def to_hadoop_uri(uri: str) -> str:
    """`s3://bucket/x` -> `s3a://bucket/x` (the connector Spark ships); local paths unchanged."""
    return "s3a://" + uri[len("s3://") :] if uri.startswith("s3://") else uri


def table_path(warehouse: str, table: str) -> str:
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; known tables: {', '.join(TABLES)}")
    return to_hadoop_uri(warehouse.rstrip("/")) + "/" + table


def _hadoop_fs(spark: SparkSession, uri: str):  # noqa: ANN202 - py4j objects are untyped
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    path = jvm.org.apache.hadoop.fs.Path(to_hadoop_uri(uri))
    return path, path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def table_exists(spark: SparkSession, warehouse: str, table: str) -> bool:
    path, fs = _hadoop_fs(spark, table_path(warehouse, table) + "/_delta_log")
    return bool(fs.exists(path))


def list_raw_files(
    spark: SparkSession,
    source: str,
    dates: set[dt.date],
    distributions: set[str] | None = None,
) -> list[RawFile]:
    """Every CloudFront log file under `source` (any depth) whose name's hour falls on `dates`."""
    path, fs = _hadoop_fs(spark, source)
    if not fs.exists(path):
        raise SourceNotFoundError(f"raw log location {source} does not exist")
    wanted = {d.isoformat() for d in dates}
    found: list[RawFile] = []
    files = fs.listFiles(path, True)
    while files.hasNext():
        status = files.next()
        name_path = status.getPath().toString()
        parsed = parse_file_name(name_path)
        if parsed is None or parsed[1] not in wanted:
            continue
        if distributions and parsed[0] not in distributions:
            continue
        found.append(
            RawFile(name_path, int(status.getLen()), int(status.getModificationTime()), *parsed)
        )
    return sorted(found, key=lambda f: f.path)
