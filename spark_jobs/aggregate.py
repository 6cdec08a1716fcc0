"""Statistics of cdn_logs: hourly and per-minute measures per distribution, top lists of a report day.

Tables (all rebuilt with replaceWhere, so a re-run or a late file replaces rows, never adds):
- stats_hourly (distro, dt, hour, measures...) and stats_minute (distro, dt, minute, request_count,
  bytes), partitioned by dt, for the UTC dates D-2..D (plus --dates) present in cdn_logs;
- stats_top_objects, stats_top_referrers, stats_edge_locations, stats_viewers for day D in the
  report time zone, partitioned by report_date with a report_tz column and a 1-based rank.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import time
from collections.abc import Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from spark_jobs import args as job_args
from spark_jobs.params import AggregateParams
from spark_jobs.storage import table_exists, table_path

# Order of stats_hourly's measure columns: the CSV's measures (SPEC section 3) plus the two the
# report derives ratios from (refresh hits, bytes served from cache).
MEASURES: tuple[str, ...] = (
    "request_count", "hit_count", "miss_count", "refresh_hit_count", "error_count",
    "incomplete_count", "http2xx_count", "http3xx_count", "http4xx_count", "http5xx_count",
    "bytes_requested", "bytes_missed", "bytes_hit",
)  # fmt: skip
ERROR_TYPES = ("LimitExceeded", "CapacityExceeded", "Error")
TOP_OBJECTS, TOP_REFERRERS, TOP_VIEWERS = 50, 25, 10
_TZ_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-/]{0,63}$")
# Host of an absolute URL (`scheme://[user@]host[:port]/...`); anything else has no domain.
_HOST_RE = r"^[A-Za-z][A-Za-z0-9+.\-]*://(?:[^/?#@]*@)?(\[[^\]/]*\]|[^/?#:]+)"


def time_zone(value: str) -> str:
    """An IANA zone name; it ends up in a replaceWhere predicate, so only plain names pass."""
    try:
        if not _TZ_RE.match(value):
            raise ZoneInfoNotFoundError(value)
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(f"not an IANA time zone: {value!r}") from None
    return value


def date_list(value: str) -> list[dt.date]:
    return [job_args.iso_date(v.strip()) for v in value.split(",") if v.strip()]


def _bytes() -> Column:
    return F.coalesce(F.col("sc_bytes"), F.lit(0).cast("bigint"))


def conditions() -> dict[str, Column]:
    """SPEC section 3 row rules; a NULL condition (e.g. status 000 has no class) counts as false."""
    response = F.col("x_edge_response_result_type")
    return {
        "hit": response == "Hit",
        "miss": response == "Miss",
        "refresh_hit": response == "RefreshHit",
        "error": response.isin(*ERROR_TYPES),
        # The viewer went away during a successful response: the edge logs its own result as Error.
        "incomplete": F.col("sc_status").between(200, 299) & (F.col("x_edge_result_type") == "Error"),
        **{f"http{n}xx": F.col("status_class") == n for n in (2, 3, 4, 5)},
    }


def _bytes_if(condition: Column) -> Column:
    return F.sum(F.when(condition, _bytes()).otherwise(0))


def measure_aggs() -> list[Column]:
    """The MEASURES as aggregate expressions (all bigint)."""
    rule = conditions()
    counts = [F.count_if(rule[name]).alias(f"{name}_count") for name in rule]
    return [
        F.count(F.lit(1)).alias("request_count"),
        *counts,
        F.sum(_bytes()).alias("bytes_requested"),
        _bytes_if(rule["miss"]).alias("bytes_missed"),
        _bytes_if(rule["hit"]).alias("bytes_hit"),
    ]


def dates_predicate(dates: Sequence[dt.date], distros: Sequence[str] | None) -> str:
    """`dt IN (...) [AND distro IN (...)]` from validated values: partition pruning and replaceWhere."""
    predicate = "dt IN (" + ", ".join(f"'{d.isoformat()}'" for d in sorted(set(dates))) + ")"
    if distros:
        bad = [d for d in distros if not job_args.DISTRO_RE.match(d)]
        if bad:
            raise ValueError(f"not CloudFront distribution ids: {bad!r}")
        predicate += " AND distro IN (" + ", ".join(f"'{d}'" for d in distros) + ")"
    return predicate


def filter_partitions(df: DataFrame, dates: Sequence[dt.date], distros: Sequence[str] | None) -> DataFrame:
    return df.where(dates_predicate(dates, distros))


def with_minute(df: DataFrame) -> DataFrame:
    """Minute of the UTC day, from epoch seconds so the session time zone cannot shift it."""
    return df.withColumn("minute", (F.floor((F.unix_seconds("ts") % 86400) / 60)).cast("int"))


def agg_minutes(df: DataFrame) -> DataFrame:
    """All measures per distro and minute: the one shuffle of the raw rows for hourly and peak."""
    return df.groupBy("distro", "dt", "minute").agg(*measure_aggs())


def agg_hourly(minutes: DataFrame) -> DataFrame:
    """Roll minute rows up to hours; sums of exact counts stay exact."""
    hour = F.floor(F.col("minute") / 60).cast("int").alias("hour")
    return minutes.groupBy("distro", "dt", hour).agg(*[F.sum(m).alias(m) for m in MEASURES])


def report_day_bounds(date: dt.date, tz: str) -> tuple[dt.datetime, dt.datetime, list[dt.date]]:
    """[start, end) of local day `date` in UTC, and the UTC dates (dt partitions) it touches."""
    zone = ZoneInfo(tz)
    start, end = (dt.datetime.combine(d, dt.time(0), zone).astimezone(dt.UTC) for d in (date, date + dt.timedelta(1)))
    last = (end - dt.timedelta(microseconds=1)).date()
    return start, end, [start.date() + dt.timedelta(days=i) for i in range((last - start.date()).days + 1)]


def filter_report_day(df: DataFrame, date: dt.date, tz: str, distros: Sequence[str] | None) -> DataFrame:
    start, end, utc_dates = report_day_bounds(date, tz)
    # Literal dt IN (...) first so only those partitions are listed and read; aware datetimes are
    # converted as instants, independent of the session time zone.
    pruned = df.transform(filter_partitions, utc_dates, distros)
    return pruned.where((F.col("ts") >= F.lit(start)) & (F.col("ts") < F.lit(end)))


def with_referrer_domain(df: DataFrame) -> DataFrame:
    host = F.lower(F.regexp_extract("cs_referer", _HOST_RE, 1))
    return df.withColumn("referrer_domain", F.nullif(host, F.lit("")))


# Each top list: the column it ranks and how many rows it keeps (None: all of them).
_DIMENSIONS: dict[str, tuple[str, int | None]] = {
    "object": ("uri", TOP_OBJECTS),  # with its distro
    "referrer": ("referrer_domain", TOP_REFERRERS),
    "edge_location": ("edge_location", None),
    "device_type": ("device_type", None),
    "os": ("os", TOP_VIEWERS),
    "browser": ("browser", TOP_VIEWERS),
}
_SMALL = [key for name, (key, _) in _DIMENSIONS.items() if name != "object"]


def agg_level1(day: DataFrame) -> DataFrame:
    """One scan and one shuffle of the rows, grouped twice: per (distro, uri) and per combination
    of the five small dimensions (thousands, not millions). Rolling those combinations up later
    costs far less than expanding every row six ways."""
    rows = day.select(
        "distro", F.col("cs_uri_stem").alias("uri"), "referrer_domain",
        F.col("x_edge_location").alias("edge_location"), "device_type", "os", "browser",
        "sc_bytes", "sc_status", "status_class", "x_edge_result_type", "x_edge_response_result_type",
    )  # fmt: skip
    return rows.groupingSets([["distro", "uri"], _SMALL], "distro", "uri", *_SMALL).agg(
        F.grouping("uri").alias("combination"), *measure_aggs()
    )


def agg_objects(level1: DataFrame) -> DataFrame:
    """Object rows in the shape every top list is ranked from: (dimension, distro, value, counts)."""
    return level1.where(F.col("combination") == 0).select(
        F.lit("object").alias("dimension"), "distro", F.col("uri").alias("value"), *MEASURES
    )


def agg_small_dimensions(level1: DataFrame) -> DataFrame:
    """The combinations rolled up per small dimension; requests without a referrer domain are not listed.

    Kept apart from the objects: a plan that read the cached first level twice (a union) was seen
    to miss the cache in one branch and scan the raw rows again.
    """
    dimension = F.lit(None).cast("string")
    for name, (key, _) in _DIMENSIONS.items():
        if key in _SMALL:
            dimension = F.when(F.grouping(key) == 0, F.lit(name)).otherwise(dimension)
    rolled = level1.where(F.col("combination") == 1).groupingSets([[k] for k in _SMALL], *_SMALL)
    # Outside its own grouping set every key is NULL, so coalesce picks the grouped one.
    small = rolled.agg(dimension.alias("dimension"), *[F.sum(m).alias(m) for m in MEASURES]).select(
        "dimension", F.lit(None).cast("string").alias("distro"), F.coalesce(*_SMALL).alias("value"), *MEASURES
    )
    return small.where((F.col("dimension") != "referrer") | F.col("value").isNotNull())


def ranked(counts: DataFrame, dimensions: Sequence[str]) -> DataFrame:
    """Rows of `dimensions`, by requests desc then name (deterministic ties), with a 1-based rank."""
    order = [F.col("request_count").desc(), F.col("distro").asc_nulls_first(), F.col("value").asc_nulls_last()]
    rows = counts.where(F.col("dimension").isin(*dimensions))
    limits = {d: _DIMENSIONS[d][1] for d in dimensions}
    if len(dimensions) == 1 and limits[dimensions[0]] is not None:
        # A long list (objects, referrers): take the top k without sorting every row.
        rows = rows.orderBy(*order).limit(limits[dimensions[0]])
    rank = F.row_number().over(Window.partitionBy("dimension").orderBy(*order))
    keep = F.lit(True)
    for name, limit in limits.items():
        if limit is not None:
            keep = keep & ((F.col("dimension") != name) | (F.col("rank") <= limit))
    return rows.withColumn("rank", rank).where(keep)


def _shown(*names: str) -> list[Column]:
    """Top-list columns under ReportData's names; built per call, as a Column needs a session."""
    renamed = {"requests": "request_count", "hits": "hit_count", "misses": "miss_count",
               "bytes": "bytes_requested", "incomplete": "incomplete_count",
               **{f"http{n}xx": f"http{n}xx_count" for n in (2, 3, 4, 5)}}  # fmt: skip
    ratio = (F.col("hit_count") / F.col("request_count")).alias("hit_ratio")
    return [ratio if n == "hit_ratio" else F.col(renamed.get(n, n)).alias(n) for n in names]


def top_objects(counts: DataFrame) -> DataFrame:
    return ranked(counts, ("object",)).select(
        "rank", "distro", F.col("value").alias("uri"),
        *_shown("requests", "hits", "misses", "hit_ratio", "bytes", "bytes_missed", "incomplete",
                "http2xx", "http3xx", "http4xx", "http5xx"),
    )  # fmt: skip


def top_referrers(counts: DataFrame) -> DataFrame:
    return ranked(counts, ("referrer",)).select(
        "rank", F.col("value").alias("referrer_domain"), *_shown("requests", "bytes")
    )


def edge_locations(counts: DataFrame) -> DataFrame:
    return ranked(counts, ("edge_location",)).select(
        "rank", F.col("value").alias("edge_location"), *_shown("requests", "bytes", "hit_ratio")
    )


def viewers(counts: DataFrame) -> DataFrame:
    """All device types, the top OS and browsers: (dimension, rank, value, requests) rows."""
    return ranked(counts, ("device_type", "os", "browser")).select("dimension", "rank", "value", *_shown("requests"))


# Each top-list table, how it is built and the dimensions it lists.
TOP_TABLES: dict[str, tuple[Callable[[DataFrame], DataFrame], tuple[str, ...]]] = {
    "stats_top_objects": (top_objects, ("object",)),
    "stats_top_referrers": (top_referrers, ("referrer",)),
    "stats_edge_locations": (edge_locations, ("edge_location",)),
    "stats_viewers": (viewers, ("device_type", "os", "browser")),
}


def with_report_keys(df: DataFrame, date: dt.date, tz: str) -> DataFrame:
    return df.withColumns({"report_date": F.lit(date.isoformat()), "report_tz": F.lit(tz)})


def write_replacing(df: DataFrame, path: str, predicate: str, partition: str) -> None:
    """Replace exactly the rows matching `predicate` (a re-run or a late file never duplicates)."""
    writer = df.write.format("delta").mode("overwrite").option("replaceWhere", predicate)
    writer.partitionBy(partition).save(path)


def write_time_series(logs: DataFrame, args: argparse.Namespace) -> dict[str, Any]:
    """stats_minute and stats_hourly for the wanted dates that cdn_logs has."""
    wanted = [args.date - dt.timedelta(days=n) for n in (2, 1, 0)] + list(args.dates or ())
    minutes = (
        logs.transform(filter_partitions, wanted, args.distributions)
        .transform(with_minute)
        .transform(agg_minutes)
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        # One small action fills the cache and yields the dates present and both tables' sizes.
        hours = F.count_distinct("distro", F.floor(F.col("minute") / 60))
        sizes = minutes.groupBy("dt").agg(F.count(F.lit(1)).alias("minutes"), hours.alias("hours")).collect()
        present = sorted(dt.date.fromisoformat(r["dt"]) for r in sizes)
        if present:
            predicate = dates_predicate(present, args.distributions)
            bandwidth = minutes.select(
                "distro", "dt", "minute", "request_count", F.col("bytes_requested").alias("bytes")
            )
            write_replacing(bandwidth, table_path(args.warehouse, "stats_minute"), predicate, "dt")
            hourly = minutes.transform(agg_hourly).select("distro", "dt", "hour", *MEASURES)
            write_replacing(hourly, table_path(args.warehouse, "stats_hourly"), predicate, "dt")
    finally:
        minutes.unpersist()
    rows = {"stats_hourly": sum(r["hours"] for r in sizes), "stats_minute": sum(r["minutes"] for r in sizes)}
    return {"dates": [d.isoformat() for d in present], "rows": rows}


def write_top_lists(logs: DataFrame, args: argparse.Namespace) -> dict[str, int]:
    """The four top-list tables of report day D in args.report_tz (written even when empty)."""
    # Only the first level is cached: it is small, and each table's roll-up from it is tiny.
    level1 = (
        logs.transform(filter_report_day, args.date, args.report_tz, args.distributions)
        .transform(with_referrer_domain)
        .transform(agg_level1)
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    predicate = f"report_date = '{args.date.isoformat()}' AND report_tz = '{args.report_tz}'"
    try:
        objects, small = level1.transform(agg_objects), level1.transform(agg_small_dimensions)
        # The first action fills the cache; each table's rows follow from these sizes and the limits.
        sizes = {"object": objects.count()}
        sizes |= {r["dimension"]: r["count"] for r in small.groupBy("dimension").count().collect()}
        for table, (build, dims) in TOP_TABLES.items():
            rows = (objects if "object" in dims else small).transform(build)
            df = rows.transform(with_report_keys, args.date, args.report_tz)
            write_replacing(df, table_path(args.warehouse, table), predicate, "report_date")
    finally:
        level1.unpersist()
    return {
        table: sum(min(sizes.get(d, 0), _DIMENSIONS[d][1] or sizes.get(d, 0)) for d in dims)
        for table, (_, dims) in TOP_TABLES.items()
    }


def run(spark: SparkSession, args: AggregateParams) -> dict[str, Any]:
    """Rebuild the statistics of args.date (see module docstring); returns dates, rows, seconds."""
    started = time.monotonic()
    if not table_exists(spark, args.warehouse, "cdn_logs"):
        raise RuntimeError(f"cdn_logs does not exist under {args.warehouse}: run ingest first")
    logs = spark.read.format("delta").load(table_path(args.warehouse, "cdn_logs"))
    series = write_time_series(logs, args)
    tops = write_top_lists(logs, args)
    return {
        "date": args.date.isoformat(),
        "report_tz": args.report_tz,
        "dates": series["dates"],
        "rows": series["rows"] | tops,
        "seconds": round(time.monotonic() - started, 2),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aggregate", description=__doc__)
    job_args.add_common(parser, warehouse=True)
    parser.add_argument("--report-tz", type=time_zone, default="UTC", help="IANA zone of the report day")
    parser.add_argument("--dates", type=date_list, default=None,
                        help="extra comma-separated UTC dates whose partitions changed")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    job_args.run_main(build_parser(), run, argv, AggregateParams)


if __name__ == "__main__":
    main()
