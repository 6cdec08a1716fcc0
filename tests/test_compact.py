"""Compaction: crowded partitions become one file, partitions with few files are left alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyspark.sql import functions as F

from spark_jobs import compact


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
