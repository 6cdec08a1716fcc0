"""Arguments shared by every Spark job, validated before anything touches a table."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

# The validators live in the Spark-free contract; re-exported for the jobs' parsers.
from spark_jobs.contract import (
    DISTRO_RE,
    date_list,
    distro_list,
    iso_date,
    location,
    partition_predicate,
    partitions_predicate,
)

if TYPE_CHECKING:  # only for the annotation: importing this module must not import PySpark
    from pyspark.sql import SparkSession

    from spark_jobs.params import JobParams

__all__ = ["DISTRO_RE", "add_common", "date_list", "distro_list", "iso_date", "location", "partition_predicate",
           "partitions_predicate", "run_main"]


def add_common(parser: argparse.ArgumentParser, warehouse: bool = True, source: bool = False) -> None:
    parser.add_argument("--date", type=iso_date, required=True, help="UTC date YYYY-MM-DD")
    if source:
        parser.add_argument("--source", type=location, required=True, help="raw logs location")
    if warehouse:
        parser.add_argument("--warehouse", type=location, required=True, help="Delta tables root")
    parser.add_argument("--distributions", type=distro_list, default=None, help="comma-separated ids")
    parser.add_argument("--result-file", default=None, help="write the job's JSON result here")


def run_main(
    parser: argparse.ArgumentParser,
    run: Callable[[SparkSession, Any], dict[str, Any]],
    argv: Sequence[str] | None,
    params: type[JobParams],
) -> None:
    """Entry point used under spark-submit: the master and jars come from spark-submit."""
    from spark_jobs.session import build_session

    args = parser.parse_args(argv)
    spark = build_session(master=None, app_name=f"cdnlake-{parser.prog}")
    result = run(spark, params.from_namespace(args))
    text = json.dumps(result, default=str, indent=2)
    if args.result_file:
        with open(args.result_file, "w", encoding="utf-8") as handle:
            handle.write(text)
    sys.stdout.write(text + "\n")
