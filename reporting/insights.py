"""Day-over-day insights (SPEC sections 3 and 5), pure pandas.

Values are shown in the units of the original e-mail (M = 1e6, K = 1e3, GB = 2**30 bytes) with two
decimals and no thousands separators (``209360.64``), and the trend is computed from the raw
values, not from the rounded ones, so ``+17.51%`` is exact.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass

import pandas as pd

from reporting.model import MEASURES
from reporting.units import GB

# Month abbreviations spelled out: strftime("%b") depends on the process locale, and a report
# produced on a ja_JP host must still say JUN-08.
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")

# (label, measure column, divisor) in the order of the original e-mail.
INSIGHT_MEASURES: tuple[tuple[str, str, float], ...] = (
    ("Request Count (M)", "request_count", 1e6),
    ("Hit Count (M)", "hit_count", 1e6),
    ("Miss Count (M)", "miss_count", 1e6),
    ("Error Count (K)", "error_count", 1e3),
    ("Incomplete Count (K)", "incomplete_count", 1e3),
    ("HTTP 2XX Count (M)", "http2xx_count", 1e6),
    ("HTTP 3XX Count (K)", "http3xx_count", 1e3),
    ("HTTP 4XX Count", "http4xx_count", 1.0),
    ("HTTP 5XX Count", "http5xx_count", 1.0),
    ("Bytes Requested (GB)", "bytes_requested", float(GB)),
    ("Bytes Missed (GB)", "bytes_missed", float(GB)),
)


@dataclass(frozen=True)
class InsightRow:
    measure: str
    previous: str
    current: str
    trend: str
    direction: str  # "up", "down", "flat" or "n/a": drives the colour in PDF and HTML


@dataclass(frozen=True)
class InsightsTable:
    previous_date: dt.date
    current_date: dt.date
    rows: list[InsightRow]

    @property
    def headers(self) -> list[str]:
        return ["MEASURES", day_header(self.previous_date), day_header(self.current_date), "TREND"]

    def as_records(self) -> list[dict[str, str]]:
        """JSON-friendly rows for summary.json."""
        extra = {"previous_date": self.previous_date.isoformat(),
                 "current_date": self.current_date.isoformat()}
        return [{**asdict(row), **extra} for row in self.rows]


def day_header(day: dt.date) -> str:
    """``2024-06-08`` -> ``JUN-08``."""
    return f"{_MONTHS[day.month - 1]}-{day.day:02d}"


def daily_totals(hourly: pd.DataFrame) -> pd.DataFrame:
    """Per-date sums of every measure, indexed by the date string, as int64."""
    totals = hourly.groupby(hourly["date"].astype(str))[list(MEASURES)].sum()
    return totals.astype("int64").sort_index()


def format_trend(previous: float, current: float) -> tuple[str, str]:
    """(text, direction). A zero previous value has no meaningful ratio: ``n/a``."""
    if previous == 0:
        return "n/a", "n/a"
    pct = (float(current) - float(previous)) / float(previous) * 100.0
    rounded = round(pct, 2)
    # Avoid "-0.00%": a change too small to show is no change.
    if rounded == 0 or math.isclose(rounded, 0.0, abs_tol=1e-12):
        return "+0.00%", "flat"
    return f"{rounded:+.2f}%", "up" if rounded > 0 else "down"


def _totals_for(totals: pd.DataFrame, day: dt.date) -> pd.Series:
    key = day.isoformat()
    if key not in totals.index:
        # A day absent from the frame had no traffic (the contract says zeros are filled).
        return pd.Series(0, index=list(MEASURES), dtype="int64")
    return totals.loc[key]


def insights_table(hourly: pd.DataFrame, previous: dt.date, current: dt.date) -> InsightsTable:
    totals = daily_totals(hourly)
    prev_row, cur_row = _totals_for(totals, previous), _totals_for(totals, current)
    rows = []
    for label, column, divisor in INSIGHT_MEASURES:
        prev_value, cur_value = int(prev_row[column]), int(cur_row[column])
        trend, direction = format_trend(prev_value, cur_value)
        rows.append(InsightRow(
            measure=label,
            previous=f"{prev_value / divisor:.2f}",
            current=f"{cur_value / divisor:.2f}",
            trend=trend,
            direction=direction,
        ))
    return InsightsTable(previous_date=previous, current_date=current, rows=rows)


def insights_tables(hourly: pd.DataFrame, day: dt.date) -> tuple[InsightsTable, InsightsTable]:
    """(D-1 vs D, D-2 vs D-1): the e-mail shows the first, the PDF both."""
    one, two = day - dt.timedelta(days=1), day - dt.timedelta(days=2)
    return insights_table(hourly, one, day), insights_table(hourly, two, one)
