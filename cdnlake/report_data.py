"""Statistics tables -> ReportData, read with delta-rs (no Spark needed to report).

The hourly and per-minute tables are kept in UTC; the report's 72 hours and day D are in the
report time zone (whole-hour offsets, checked by settings), so the UTC rows are shifted here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from reporting.model import MEASURES, TOP_OBJECT_COLUMNS, ReportData, window_dates
from spark_jobs.contract import LEGACY_TOP_LIST_TABLES, REPORT_WINDOW_DAYS, TOP_LIST_COLUMNS, TOP_LISTS_TABLE


@dataclass(frozen=True)
class Warehouse:
    """A warehouse location with the delta-rs storage options to reach it (e.g. an S3 endpoint
    other than AWS's: cdnlake/integrations/aws.py builds them from CDNLAKE_S3_ENDPOINT). A plain str works too."""

    uri: str
    options: dict[str, str] = field(default_factory=dict)


def table_uri(warehouse: str | Warehouse, table: str) -> str:
    root = warehouse.uri if isinstance(warehouse, Warehouse) else warehouse
    return root.rstrip("/").replace("s3a://", "s3://", 1) + "/" + table


def read_table(warehouse: str | Warehouse, table: str,
               partitions: list[tuple[str, str, Any]] | None = None) -> pd.DataFrame:  # fmt: skip
    """A Delta table (or its matching partitions) as pandas; empty when the table does not exist."""
    options = warehouse.options if isinstance(warehouse, Warehouse) else None
    try:
        delta = DeltaTable(table_uri(warehouse, table), storage_options=options or None)
    except TableNotFoundError:
        return pd.DataFrame()
    return delta.to_pandas(partitions=partitions or None)


def utc_range(day: dt.date, tz: str, days: int = 1) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in naive UTC of `days` local days ending with `day` in zone `tz`."""
    zone = ZoneInfo(tz)
    start = dt.datetime.combine(day - dt.timedelta(days=days - 1), dt.time(), zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
    to_utc = lambda t: t.astimezone(dt.UTC).replace(tzinfo=None)  # noqa: E731
    return to_utc(start), to_utc(end)


def utc_dates(start: dt.datetime, end: dt.datetime) -> list[str]:
    days = []
    d = start.date()
    while dt.datetime.combine(d, dt.time()) < end:
        days.append(d.isoformat())
        d += dt.timedelta(days=1)
    return days


def _local_times(frame: pd.DataFrame, tz: str, minute_col: str | None = None) -> pd.Series:
    """Naive local timestamps for rows keyed by UTC dt + hour (or minute of day)."""
    offset = pd.to_timedelta(frame[minute_col], unit="min") if minute_col else pd.to_timedelta(frame["hour"], unit="h")
    utc = pd.to_datetime(frame["dt"]) + offset
    return utc.dt.tz_localize("UTC").dt.tz_convert(tz).dt.tz_localize(None)


def _filter_distros(frame: pd.DataFrame, distributions: list[str] | None) -> pd.DataFrame:
    if frame.empty or not distributions:
        return frame
    return frame[frame["distro"].isin(distributions)]


def hourly_window(warehouse: str | Warehouse, day: dt.date, tz: str, distributions: list[str] | None) -> pd.DataFrame:
    """72 rows (D-2 00h .. D 23h local) of all measures, zeros where there was no traffic."""
    start, end = utc_range(day, tz, days=REPORT_WINDOW_DAYS)
    rows = _filter_distros(read_table(warehouse, "stats_hourly", [("dt", "in", utc_dates(start, end))]),
                           distributions)  # fmt: skip
    grid = pd.DataFrame(
        [(d.isoformat(), h) for d in window_dates(day) for h in range(24)], columns=["date", "hour"]
    )
    if rows.empty:
        return grid.assign(**{m: 0 for m in MEASURES}).astype({m: "int64" for m in MEASURES})
    local = _local_times(rows, tz)
    rows = rows.assign(date=local.dt.strftime("%Y-%m-%d"), hour=local.dt.hour)
    sums = rows.groupby(["date", "hour"], as_index=False)[list(MEASURES)].sum()
    merged = grid.merge(sums, on=["date", "hour"], how="left").fillna(0)
    return merged.astype({m: "int64" for m in MEASURES})


def distro_day(warehouse: str | Warehouse, day: dt.date, tz: str, distributions: list[str] | None) -> pd.DataFrame:
    start, end = utc_range(day, tz)
    rows = _filter_distros(read_table(warehouse, "stats_hourly", [("dt", "in", utc_dates(start, end))]),
                           distributions)  # fmt: skip
    if rows.empty:
        return pd.DataFrame(columns=["distro", *MEASURES])
    local = _local_times(rows, tz)
    rows = rows[local.dt.date == day]
    return rows.groupby("distro", as_index=False)[list(MEASURES)].sum().astype({m: "int64" for m in MEASURES})


def minute_day(warehouse: str | Warehouse, day: dt.date, tz: str, distributions: list[str] | None) -> pd.DataFrame:
    """Bytes per local minute of day D over the selected distributions (1440 rows)."""
    start, end = utc_range(day, tz)
    rows = _filter_distros(read_table(warehouse, "stats_minute", [("dt", "in", utc_dates(start, end))]),
                           distributions)  # fmt: skip
    grid = pd.DataFrame({"minute": range(1440)})
    if rows.empty:
        return grid.assign(bytes=0).astype({"bytes": "int64"})
    local = _local_times(rows, tz, minute_col="minute")
    rows = rows[local.dt.date == day].assign(minute=(local.dt.hour * 60 + local.dt.minute))
    sums = rows.groupby("minute", as_index=False)["bytes"].sum()
    return grid.merge(sums, on="minute", how="left").fillna(0).astype({"bytes": "int64"})


def _report_day_rows(warehouse: str | Warehouse, table: str, day: dt.date, tz: str) -> pd.DataFrame:
    rows = read_table(warehouse, table, [("report_date", "=", day.isoformat())])
    return rows if rows.empty else rows[rows["report_tz"] == tz].reset_index(drop=True)


_DTYPES = {"BIGINT": "int64", "INT": "int64", "DOUBLE": "float64", "STRING": "object"}


def _one_list(rows: pd.DataFrame, name: str) -> pd.DataFrame:
    """List `name`'s rows of stats_top_lists with its own columns and types (the other lists'
    columns are NULL there, which delta-rs hands over as floats)."""
    fields = [field.split() for field in TOP_LIST_COLUMNS[name].split(", ")]
    part = rows[rows["list"] == name] if not rows.empty else rows
    part = part.reindex(columns=[c for c, _ in fields] + ["report_date", "report_tz"])
    return part.astype({c: _DTYPES[k] for c, k in fields}).reset_index(drop=True)


def top_lists(warehouse: str | Warehouse, day: dt.date, tz: str) -> dict[str, pd.DataFrame]:
    """The four top lists of day D (TOP_LIST_COLUMNS' names), empty frames when nothing was written.

    A day stats_top_lists has no row of (aggregated before that table existed, or without traffic)
    is read from the table per list an earlier version wrote, where there is one.
    """
    rows = _report_day_rows(warehouse, TOP_LISTS_TABLE, day, tz)
    if rows.empty:
        legacy = {name: _report_day_rows(warehouse, table, day, tz) for name, table in LEGACY_TOP_LIST_TABLES.items()}
        if any(not frame.empty for frame in legacy.values()):
            return legacy
    return {name: _one_list(rows, name) for name in TOP_LIST_COLUMNS}


def quality(warehouse: str | Warehouse, day: dt.date, tz: str, distributions: list[str] | None) -> dict[str, int]:
    """Data quality of the UTC dates that make up day D: files, damaged, lines read/loaded/rejected."""
    start, end = utc_range(day, tz)
    files = _filter_distros(read_table(warehouse, "ingest_files", [("dt", "in", utc_dates(start, end))]),
                            distributions)  # fmt: skip
    if files.empty:
        return {"files": 0, "damaged_files": 0, "lines_read": 0, "loaded": 0, "rejected": 0}
    return {
        "files": int(len(files)),
        "damaged_files": int(files["damaged"].sum()),
        "lines_read": int(files["lines_read"].sum()),
        "loaded": int(files["loaded"].sum()),
        "rejected": int(files["rejected"].sum()),
    }


def _viewers(frame: pd.DataFrame, dimension: str, *extra: str) -> pd.DataFrame:
    columns = [dimension, "requests", *extra]
    if frame.empty or any(c not in frame.columns for c in extra):
        return pd.DataFrame(columns=columns)
    part = frame[frame["dimension"] == dimension].sort_values(["requests", "value"], ascending=[False, True])
    return part.rename(columns={"value": dimension})[columns].reset_index(drop=True)


def build_report_data(
    warehouse: str | Warehouse, day: dt.date, tz: str, distributions: list[str] | None, generated_at: dt.datetime
) -> ReportData:
    hourly = hourly_window(warehouse, day, tz, distributions)
    per_distro = distro_day(warehouse, day, tz, distributions)
    lists = top_lists(warehouse, day, tz)
    objects = lists["top_objects"]
    names = distributions or sorted(per_distro["distro"].unique().tolist())
    return ReportData(
        date=day,
        report_tz=tz,
        distributions=list(names),
        generated_at=generated_at,
        hourly=hourly,
        minute=minute_day(warehouse, day, tz, distributions),
        distro_daily=per_distro,
        top_objects=objects if not objects.empty else pd.DataFrame(columns=list(TOP_OBJECT_COLUMNS)),
        top_referrers=lists["top_referrers"],
        edge_locations=lists["edge_locations"],
        devices=_viewers(lists["viewers"], "device_type"),
        os=_viewers(lists["viewers"], "os"),
        browsers=_viewers(lists["viewers"], "browser"),
        countries=_viewers(lists["viewers"], "country", "bytes"),
        quality=quality(warehouse, day, tz, distributions),
    )
