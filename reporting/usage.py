"""The morning message's figures: the day's average bandwidth and the month's usage.

As the original Slack bot said it: "June bandwidth usage — Yesterday 0.26 PB, Estimate 6.51 PB,
To-Date 2.17 PB". The estimate is to-date / days elapsed x days in the month. Units follow the
report's GB (2**30 bytes): TB = 2**40, PB = 2**50; one unit for the three figures, chosen by the
estimate (the largest), so they read side by side.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from reporting.alerts import average_gbps

UNITS = (("PB", 2**50), ("TB", 2**40), ("GB", 2**30))


def usage_unit(num_bytes: float) -> tuple[str, int]:
    """PB from 1 PB up, TB from 1 TB up, else GB (a small test or demo warehouse)."""
    for name, size in UNITS:
        if num_bytes >= size:
            return name, size
    return UNITS[-1]


@dataclass(frozen=True)
class MonthUsage:
    day: str
    yesterday_bytes: int
    to_date_bytes: int
    estimate_bytes: int
    days_elapsed: int
    days_in_month: int
    average_gbps: float

    def as_dict(self) -> dict[str, Any]:
        unit, size = usage_unit(self.estimate_bytes)
        figures = {k: round(getattr(self, f"{k}_bytes") / size, 2) for k in ("yesterday", "to_date", "estimate")}
        return asdict(self) | {"unit": unit} | {f"{k}_{unit.lower()}": v for k, v in figures.items()}

    def text(self) -> str:
        """`June bandwidth usage — Yesterday 0.26 PB, To-Date 2.17 PB, Estimate 6.51 PB`."""
        unit, size = usage_unit(self.estimate_bytes)
        month = calendar.month_name[dt.date.fromisoformat(self.day).month]
        shown = {k: getattr(self, f"{k}_bytes") / size for k in ("yesterday", "to_date", "estimate")}
        return (f"{month} bandwidth usage — Yesterday {shown['yesterday']:.2f} {unit}, "
                f"To-Date {shown['to_date']:.2f} {unit}, Estimate {shown['estimate']:.2f} {unit}")  # fmt: skip


def month_usage(day: dt.date, bytes_by_date: Mapping[str, int]) -> MonthUsage:
    """Usage of `day`'s month up to and including `day`; `bytes_by_date`: bytes per ISO date (other
    months and later days are ignored; a date without an entry counts as 0)."""
    first = day.replace(day=1)
    in_month = {d: int(b) for d, b in bytes_by_date.items() if first.isoformat() <= d <= day.isoformat()}
    to_date = sum(in_month.values())
    days_in_month = calendar.monthrange(day.year, day.month)[1]
    yesterday = in_month.get(day.isoformat(), 0)
    return MonthUsage(
        day=day.isoformat(), yesterday_bytes=yesterday, to_date_bytes=to_date,
        estimate_bytes=round(to_date / day.day * days_in_month), days_elapsed=day.day,
        days_in_month=days_in_month, average_gbps=average_gbps(yesterday),
    )  # fmt: skip


def morning_line(peak_text: str | None, usage: MonthUsage) -> str:
    """The figures the original bot posted each morning, in one line."""
    peak = f"peak {peak_text}, " if peak_text else ""
    return f"{peak}average {usage.average_gbps:.2f} Gbps; {usage.text()}"
