"""Run by the child that makes the class archive (spark_jobs/class_archive.py): the daily path's
Spark jobs on a tiny sample, so that the archive holds their classes. Kept apart from
class_archive.py, which the session builder imports: the jobs import the session builder."""

from __future__ import annotations

import sys
from pathlib import Path

from spark_jobs import aggregate, ingest
from spark_jobs.class_archive import SAMPLE_DATE, write_sample
from spark_jobs.params import AggregateParams, IngestParams
from spark_jobs.session import build_session


def run_workload(folder: Path) -> None:
    """An ingest and an aggregate of the sample in `folder`, then the JVM's exit (which writes the archive)."""
    spark = build_session("local[2]", app_name="cdnlake-class-archive", log_file=str(folder / "driver.log"))
    write_sample(folder / "landing")
    warehouse = str(folder / "warehouse")
    ingest.run(spark, IngestParams(date=SAMPLE_DATE, source=str(folder / "landing"), warehouse=warehouse))
    aggregate.run(spark, AggregateParams(date=SAMPLE_DATE, warehouse=warehouse))
    gateway = spark.sparkContext._gateway
    spark.stop()
    # The JVM writes the archive as it exits, after this process would have: end it (EOF on its
    # stdin ends PySpark's gateway JVM) and wait, so the parent finds the file complete.
    jvm = gateway.proc
    jvm.stdin.close()
    jvm.wait(timeout=300)


if __name__ == "__main__":
    run_workload(Path(sys.argv[1]))
