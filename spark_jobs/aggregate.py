"""Statistics of cdn_logs: hourly and per-minute measures per distribution, top lists of a report day.

Tables (all rebuilt with replaceWhere, so a re-run or a late file replaces rows, never adds):
- stats_hourly (distro, dt, hour, measures...) and stats_minute (distro, dt, minute, request_count,
  bytes), partitioned by dt, for the UTC dates D-2..D (plus --dates) present in cdn_logs: D and
  --dates always, D-2 and D-1 when their cdn_logs files changed since their statistics were
  written (spark_jobs/stats_sources.py: a daily run scans one day's rows, not three);
- stats_top_lists: the top objects, referrer domains, edge locations and viewers of day D in the
  report time zone, one `list` column telling them apart, with a 1-based rank; partitioned by
  report_date and report_tz. (Before session 7 a table per list; those are no longer written.)

Three queries run side by side (the changed UTC dates per minute; the report day per object and
per combination of its small dimensions, spark_jobs/top_lists.py) and return a few thousand rows to
the driver, which rolls minutes up to hours and ranks the lists; the three tables are then written
side by side. The stage's time is then fixed cost (jobs, Delta commits: about five Spark jobs each,
whatever the rows), not rows (bench/RESULTS.md), hence one table for the four lists.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs import args as job_args
from spark_jobs import stats_sources, top_lists
from spark_jobs.contract import TOP_LISTS_TABLE, partitions_predicate, report_window
from spark_jobs.local_frames import local_frame
from spark_jobs.measures import MEASURES, measure_aggs
from spark_jobs.params import AggregateParams, check_zone
from spark_jobs.reconcile_checks import RAW_TOTALS
from spark_jobs.session import small_table_session
from spark_jobs.stats_sources import Digests
from spark_jobs.storage import table_exists, table_path
from spark_jobs.top_lists import agg_combinations, agg_small_dimensions, with_referrer_domain

__all__ = ["MEASURES", "agg_combinations", "agg_small_dimensions", "with_referrer_domain"]

MINUTE_SCHEMA = "distro STRING, dt STRING, minute INT, request_count BIGINT, bytes BIGINT"
RAW_PREFIX = "raw_"
HOURLY_SCHEMA = "distro STRING, dt STRING, hour INT, " + ", ".join(f"{m} BIGINT" for m in MEASURES)


def time_zone(value: str) -> str:
    """An IANA zone name (the parameters' own check: it ends up in a replaceWhere predicate)."""
    try:
        check_zone(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def dates_predicate(dates: Sequence[dt.date], distros: Sequence[str] | None) -> str:
    """`dt IN (...) [AND distro IN (...)]` from validated values: partition pruning and replaceWhere
    (the same distros on every date: the shared predicate's simplest case)."""
    return partitions_predicate(dict.fromkeys(dates, distros))


def filter_partitions(df: DataFrame, dates: Sequence[dt.date], distros: Sequence[str] | None) -> DataFrame:
    return df.where(dates_predicate(dates, distros))


def with_minute(df: DataFrame) -> DataFrame:
    """Minute of the UTC day, from epoch seconds so the session time zone cannot shift it."""
    return df.withColumn("minute", (F.floor((F.unix_seconds("ts") % 86400) / 60)).cast("int"))


def agg_minutes(df: DataFrame) -> DataFrame:
    """All measures per distro and minute: the one shuffle of the raw rows for hourly and peak.

    Beside them, `raw_<measure>`: reconciliation's independently written rules (RAW_TOTALS), in
    the same scan, so the reconcile stage checks the statistics without reading cdn_logs again."""
    raw = [F.expr(rule).alias(RAW_PREFIX + m) for m, rule in RAW_TOTALS.items()]
    return df.groupBy("distro", "dt", "minute").agg(*measure_aggs(), *raw)


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


def minute_rows(logs: DataFrame, dates: Sequence[dt.date], distros: Sequence[str] | None) -> pd.DataFrame:
    """One scan: every measure per distro, dt and minute, on the driver (<= 1,440 rows a distro-day)."""
    minutes = logs.transform(filter_partitions, dates, distros).transform(with_minute).transform(agg_minutes)
    raw = {RAW_PREFIX + m: "int64" for m in RAW_TOTALS}
    return minutes.toPandas().astype({"minute": "int32", **{m: "int64" for m in MEASURES}, **raw})


def raw_totals_by_date(minutes: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Reconciliation's raw-row totals per UTC date (over the selected distributions)."""
    columns = [RAW_PREFIX + m for m in RAW_TOTALS]
    per_date = minutes.groupby("dt")[columns].sum()
    return {str(d): {c.removeprefix(RAW_PREFIX): int(v) for c, v in row.items()} for d, row in per_date.iterrows()}


def hourly_rows(minutes: pd.DataFrame) -> pd.DataFrame:
    """Minute rows rolled up to hours; sums of exact counts stay exact (int64)."""
    hours = minutes.assign(hour=(minutes["minute"] // 60).astype("int32"))
    return hours.groupby(["distro", "dt", "hour"], as_index=False, sort=True)[list(MEASURES)].sum()


@dataclass(frozen=True)
class TableWrite:
    """Rows (on the driver) that replace `predicate`'s rows of `table`."""

    table: str
    rows: pd.DataFrame
    schema: str
    predicate: str
    partition: str | tuple[str, ...]
    metadata: str | None = None  # the commit's userMetadata


def _columns(partition: str | Sequence[str]) -> list[str]:
    return [partition] if isinstance(partition, str) else list(partition)


def write_replacing(df: DataFrame, path: str, predicate: str, partition: str | Sequence[str],
                    metadata: str | None = None) -> None:  # fmt: skip
    """Replace exactly the rows matching `predicate` (a re-run or a late file never duplicates)."""
    # mergeSchema: a table of an earlier version gains new columns (stats_viewers' bytes).
    writer = df.write.format("delta").mode("overwrite").option("replaceWhere", predicate).option("mergeSchema", "true")
    if metadata is not None:
        writer = writer.option("userMetadata", metadata)
    writer.partitionBy(*_columns(partition)).save(path)


def write_tables(spark: SparkSession, warehouse: str, writes: Sequence[TableWrite]) -> None:
    """Write the tables side by side: they are independent, and a small table's write is mostly
    Delta log work and waiting (snapshot, commit), not cores, so three in a row cost three times
    that. Through a session with the small-table settings (spark_jobs/session.py)."""
    small = small_table_session(spark)
    frames = [(local_frame(small, w.rows, w.schema), w) for w in writes]
    with ThreadPoolExecutor(max_workers=max(len(frames), 1), thread_name_prefix="cdnlake-stats") as pool:
        futures = [pool.submit(write_replacing, df, table_path(warehouse, w.table), w.predicate, w.partition,
                               w.metadata) for df, w in frames]  # fmt: skip
        for future in futures:
            future.result()


class TimeSeries(NamedTuple):
    present: list[dt.date]  # the dates rebuilt that cdn_logs has rows of
    unchanged: list[dt.date]  # window dates whose statistics still match cdn_logs (not scanned)
    writes: list[TableWrite]
    raw_totals: dict[str, dict[str, int]]  # every scanned date (zeros where cdn_logs has no row)


def dates_to_scan(spark: SparkSession, params: AggregateParams) -> tuple[list[dt.date], list[dt.date], Digests]:
    """(dates to rebuild, window dates left as they are, digests to remember with the writes).

    params.date and params.dates changed (the run ingested them); D-2 and D-1 are rebuilt only when
    their cdn_logs partitions are not those their statistics were built from (spark_jobs/stats_sources.py)."""
    changed = {params.date, *(params.dates or ())}
    wanted = sorted(changed | set(report_window(params.date)))
    now = stats_sources.cdn_logs_digests(spark, params.warehouse, wanted, params.distributions)
    others = [d for d in wanted if d not in changed]
    remembered = stats_sources.remembered_digests(spark, params.warehouse) if others else {}
    unchanged = stats_sources.unchanged_dates(others, now, remembered)
    with_rows = set(stats_sources.dates_with_partitions(others, now))
    scan = [d for d in wanted if d in changed or (d in with_rows and d not in unchanged)]
    return scan, unchanged, stats_sources.to_remember(now, remembered, wanted, params.distributions)


def time_series_writes(logs: DataFrame, params: AggregateParams) -> TimeSeries:
    """stats_minute and stats_hourly rows for the dates that changed (none: no writes)."""
    scan, unchanged, digests = dates_to_scan(logs.sparkSession, params)
    if not scan:
        return TimeSeries([], unchanged, [], {})
    minutes = minute_rows(logs, scan, params.distributions)
    raw = dict.fromkeys(sorted(d.isoformat() for d in scan), dict.fromkeys(RAW_TOTALS, 0))
    raw |= raw_totals_by_date(minutes)
    present = sorted(dt.date.fromisoformat(d) for d in set(minutes["dt"]))
    # Every scanned date is replaced, also one whose rows are gone (a re-ingest that loaded none):
    # its statistics then go too, instead of outliving the rows they were computed from.
    predicate = dates_predicate(scan, params.distributions)
    metadata = stats_sources.commit_metadata(digests)
    bandwidth = minutes[["distro", "dt", "minute", "request_count", "bytes_requested"]]
    return TimeSeries(present, unchanged, [
        TableWrite("stats_minute", bandwidth.rename(columns={"bytes_requested": "bytes"}), MINUTE_SCHEMA,
                   predicate, ("dt",), metadata),
        TableWrite("stats_hourly", hourly_rows(minutes), HOURLY_SCHEMA, predicate, ("dt",), metadata),
    ], raw)  # fmt: skip


def _summary(series: TimeSeries, writes: Sequence[TableWrite]) -> dict[str, Any]:
    rows = {"stats_hourly": 0, "stats_minute": 0} | {w.table: len(w.rows) for w in writes}
    return {"dates": [d.isoformat() for d in series.present], "unchanged": [d.isoformat() for d in series.unchanged],
            "rows": rows}  # fmt: skip


def write_time_series(logs: DataFrame, params: AggregateParams) -> dict[str, Any]:
    """stats_minute and stats_hourly for the dates that changed."""
    series = time_series_writes(logs, params)
    write_tables(logs.sparkSession, params.warehouse, series.writes)
    return _summary(series, series.writes)


def top_list_writes(logs: DataFrame, params: AggregateParams) -> list[TableWrite]:
    """stats_top_lists' rows of report day D in params.report_tz (written even when empty)."""
    day = logs.transform(filter_report_day, params.date, params.report_tz, params.distributions)
    predicate = f"report_date = '{params.date.isoformat()}' AND report_tz = '{params.report_tz}'"
    rows = top_lists.combined_rows(top_lists.top_list_rows(day))
    rows = rows.assign(report_date=params.date.isoformat(), report_tz=params.report_tz)
    # Partitioned by report_tz too: the predicate is then on partition columns only, and Delta
    # replaces files without scanning and rewriting them (a DELETE of 3 jobs otherwise).
    return [TableWrite(TOP_LISTS_TABLE, rows, top_lists.TOP_LISTS_SCHEMA, predicate, ("report_date", "report_tz"))]


def run(spark: SparkSession, params: AggregateParams) -> dict[str, Any]:
    """Rebuild the statistics of params.date (see module docstring); returns dates, rows, seconds."""
    started = time.monotonic()
    if not table_exists(spark, params.warehouse, "cdn_logs"):
        raise RuntimeError(f"cdn_logs does not exist under {params.warehouse}: run ingest first")
    logs = spark.read.format("delta").load(table_path(params.warehouse, "cdn_logs"))
    # The scans side by side: each spends seconds on the driver (planning, code generation,
    # collecting, pandas) while the other's tasks use the cores (13.5 s vs 15.2 s, 2 runs each).
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="cdnlake-scan") as pool:
        series = pool.submit(time_series_writes, logs, params)
        lists = pool.submit(top_list_writes, logs, params)
        time_series = series.result()
        writes = time_series.writes + lists.result()
    write_tables(spark, params.warehouse, writes)
    return {
        "date": params.date.isoformat(),
        "report_tz": params.report_tz,
        **_summary(time_series, writes),
        "raw_totals": time_series.raw_totals,  # what the reconcile stage checks the written statistics against
        "seconds": round(time.monotonic() - started, 2),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aggregate", description=__doc__)
    job_args.add_common(parser, warehouse=True)
    parser.add_argument("--report-tz", type=time_zone, default="UTC", help="IANA zone of the report day")
    parser.add_argument("--dates", type=job_args.date_list, default=None,
                        help="extra comma-separated UTC dates whose partitions changed")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    job_args.run_main(build_parser(), run, argv, AggregateParams)


if __name__ == "__main__":
    main()
