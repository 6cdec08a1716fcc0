"""Where things live: table locations under the warehouse and the listing of raw files.

Listing goes through Hadoop's FileSystem so one code path serves local folders and S3 (s3a).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import SparkSession

from spark_jobs.contract import TABLES, table_path, to_hadoop_uri
from spark_jobs.log_keys import listed_as

__all__ = ["TABLES", "RawFile", "SourceNotFoundError", "list_raw_files", "table_exists", "table_path", "to_hadoop_uri"]

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
    """Every CloudFront log file under `source` (any depth) of `dates`, by its name or key path
    (legacy and standard logging v2 layouts; spark_jobs/log_keys.py)."""
    path, fs = _hadoop_fs(spark, source)
    if not fs.exists(path):
        raise SourceNotFoundError(f"raw log location {source} does not exist")
    wanted = {d.isoformat() for d in dates}
    found: list[RawFile] = []
    files = fs.listFiles(path, True)
    while files.hasNext():
        status = files.next()
        name_path = status.getPath().toString()
        modified_ms = int(status.getModificationTime())
        listed = listed_as(name_path, dt.datetime.fromtimestamp(modified_ms / 1000, dt.UTC).date(), wanted)
        if listed is None or (distributions and listed[0] not in distributions):
            continue
        found.append(RawFile(name_path, int(status.getLen()), modified_ms, *listed))
    return sorted(found, key=lambda f: f.path)
