"""Requests delivered twice, found in what the ingest just wrote and moved to the rejects.

A file re-sent with the same bytes (found by the markers' digests) and a request id seen twice
(a file re-sent under another name, an overlapping concatenation, a request delivered by both
logging generations) are rare. Rather than holding the whole day back until they are known (a
cache and four more passes over the parsed rows), the ingest writes its lines, then checks the
partitions it wrote: usually one scan of the request-id column finds nothing; otherwise one MERGE
deletes the repeats, and the rejects get them with a reason naming the first copy.

Within a date only: an ingest of several dates finds exactly what one ingest per date would (a
request id seen on two dates stays on both; spark_jobs/ingest.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StructField, StructType

from spark_jobs.contract import partitions_predicate
from spark_jobs.local_frames import local_frame

_KEYS = ("source_file", "line_no")
_HASHES = StructType([StructField("request_hash", LongType())])


def _request_hashes(logs: DataFrame) -> DataFrame:
    good = logs.where(F.col("x_edge_request_id").isNotNull())
    return good.select("source_file", "line_no", "distro", "dt", "x_edge_request_id", "c_country",
                       F.xxhash64("dt", "x_edge_request_id").alias("request_hash"))  # fmt: skip


def duplicate_requests(spark: SparkSession, logs: DataFrame) -> DataFrame | None:
    """(source_file, line_no, distro, dt, reason) for each row whose request id an earlier row of its
    date has; None when no two rows of a date share an id (the usual day).

    x-edge-request-id is unique per request. The first by (file, line) is kept. One action shuffles
    64-bit hashes of all (date, id) pairs and returns the hashes seen more than once (a few, or none); only the
    rows with those hashes are compared by id.
    """
    hashed = logs.transform(_request_hashes)
    shared = hashed.groupBy("request_hash").count().where(F.col("count") > 1).select("request_hash")
    colliding = [(r[0],) for r in shared.collect()]
    if not colliding:
        return None
    suspects = local_frame(spark, colliding, _HASHES)
    # A request delivered by legacy and v2 logging keeps the v2 copy (it carries the viewer's country).
    order = (F.col("c_country").isNull(), "source_file", "line_no")
    window = Window.partitionBy("dt", "x_edge_request_id").orderBy(*order)
    first = F.first(F.struct("source_file", "line_no")).over(window)
    return (
        hashed.join(F.broadcast(suspects), "request_hash")
        .withColumns({"n": F.row_number().over(window), "first": first})
        .where(F.col("n") > 1)
        .select(*_KEYS, "distro", "dt", F.concat(
            F.lit("duplicate request id: first at "), F.col("first.source_file"),
            F.lit(" line "), F.col("first.line_no").cast("string"),
        ).alias("reason"))
    )  # fmt: skip


@dataclass
class MovedLines:
    """Lines deleted from cdn_logs after the write: as rejects rows, and their count per file."""

    rejects: DataFrame
    per_file: dict[str, int]


def _duplicate_file_lines(logs: DataFrame, duplicates: dict[str, str]) -> DataFrame | None:
    if not duplicates:
        return None
    mapping = F.create_map(*[F.lit(x) for pair in duplicates.items() for x in pair])
    reason = F.concat(F.lit("duplicate file: same bytes as "), F.element_at(mapping, F.col("source_file")))
    copies = logs.where(F.col("source_file").isin(list(duplicates)))
    return copies.select(*_KEYS, "distro", "dt", reason.alias("reason"))


def move_duplicates(
    spark: SparkSession, path: str, partitions: Mapping[dt.date, Sequence[str]], duplicates: dict[str, str],
    run_id: str,
) -> MovedLines | None:
    """Delete the lines of duplicate files and repeated requests from the partitions just written
    (`partitions`: each date and its distributions); None when there are none."""
    # The table as this ingest's commit left it (Delta's cached snapshot: no time travel, no new state).
    written = spark.read.format("delta").load(path).where(partitions_predicate(partitions))
    of_files = _duplicate_file_lines(written, duplicates)
    rest = written.where(~F.col("source_file").isin(list(duplicates))) if duplicates else written
    of_requests = duplicate_requests(spark, rest)
    parts = [p for p in (of_files, of_requests) if p is not None]
    if not parts:
        return None
    moved = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
    # Materialised before the MERGE deletes what it was computed from; small (the repeats only).
    moved = moved.localCheckpoint()
    per_file = {r["source_file"]: r["count"] for r in moved.groupBy("source_file").count().collect()}
    # The partitions as literals: the MERGE then reads only the files of the dates' partitions.
    condition = F.expr(partitions_predicate(partitions, prefix="t.")) & (F.col("t.dt") == F.col("m.dt"))
    for key in _KEYS:
        condition = condition & (F.col(f"t.{key}") == F.col(f"m.{key}"))
    DeltaTable.forPath(spark, path).alias("t").merge(moved.alias("m"), condition).whenMatchedDelete().execute()
    rejects = moved.select(*_KEYS, F.lit(None).cast("string").alias("raw_line"), "reason",
                           F.lit(run_id).alias("ingest_run"), "distro", "dt")  # fmt: skip
    return MovedLines(rejects, per_file)
