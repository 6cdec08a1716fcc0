"""Where things live: table locations under the warehouse and the raw files of a date.

A daily run hands the ingest job the files it listed (cdnlake/sources.py): `listed_raw_files`
only qualifies them. A job run alone (`cdnlake ingest`, spark-submit without --files-from) lists
the source once itself, through Hadoop's FileSystem (one code path for local folders and s3a).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from pyspark.sql import SparkSession

from spark_jobs.contract import TABLES, table_path, to_hadoop_uri
from spark_jobs.log_keys import listed_as
from spark_jobs.params import ListedFile, files_from_json

__all__ = ["TABLES", "RawFile", "SourceNotFoundError", "list_raw_files", "listed_raw_files", "read_file_list",
           "table_exists", "table_path", "to_hadoop_uri"]

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


def listed_raw_files(
    spark: SparkSession, listed: Iterable[ListedFile], dates: set[dt.date], distributions: set[str] | None = None
) -> list[RawFile]:
    """The raw files the orchestrator listed (no listing here), by the same name rule as list_raw_files.

    Each URI is qualified by Hadoop (`/x` -> `file:/x`, `s3://` -> `s3a://`) so it is the path a
    listing would have given: the name Spark's file scan reports and ingest_files records.
    """
    wanted = {d.isoformat() for d in dates}
    found: list[RawFile] = []
    for f in listed:
        path, fs = _hadoop_fs(spark, f.uri)
        qualified = str(fs.makeQualified(path).toString())
        listed_date = dt.datetime.fromtimestamp(f.modified_ms / 1000, dt.UTC).date()
        named = listed_as(qualified, listed_date, wanted)
        if named is None or (distributions and named[0] not in distributions):
            continue
        found.append(RawFile(qualified, f.size, f.modified_ms, *named))
    return sorted(found, key=lambda f: f.path)


def read_file_list(spark: SparkSession, uri: str) -> tuple[ListedFile, ...]:
    """A `--files-from` document, read through Hadoop's FileSystem (local or s3a, as the tables)."""
    path, fs = _hadoop_fs(spark, uri)
    if not fs.exists(path):
        raise SourceNotFoundError(f"file list {uri} does not exist")
    stream = fs.open(path)
    try:
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        data = jvm.org.apache.commons.io.IOUtils.toByteArray(stream)
    finally:
        stream.close()
    return files_from_json(bytes(data))
