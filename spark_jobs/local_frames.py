"""DataFrames of rows the driver holds (accounting, statistics), made without a Spark job.

`createDataFrame` of a list of tuples pickles the rows, and the first action unpickles them in
Python workers: a job whose worker start-up costs ~1-2 s in a fresh process (the ingest's
rejects and ingest_files writes, session 8). Through pandas and Arrow the rows become a local
relation in the JVM instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType


def _for_arrow(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as plain objects: pandas 3's Arrow-backed strings reach PySpark as chunked
    arrays it cannot convert, and it then falls back to Python rows unpickled by Python workers."""
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    return frame.astype(dict.fromkeys(text, object))


Rows = pd.DataFrame | Sequence[Sequence[Any]]


def local_frame(spark: SparkSession, rows: Rows, schema: StructType | str) -> DataFrame:
    """`rows` (a pandas frame, or tuples in the order of `schema`, then a StructType) as a DataFrame.

    Tuples become object columns, so integers with NULLs stay exact 64-bit values (a float column
    would round a 64-bit hash) and naive timestamps are read in the session's zone (UTC)."""
    if len(rows) == 0:  # PySpark sends an empty pandas frame the pickling way
        return spark.createDataFrame(spark.sparkContext.emptyRDD(), schema)
    if not isinstance(rows, pd.DataFrame):
        if not isinstance(schema, StructType):  # (not an assert: it would vanish under python -O)
            raise TypeError("local_frame: tuples need a StructType schema for their column names")
        names = schema.fieldNames()
        rows = pd.DataFrame({name: pd.Series([row[i] for row in rows], dtype=object) for i, name in enumerate(names)},
                            columns=names)  # fmt: skip
    return spark.createDataFrame(_for_arrow(rows), schema=schema)
