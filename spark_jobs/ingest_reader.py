"""How the ingest reads raw files: reader options (privacy, delimiter, rejects) and the file scans."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import DataFrame, SparkSession

from spark_jobs.log_fields import field_delimiter
from spark_jobs.log_keys import escape_glob
from spark_jobs.params import IngestParams
from spark_jobs.privacy import PrivacyOptions
from spark_jobs.raw_reader import ReaderOptions, read_binary_batches
from spark_jobs.schema import PARSED_SCHEMA
from spark_jobs.storage import RawFile

# The IP hash key never travels on a command line (a Spark conf would be on the JVM's argv, seen
# by `ps`), nor in IngestParams (to_argv): the in-process runner passes it to run() directly; a
# Kubernetes driver gets this variable from the Secret (secretKeyRef) and run() reads it here.
# The hashing closure carries it to the executors.
HASH_KEY_ENV = "CDNLAKE_IP_HASH_KEY"


def privacy_options(params: IngestParams, ip_hash_key: str = "") -> PrivacyOptions:
    key = ip_hash_key or os.environ.get(HASH_KEY_ENV, "")
    return PrivacyOptions(ip_mode=params.anonymize_ip, hash_key=key.encode(), keep_cookies=params.keep_cookies)


def reader_options(params: IngestParams, ip_hash_key: str = "", inline_rejects: int | None = None) -> ReaderOptions:
    """`inline_rejects`: rejected lines a file keeps in its batch (None: all; raw_reader.ReaderOptions).
    No default date: read_raw_lines gives each scan the date its files were listed for."""
    privacy = privacy_options(params, ip_hash_key)
    return ReaderOptions(privacy, field_delimiter(params.v2_delimiter), inline_rejects=inline_rejects)


def read_raw_lines(spark: SparkSession, files: list[RawFile], options: ReaderOptions) -> DataFrame:
    """One typed row per data line (plus one marker row per file) of the given raw files.

    One file scan per distribution and date: Spark packs a scan's files into tasks by size, so with
    a single scan every task held all distributions (and dates) and wrote a file into each
    partition (~11 small files per distribution-day at 2M lines, which compaction then rewrote);
    per distribution and date each task writes one. A scan's files were listed for its date: a
    key without a date gives its rows that one (`default_date`).
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for f in files:
        # Spark globs the paths it is given: `[`, `*`, `?` in a file name must be read literally.
        groups.setdefault((f.distro, f.date), []).append(escape_glob(f.path))
    scans = []
    with _path_check(spark, all(f.path.startswith("file:") for f in files)):
        for (_, date), paths in sorted(groups.items()):
            parse = functools.partial(read_binary_batches, options=dataclasses.replace(options, default_date=date))
            scans.append(spark.read.format("binaryFile").load(paths).mapInArrow(parse, PARSED_SCHEMA))
    return functools.reduce(DataFrame.unionByName, scans)


@contextmanager
def _path_check(spark: SparkSession, local: bool) -> Iterator[None]:
    """Spark checks the listed paths again when a scan is made, in a job of one task per path past
    32 paths (96 tasks a distribution: 9 s of a 2M-line ingest on 2 cores). On a cluster one
    task per core keeps the S3 requests parallel without the per-task overhead; local files are
    checked on the driver (a stat each), without a job: 9 jobs of ~0.4 s for a 3-day demo."""
    conf = spark.conf
    settings = {"spark.sql.sources.parallelPartitionDiscovery.parallelism": str(spark.sparkContext.defaultParallelism)}
    if local:
        settings["spark.sql.sources.parallelPartitionDiscovery.threshold"] = str(2**31 - 1)
    saved = {k: conf.get(k, None) for k in settings}
    for k, v in settings.items():
        conf.set(k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                conf.unset(k)
            else:
                conf.set(k, v)
