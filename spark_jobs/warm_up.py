"""A few rows through the paths every run takes, while the command line waits for Prefect anyway.

A new driver JVM pays for its first Python worker, its first Delta commit and its first Delta
snapshot (code generation, lazily initialised Delta and Parquet machinery) in the first job that
needs them: ~7 s of a 2M-line ingest (bench/RESULTS.md, session 8). `cdnlake run` starts Spark
in the background while Prefect's temporary server starts (5-7 s); spending that time here moves
the cost out of the ingest. In a temporary directory; nothing of the warehouse is touched.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pyarrow as pa
from pyspark.sql import SparkSession


def _batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield from batches


def warm_up(spark: SparkSession) -> None:
    """One Python worker per core, one Delta commit and one Delta read, on four rows."""
    with tempfile.TemporaryDirectory(prefix="cdnlake-warm-up-") as tmp:
        table = os.path.join(tmp, "rows")
        rows = spark.range(4).repartition(spark.sparkContext.defaultParallelism).mapInArrow(_batches, "id long")
        rows.write.format("delta").save(table)
        spark.read.format("delta").load(table).where("id > 1").count()
