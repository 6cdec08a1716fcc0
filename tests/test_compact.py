"""Compaction: crowded partitions become one file, partitions with few files are left alone."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from cdnlake import pipeline
from cdnlake.settings import Settings
from spark_jobs import commit_files, compact
from tests.fake_services import FakeRunner


def test_only_crowded_partitions_are_compacted(spark: Any, tmp_path: Path) -> None:
    table = tmp_path / "wh" / "cdn_logs"
    rows = spark.range(1200).select(
        F.when(F.col("id") < 1000, "crowded").otherwise("sparse").alias("distro"),
        F.lit("2024-05-01").alias("dt"), F.col("id"),
    )  # fmt: skip
    # 12 files in the crowded partition, 3 in the sparse one, plus another date that must not be touched.
    crowded = rows.where("distro = 'crowded'").repartition(12)
    sparse = rows.where("distro = 'sparse'").repartition(3)
    other = rows.where("distro = 'crowded'").withColumn("dt", F.lit("2024-04-30")).repartition(12)
    for part in (crowded, sparse, other):
        part.write.format("delta").mode("append").partitionBy("distro", "dt").save(str(table))
    args = compact.build_parser().parse_args(["--date", "2024-05-01", "--warehouse", str(tmp_path / "wh")])
    result = compact.run(spark, args)
    assert result["files_per_partition"] == {"crowded": 1, "sparse": 3}
    assert result["tables"]["cdn_logs"] == {"files_added": 1, "files_removed": 12}
    after = spark.read.format("delta").load(str(table))
    assert sorted(r.id for r in after.where("dt = '2024-05-01'").collect()) == list(range(1200))
    assert compact.files_per_partition(spark, str(table), "dt = '2024-04-30'") == {"crowded": 12}


# ---------------------------------------------------------------- decided from the ingest's own commit
def _replace_date(spark: Any, path: Path, files: dict[str, int], date: str = "2024-05-01") -> None:
    """One replaceWhere commit (as the ingest writes) with `files[distro]` files per distro of `date`."""
    parts = [spark.range(100).select(F.lit(d).alias("distro"), F.lit(date).alias("dt"), "id").repartition(n)
             for d, n in files.items()]  # fmt: skip
    df = parts[0]
    for part in parts[1:]:
        df = df.unionByName(part)
    writer = df.write.format("delta").mode("overwrite").option("replaceWhere", f"dt = '{date}'")
    writer.partitionBy("distro", "dt").save(str(path))


def test_files_written_are_the_partitions_files_after_the_ingests_commit(spark: Any, tmp_path: Path) -> None:
    wh = tmp_path / "wh"
    _replace_date(spark, wh / "cdn_logs", {"a": 5, "b": 2})
    _replace_date(spark, wh / "cdn_logs", {"a": 3, "b": 1})  # a re-run replaces: only its own files count
    _replace_date(spark, wh / "cdn_logs", {"a": 4}, date="2024-04-30")  # another date, last commit
    _replace_date(spark, wh / "cdn_logs", {"a": 4}, date="2024-05-01")  # the date again, b's partition emptied
    _replace_date(spark, wh / "cdn_logs_rejects", {"a": 1, "b": 1})
    _replace_date(spark, wh / "ingest_files", {"a": 2, "b": 1})
    written = commit_files.files_written(spark, str(wh), [dt.date(2024, 5, 1)])["2024-05-01"]
    assert written == {"cdn_logs": {"a": 4}, "cdn_logs_rejects": {"a": 1, "b": 1}, "ingest_files": {"a": 2, "b": 1}}
    # The snapshot's own listing (what the compact job counts) agrees.
    assert compact.files_per_partition(spark, str(wh / "cdn_logs"), "dt = '2024-05-01'") == {"a": 4}


def test_a_table_whose_last_commit_is_not_a_write_is_left_to_the_job(spark: Any, tmp_path: Path) -> None:
    wh = tmp_path / "wh"
    for table in commit_files.COMPACTED_TABLES:
        _replace_date(spark, wh / table, {"a": 3})
    DeltaTable.forPath(spark, str(wh / "ingest_files")).optimize().executeCompaction()
    written = commit_files.files_written(spark, str(wh), [dt.date(2024, 5, 1)])["2024-05-01"]
    assert written == {"cdn_logs": {"a": 3}, "cdn_logs_rejects": {"a": 3}}
    assert commit_files.crowded_partitions(written, max_files=1) is None  # the job decides


def test_files_per_distro_reads_only_the_dates_adds() -> None:
    lines = [
        json.dumps({"commitInfo": {"operation": "WRITE"}}),
        json.dumps({"remove": {"path": "x", "partitionValues": {"distro": "a", "dt": "2024-05-01"}}}),
        json.dumps({"add": {"path": "1", "partitionValues": {"distro": "a", "dt": "2024-05-01"}}}),
        json.dumps({"add": {"path": "2", "partitionValues": {"distro": "a", "dt": "2024-05-01"}}}),
        json.dumps({"add": {"path": "3", "partitionValues": {"distro": "b", "dt": "2024-04-30"}}}),
        "",
    ]
    assert commit_files.files_per_distro(lines, dt.date(2024, 5, 1)) == {"a": 2}


class _Services:
    """What pipeline.compact uses of the run's services: the settings' warehouse and a runner."""

    def __init__(self, warehouse: str) -> None:
        self.settings = Settings(warehouse=warehouse)
        self.runner = FakeRunner(compact=lambda p: {"date": str(p.date), "ran": True})


QUIET = {"cdn_logs": {"a": 8, "b": 1}, "cdn_logs_rejects": {"a": 1}, "ingest_files": {"a": 2}}


def test_the_flow_skips_the_compact_job_when_no_partition_is_crowded(tmp_path: Path) -> None:
    services = _Services(str(tmp_path))
    result = pipeline.compact(services, dt.date(2024, 5, 1), None, QUIET)  # type: ignore[arg-type]
    assert services.runner.calls == []
    assert result["files_per_partition"] == {"a": 8, "b": 1}
    assert result["tables"]["ingest_files"] == {"files_added": 0, "files_removed": 0}


@pytest.mark.parametrize("written", [
    {**QUIET, "cdn_logs_rejects": {"a": 9}},  # one crowded partition (max_files 8)
    {"cdn_logs": {"a": 1}, "cdn_logs_rejects": {"a": 1}},  # a table the commit did not tell about
    None,  # the ingest said nothing (it loaded no file, or a job run on its own)
])  # fmt: skip
def test_the_compact_job_runs_when_the_commit_cannot_rule_it_out(tmp_path: Path, written: Any) -> None:
    services = _Services(str(tmp_path))
    assert pipeline.compact(services, dt.date(2024, 5, 1), ["a"], written)["ran"]  # type: ignore[arg-type]
    assert [(p.job, p.distributions) for p in services.runner.calls] == [("compact", ("a",))]
