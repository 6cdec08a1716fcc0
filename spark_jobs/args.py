"""Arguments shared by every Spark job, validated before anything touches a table."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pyspark.sql import SparkSession

DISTRO_RE = re.compile(r"^[a-z0-9]{1,64}$")
_SCHEMES = ("", "file", "s3", "s3a")
_FORBIDDEN = set("'\"\\\n\r\t\0;")


def iso_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def distro_list(value: str) -> list[str]:
    """Comma-separated distribution ids, lower-cased; only letters and digits are allowed."""
    ids = [v.strip().lower() for v in value.split(",") if v.strip()]
    for v in ids:
        if not DISTRO_RE.match(v):
            raise argparse.ArgumentTypeError(f"not a CloudFront distribution id: {v!r}")
    return ids


def location(value: str) -> str:
    """A local path or s3:// / s3a:// URI, without quotes, spaces or parent-directory hops."""
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if not value or scheme not in _SCHEMES or _FORBIDDEN & set(value) or ".." in value.split("/"):
        raise argparse.ArgumentTypeError(f"not an acceptable location: {value!r}")
    return value


def partition_predicate(date: dt.date, distros: Sequence[str] | None) -> str:
    """SQL predicate on the (distro, dt) partitions; inputs are validated, never free text."""
    predicate = f"dt = '{date.isoformat()}'"
    if distros:
        for d in distros:
            if not DISTRO_RE.match(d):
                raise ValueError(f"not a CloudFront distribution id: {d!r}")
        predicate += " AND distro IN (" + ", ".join(f"'{d}'" for d in distros) + ")"
    return predicate


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
    run: Callable[[SparkSession, argparse.Namespace], dict[str, Any]],
    argv: Sequence[str] | None,
) -> None:
    """Entry point used under spark-submit: the master and jars come from spark-submit."""
    from spark_jobs.session import build_session

    args = parser.parse_args(argv)
    spark = build_session(master=None, app_name=f"cdnlake-{parser.prog}")
    result = run(spark, args)
    text = json.dumps(result, default=str, indent=2)
    if args.result_file:
        with open(args.result_file, "w", encoding="utf-8") as handle:
            handle.write(text)
    sys.stdout.write(text + "\n")
