"""Each traffic rule with planted data on both sides of its threshold (figures chosen by hand)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from reporting.alerts import (
    Alert,
    Thresholds,
    five_xx_share,
    hit_ratio_drop,
    peak_over_commit,
    silent_hours,
    traffic_alerts,
    volume_outliers,
)

D = dt.date(2024, 6, 9)


def day(offset: int) -> str:
    return (D - dt.timedelta(days=offset)).isoformat()


def rows(*items: tuple[str, str, int, int, int, int, int]) -> pd.DataFrame:
    """(distro, date, hour, requests, hits, 5xx, bytes)."""
    columns = ["distro", "date", "hour", "request_count", "hit_count", "http5xx_count", "bytes_requested"]
    return pd.DataFrame(list(items), columns=columns)


def test_5xx_share_above_the_limit_alerts_and_at_the_limit_does_not() -> None:
    hourly = rows(("e1", day(0), 3, 1000, 900, 51, 1), ("e1", day(0), 4, 1000, 900, 50, 1),
                  ("e2", day(0), 3, 1000, 900, 120, 1), ("e1", day(1), 3, 1000, 900, 500, 1))  # fmt: skip
    alerts = five_xx_share(hourly, D, limit_pct=5.0, min_requests=100)
    assert [(a.distribution, a.hour, a.value, a.severe) for a in alerts] == [("e1", 3, 5.1, False),
                                                                            ("e2", 3, 12.0, True)]  # fmt: skip
    assert alerts[0].as_dict() == {"kind": "5xx_share", "distribution": "e1", "hour": 3, "value": 5.1,
                                   "threshold": 5.0, "severe": False}  # fmt: skip


def test_5xx_share_ignores_hours_below_the_minimum_requests() -> None:
    hourly = rows(("e1", day(0), 3, 99, 0, 99, 1), ("e1", day(0), 4, 100, 0, 6, 1))
    assert [a.hour for a in five_xx_share(hourly, D, 5.0, 100)] == [4]


def test_hit_ratio_drop_beyond_n_points() -> None:
    # e1: 90% -> 79% (11 points, alert); e2: 90% -> 80% (10 points, not more than 10: no alert)
    hourly = rows(("e1", day(1), 0, 100, 90, 0, 1), ("e1", day(0), 0, 100, 79, 0, 1),
                  ("e2", day(1), 0, 200, 180, 0, 1), ("e2", day(0), 0, 100, 80, 0, 1))  # fmt: skip
    alerts = hit_ratio_drop(hourly, D, points=10.0)
    assert [(a.distribution, a.value) for a in alerts] == [("e1", 11.0)]


def test_silent_hour_that_had_traffic_on_each_day_before() -> None:
    history = [("e1", day(i), h, 10, 5, 0, 1) for i in (1, 2) for h in (5, 6)]
    # hour 5 of D: nothing (alert); hour 6: one request (no alert); e2 had traffic only on D-1 (no alert)
    hourly = rows(*history, ("e1", day(0), 6, 1, 0, 0, 1), ("e2", day(1), 5, 10, 0, 0, 1))
    alerts = silent_hours(hourly, D, days_before=2)
    assert [(a.kind, a.distribution, a.hour, a.severe) for a in alerts] == [("silent", "e1", 5, True)]
    assert silent_hours(hourly, D, days_before=0) == []


def test_volume_outside_half_and_double_of_the_7_day_median() -> None:
    history = [(d, day(i), 0, 1, 0, 0, 1000 + i) for d in ("lo", "ok", "hi", "edge") for i in range(1, 8)]
    # medians: 1004 for each; D: lo 500 (0.498), ok 1004, hi 2100 (2.09), edge 2008 (exactly 2.0: no alert)
    today = [("lo", day(0), 0, 1, 0, 0, 500), ("ok", day(0), 0, 1, 0, 0, 1004),
             ("hi", day(0), 0, 1, 0, 0, 2100), ("edge", day(0), 0, 1, 0, 0, 2008)]  # fmt: skip
    alerts = volume_outliers(rows(*history, *today), D, low=0.5, high=2.0)
    assert [(a.kind, a.distribution, a.value) for a in alerts] == [("volume_high", "hi", 2.092),
                                                                  ("volume_low", "lo", 0.498)]  # fmt: skip


def test_volume_needs_three_days_of_history_and_ignores_older_days() -> None:
    hourly = rows(("e1", day(1), 0, 1, 0, 0, 1000), ("e1", day(2), 0, 1, 0, 0, 1000),
                  ("e1", day(8), 0, 1, 0, 0, 1000), ("e1", day(0), 0, 1, 0, 0, 10))  # fmt: skip
    assert volume_outliers(hourly, D, 0.5, 2.0) == []
    gone = rows(*[("e1", day(i), 0, 1, 0, 0, 1000) for i in (1, 2, 3)])  # no row at all on D: 0x the median
    assert [(a.kind, a.value) for a in volume_outliers(gone, D, 0.5, 2.0)] == [("volume_low", 0.0)]


def test_peak_above_the_committed_bandwidth() -> None:
    peak = {"time": "13:37", "bytes": 0, "gb": 300.0, "gbps": 40.0}
    assert peak_over_commit(peak, 40.0) == []
    assert peak_over_commit(peak, 0.0) == []  # 0 = off
    assert peak_over_commit(peak, 39.99) == [Alert("peak_over_commit", None, 13, 40.0, 39.99, severe=True)]


def test_traffic_alerts_runs_every_rule_and_texts_read_well() -> None:
    hourly = rows(("e1", day(0), 3, 1000, 900, 300, 1))
    alerts = traffic_alerts(hourly, D, {"time": "03:00", "gbps": 1.0}, Thresholds(committed_gbps=0.5))
    assert [a.kind for a in alerts] == ["5xx_share", "peak_over_commit"]
    assert alerts[0].text() == "SEVERE 5xx_share e1 03:00: 5xx share 30.0% of requests (limit 5%)"
    assert traffic_alerts(hourly.iloc[0:0], D, {"gbps": 0}, Thresholds()) == []


@pytest.mark.parametrize("kind", ["hit_ratio_drop", "silent", "volume_low", "volume_high", "peak_over_commit"])
def test_every_kind_has_its_own_text(kind: str) -> None:
    text = Alert(kind, "e1", None, 1.0, 2.0).text()
    assert text.startswith(f"{kind} e1: ") and "1.0 > 2.0" not in text
