"""Traffic alerts: pure rules over the statistics (per distribution, local date and hour).

Every rule takes the hourly frame (columns ``distro, date, hour`` and the measures, ``date`` as
``YYYY-MM-DD`` in the report time zone) of day D and the days before it, and returns Alerts. The
thresholds come from CDNLAKE_ALERT_* settings (README "Alerts"); the rules know nothing of
settings, Spark or delivery.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from reporting.units import to_gb

HISTORY_DAYS = 7  # the volume rule's median covers the 7 days before D
_MIN_HISTORY_DAYS = 3  # a median of fewer days says too little to alert on


@dataclass(frozen=True)
class Alert:
    """One alert; `as_dict` is the summary.json form ({kind, distribution, hour, value, threshold})."""

    kind: str
    distribution: str | None  # None: all distributions together
    hour: int | None  # local hour of D, None for a whole-day rule
    value: float
    threshold: float
    severe: bool = False  # severe alerts also go out by SMS (SNS)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "severe"} | {"severe": self.severe}

    def text(self) -> str:
        """One line for Slack, the e-mail and the report."""
        where = self.distribution or "all distributions"
        at = f" {self.hour:02d}:00" if self.hour is not None else ""
        templates = {
            "5xx_share": f"5xx share {self.value:.1f}% of requests (limit {self.threshold:g}%)",
            "hit_ratio_drop": f"hit ratio down {self.value:.1f} points from the day before (limit {self.threshold:g})",
            "silent": f"no requests in an hour that had traffic on each of the {self.threshold:g} days before",
            "volume_low": f"daily bytes {self.value:.2f}x the last-7-day median (limit x{self.threshold:g})",
            "volume_high": f"daily bytes {self.value:.2f}x the last-7-day median (limit x{self.threshold:g})",
            "peak_over_commit": f"peak {self.value:.2f} Gbps above the committed {self.threshold:g} Gbps",
        }
        severity = "SEVERE " if self.severe else ""
        return f"{severity}{self.kind} {where}{at}: {templates.get(self.kind, f'{self.value} > {self.threshold}')}"


def _day(hourly: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    return hourly[hourly["date"].astype(str) == day.isoformat()]


def five_xx_share(hourly: pd.DataFrame, day: dt.date, limit_pct: float, min_requests: int) -> list[Alert]:
    """An hour of D (per distribution) whose 5xx share of requests is above `limit_pct`; severe at twice it."""
    rows = _day(hourly, day)
    rows = rows[(rows["request_count"] >= max(1, min_requests))]
    share = rows["http5xx_count"] / rows["request_count"] * 100
    over = rows.assign(share=share)[share > limit_pct].sort_values(["distro", "hour"])
    return [Alert("5xx_share", str(r.distro), int(r.hour), round(float(r.share), 2), limit_pct,
                  severe=float(r.share) >= 2 * limit_pct) for r in over.itertuples()]  # fmt: skip


def _daily(hourly: pd.DataFrame) -> pd.DataFrame:
    measures = ["request_count", "hit_count", "bytes_requested"]
    return hourly.groupby(["distro", "date"], as_index=False)[measures].sum()


def hit_ratio_drop(hourly: pd.DataFrame, day: dt.date, points: float) -> list[Alert]:
    """A distribution whose hit ratio (hits / requests) on D is more than `points` below D-1's."""
    daily = _daily(hourly)
    daily = daily[daily["request_count"] > 0].assign(ratio=lambda f: f["hit_count"] / f["request_count"] * 100)
    today = daily[daily["date"] == day.isoformat()].set_index("distro")["ratio"]
    before = daily[daily["date"] == (day - dt.timedelta(days=1)).isoformat()].set_index("distro")["ratio"]
    drop = (before - today).dropna()
    return [Alert("hit_ratio_drop", str(d), None, round(float(v), 2), points)
            for d, v in drop.sort_index().items() if v > points]  # fmt: skip


def silent_hours(hourly: pd.DataFrame, day: dt.date, days_before: int) -> list[Alert]:
    """An hour of D with no requests for a distribution that had requests in that hour on each of
    the `days_before` days before D (0 turns the rule off). Severe: the distribution may be down."""
    if days_before <= 0:
        return []
    before = [(day - dt.timedelta(days=i)).isoformat() for i in range(1, days_before + 1)]
    busy = hourly[hourly["date"].isin(before) & (hourly["request_count"] > 0)]
    steady = busy.groupby(["distro", "hour"])["date"].nunique()
    steady = steady[steady == days_before].index
    today = _day(hourly, day).groupby(["distro", "hour"])["request_count"].sum()
    silent = [(d, h) for d, h in steady if int(today.get((d, h), 0)) == 0]
    return [Alert("silent", str(d), int(h), 0.0, float(days_before), severe=True) for d, h in sorted(silent)]


def volume_outliers(hourly: pd.DataFrame, day: dt.date, low: float, high: float) -> list[Alert]:
    """A distribution whose bytes on D are below `low` or above `high` times the median of the 7 days
    before (days without any row do not count; at least 3 are needed). `value` is the ratio."""
    daily = _daily(hourly)
    first = (day - dt.timedelta(days=HISTORY_DAYS)).isoformat()
    history = daily[(daily["date"] >= first) & (daily["date"] < day.isoformat())]
    counts = history.groupby("distro")["date"].nunique()
    median = history.groupby("distro")["bytes_requested"].median()[counts >= _MIN_HISTORY_DAYS]
    today = daily[daily["date"] == day.isoformat()].set_index("distro")["bytes_requested"]
    alerts = []
    for distro, typical in median.sort_index().items():
        if typical <= 0:
            continue
        ratio = float(today.get(distro, 0)) / float(typical)
        if ratio < low:
            alerts.append(Alert("volume_low", str(distro), None, round(ratio, 3), low))
        elif ratio > high:
            alerts.append(Alert("volume_high", str(distro), None, round(ratio, 3), high))
    return alerts


def peak_over_commit(peak: dict[str, Any], committed_gbps: float) -> list[Alert]:
    """The day's peak minute (all distributions, find_peak's dict) above the committed Gbps (0 = off)."""
    if committed_gbps <= 0 or float(peak.get("gbps", 0.0)) <= committed_gbps:
        return []
    return [Alert("peak_over_commit", None, int(str(peak["time"])[:2]), round(float(peak["gbps"]), 2),
                  committed_gbps, severe=True)]  # fmt: skip


@dataclass(frozen=True)
class Thresholds:
    five_xx_pct: float = 5.0
    min_requests: int = 100
    hit_ratio_drop_points: float = 10.0
    silent_days: int = 2
    volume_low: float = 0.5
    volume_high: float = 2.0
    committed_gbps: float = 100.0


def traffic_alerts(hourly: pd.DataFrame, day: dt.date, peak: dict[str, Any], limits: Thresholds) -> list[Alert]:
    """Every rule over D; `hourly` holds D and up to 7 days before it."""
    if hourly.empty:
        return peak_over_commit(peak, limits.committed_gbps)
    return [
        *five_xx_share(hourly, day, limits.five_xx_pct, limits.min_requests),
        *hit_ratio_drop(hourly, day, limits.hit_ratio_drop_points),
        *silent_hours(hourly, day, limits.silent_days),
        *volume_outliers(hourly, day, limits.volume_low, limits.volume_high),
        *peak_over_commit(peak, limits.committed_gbps),
    ]


def average_gbps(bytes_in_day: float, seconds: float = 86400.0) -> float:
    """The day's average bandwidth with the report's GB (2**30 bytes) and Gbps = GB x 8 / s."""
    return to_gb(bytes_in_day) * 8 / seconds
