"""Input contract of the reporting package: already-aggregated pandas frames.

The Spark statistics job produces these frames; reporting only formats them. Validation happens
once, here, so that every renderer can rely on the shapes (72 hours, 1440 minutes) without
re-checking them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd

# MEASURES: one list for the jobs and the report; its order is cdn_statistics.csv's (SPEC section 5).
from reporting.operations import Operations
from spark_jobs.contract import MEASURES, report_window

HOURS_IN_WINDOW = 72
MINUTES_IN_DAY = 1440

TOP_OBJECT_COLUMNS: tuple[str, ...] = (
    "distro", "uri", "requests", "hits", "misses", "hit_ratio", "bytes", "bytes_missed",
    "incomplete", "http2xx", "http3xx", "http4xx", "http5xx",
)

QUALITY_KEYS: tuple[str, ...] = ("files", "damaged_files", "lines_read", "loaded", "rejected")

CROSSCHECK_COLUMNS: tuple[str, ...] = (
    "distro", "requests_logs", "requests_cloudwatch", "requests_diff_pct",
    "bytes_logs", "bytes_cloudwatch", "bytes_diff_pct", "hours_over",
)  # fmt: skip


def window_dates(day: dt.date) -> list[dt.date]:
    """The three report days D-2, D-1, D, oldest first."""
    return report_window(day)


def _require_columns(name: str, frame: pd.DataFrame, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"ReportData.{name} is missing columns {missing}")


def _empty(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})


def _pct(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:+.2f}%"


@dataclass(frozen=True)
class CrossCheck:
    """Logs vs CloudFront's CloudWatch metrics for day D (computed by cdnlake/integrations/cloudwatch.py).

    ``table`` has one row per distribution and a last ``total`` row (CROSSCHECK_COLUMNS; the
    ``*_diff_pct`` are (logs - CloudWatch) / CloudWatch in percent, None where undefined);
    ``alerts`` are ready-made lines for the differences beyond ``threshold_pct``.
    """

    table: pd.DataFrame
    alerts: list[str] = field(default_factory=list)
    threshold_pct: float = 5.0

    def __post_init__(self) -> None:
        _require_columns("crosscheck.table", self.table, CROSSCHECK_COLUMNS)

    def summary_line(self) -> str:
        """One line for the e-mail: the total's differences, and OK or how many alerts."""
        if self.table.empty:
            return "CloudWatch cross-check: no data"
        total = self.table.iloc[-1]
        state = "OK" if not self.alerts else f"{len(self.alerts)} alert(s)"
        return (
            f"CloudWatch cross-check {state}: requests {_pct(total['requests_diff_pct'])}, "
            f"bytes {_pct(total['bytes_diff_pct'])} (logs vs CloudWatch, threshold ±{self.threshold_pct:g}%)"
        )


@dataclass(frozen=True, kw_only=True)
class ReportData:
    """Everything one daily report needs, for day ``date`` in time zone ``report_tz``.

    Keyword-only: a dozen frames passed positionally would be too easy to swap silently.
    """

    date: dt.date
    report_tz: str = "UTC"
    distributions: list[str]
    generated_at: dt.datetime
    hourly: pd.DataFrame
    minute: pd.DataFrame
    distro_daily: pd.DataFrame
    top_objects: pd.DataFrame = field(default_factory=lambda: _empty(TOP_OBJECT_COLUMNS))
    top_referrers: pd.DataFrame = field(
        default_factory=lambda: _empty(("referrer_domain", "requests", "bytes")))
    edge_locations: pd.DataFrame = field(
        default_factory=lambda: _empty(("edge_location", "requests", "bytes", "hit_ratio")))
    devices: pd.DataFrame = field(default_factory=lambda: _empty(("device_type", "requests")))
    os: pd.DataFrame = field(default_factory=lambda: _empty(("os", "requests")))
    browsers: pd.DataFrame = field(default_factory=lambda: _empty(("browser", "requests")))
    # Viewer countries (top 15), from standard logging v2's c-country; empty for legacy-only days.
    countries: pd.DataFrame = field(default_factory=lambda: _empty(("country", "requests", "bytes")))
    quality: dict[str, int] = field(default_factory=dict)
    crosscheck: CrossCheck | None = None  # only when the CloudWatch cross-check is configured
    ops: Operations | None = None  # alerts, late files, month usage: set by the daily flow

    def __post_init__(self) -> None:
        # Fail early with a precise message: a wrong shape would otherwise surface as an
        # obscure KeyError deep inside chart code.
        _require_columns("hourly", self.hourly, ("date", "hour", *MEASURES))
        if len(self.hourly) != HOURS_IN_WINDOW:
            raise ValueError(f"ReportData.hourly must have {HOURS_IN_WINDOW} rows, got {len(self.hourly)}")
        expected = {d.isoformat() for d in window_dates(self.date)}
        found = set(self.hourly["date"].astype(str))
        if found != expected:
            raise ValueError(f"ReportData.hourly dates {sorted(found)} != window {sorted(expected)}")
        _require_columns("minute", self.minute, ("minute", "bytes"))
        if len(self.minute) != MINUTES_IN_DAY:
            raise ValueError(f"ReportData.minute must have {MINUTES_IN_DAY} rows, got {len(self.minute)}")
        _require_columns("distro_daily", self.distro_daily, ("distro", *MEASURES))
        _require_columns("top_objects", self.top_objects, TOP_OBJECT_COLUMNS)

    @property
    def window(self) -> list[dt.date]:
        return window_dates(self.date)
