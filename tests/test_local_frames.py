"""Driver-held rows as DataFrames without a Spark job's Python workers (spark_jobs/local_frames.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pyspark.sql.types import LongType, StructField, StructType

from spark_jobs.local_frames import local_frame
from spark_jobs.schema import INGEST_FILES_SCHEMA, REJECTS_SCHEMA


def test_tuples_keep_exact_values_nulls_and_utc_times(spark: Any) -> None:
    hashes = StructType([StructField("request_hash", LongType())])
    rows = local_frame(spark, [(2**63 - 1,), (-(2**63) + 7,), (None,)], hashes).collect()
    assert [r[0] for r in rows] == [2**63 - 1, -(2**63) + 7, None]  # a float column would round these
    when = dt.datetime(2024, 5, 1, 23, 59, 59)  # naive UTC, as the accounting makes them
    files = [("s3://b/E1.2024-05-01-23.a.gz", "E1.2024-05-01-23.a.gz", 10, None, 5, 4, 1, False, None, "run",
              when, "e1", "2024-05-01")]  # fmt: skip
    (row,) = local_frame(spark, files, INGEST_FILES_SCHEMA).collect()
    assert row.asDict() == dict(zip(INGEST_FILES_SCHEMA.fieldNames(), files[0], strict=True))
    assert local_frame(spark, files, INGEST_FILES_SCHEMA).schema == INGEST_FILES_SCHEMA


def test_no_rows_and_pandas_rows(spark: Any, tmp_path: Path) -> None:
    empty = local_frame(spark, [], REJECTS_SCHEMA)
    assert empty.schema == REJECTS_SCHEMA and empty.count() == 0
    empty.write.format("delta").save(str(tmp_path / "rejects"))  # a table can be made from it
    frame = pd.DataFrame({"distro": pd.array(["e1", "e2"], dtype="string"), "n": [1, 2]})
    got = local_frame(spark, frame, "distro STRING, n BIGINT").orderBy("n").collect()
    assert [tuple(r) for r in got] == [("e1", 1), ("e2", 2)]
    assert local_frame(spark, frame.iloc[:0], "distro STRING, n BIGINT").count() == 0


def test_rows_become_a_local_relation_without_a_job(spark: Any) -> None:
    """createDataFrame of tuples pickles them for Python workers (a job before the first action's
    own); through Arrow the rows are already in the JVM: the plan has no Python RDD scan."""
    files = [("f", None, None, "r", "run", "e1", "2024-05-01")]
    arrow_plan = local_frame(spark, files, REJECTS_SCHEMA)._jdf.queryExecution().analyzed().toString()
    pickled_plan = spark.createDataFrame(files, REJECTS_SCHEMA)._jdf.queryExecution().analyzed().toString()
    assert "LocalRelation" in arrow_plan and "LogicalRDD" not in arrow_plan
    assert "LogicalRDD" in pickled_plan  # what the test would see if local_frame pickled
    # No rows: an RDD without partitions, so no task (and no Python worker) at all.
    assert local_frame(spark, [], REJECTS_SCHEMA)._jdf.rdd().getNumPartitions() == 0


def test_tuples_with_a_ddl_string_schema_are_refused(spark: Any) -> None:
    with pytest.raises(TypeError, match="StructType"):
        local_frame(spark, [("e1", 1)], "distro STRING, n BIGINT")
