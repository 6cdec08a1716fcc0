"""Deterministic synthetic :class:`ReportData`, so tests and demos can render without Spark.

Volumes mimic the original operator (~300M requests and ~250 TB per day over 3 distributions,
peaks near 300 GB per minute) so that the layout is exercised with realistically wide numbers.
The seed is derived from the date: the same date always yields the same report.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from reporting.model import MEASURES, ReportData, window_dates

DEFAULT_DISTRIBUTIONS = ("e1abcd2efgh3ij", "e2klmn4opqr5st", "e3uvwx6yzab7cd")
_EDGES = ("NRT57-C1", "NRT20-C4", "KIX56-P1", "HND50-C2", "ICN54-C3", "TPE52-C1", "HKG62-C2",
          "SIN2-C1", "LAX50-C1", "FRA56-P5")


def _diurnal(hours: np.ndarray) -> np.ndarray:
    # Evening-heavy video traffic with a trough around 05:00 and the busiest hours after lunch.
    return 0.55 + 0.45 * np.sin((hours - 7.0) / 24.0 * 2 * np.pi)


def _hour_measures(requests: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    def share(ratio: float, spread: float = 0.02) -> np.ndarray:
        return np.rint(requests * ratio * rng.uniform(1 - spread, 1 + spread, requests.size)).astype("int64")

    http3 = share(0.0005)
    http4 = rng.poisson(75, requests.size).astype("int64")
    http5 = rng.poisson(4, requests.size).astype("int64")
    bytes_requested = np.rint(requests * 850_000 * rng.uniform(0.97, 1.03, requests.size)).astype("int64")
    return {
        "request_count": requests,
        "hit_count": share(0.885, 0.01),
        "miss_count": share(0.085),
        "refresh_hit_count": share(0.012),
        "error_count": share(0.00035),
        "incomplete_count": share(0.00028),
        # 2xx is what is left after the other classes and the 000 (viewer gone) statuses.
        "http2xx_count": requests - http3 - http4 - http5 - share(0.0002),
        "http3xx_count": http3,
        "http4xx_count": http4,
        "http5xx_count": http5,
        "bytes_requested": bytes_requested,
        "bytes_missed": np.rint(bytes_requested * 0.08).astype("int64"),
    }


def _minute_bytes(hourly_bytes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # A smooth curve at minute resolution (no steps at the hour) scaled to the day's volume.
    curve = _diurnal(np.arange(1440) / 60.0) * rng.uniform(0.85, 1.15, 1440)
    curve[13 * 60 + 37] *= 1.8  # a visible burst, like a live event start, for the peak marker
    return np.rint(curve / curve.sum() * hourly_bytes.sum()).astype("int64")


def _hourly(day: dt.date, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    frames = []
    for offset, current in enumerate(window_dates(day)):
        hours = np.arange(24)
        level = 12.5e6 * (0.92 + 0.06 * offset)  # mild growth over the three days
        requests = np.rint(level * _diurnal(hours) * rng.uniform(0.95, 1.05, 24)).astype("int64")
        frame = pd.DataFrame({"date": current.isoformat(), "hour": hours, **_hour_measures(requests, rng)})
        frames.append(frame)
    hourly = pd.concat(frames, ignore_index=True)
    minute_bytes = _minute_bytes(hourly["bytes_requested"].to_numpy()[-24:], rng)
    # Keep the two frames consistent: day D's hourly bytes are the sums of its minutes.
    hourly.loc[hourly.index[-24:], "bytes_requested"] = minute_bytes.reshape(24, 60).sum(axis=1)
    minute = pd.DataFrame({"minute": np.arange(1440), "bytes": minute_bytes})
    return hourly, minute


def _distro_daily(day_totals: pd.Series, distributions: list[str]) -> pd.DataFrame:
    weights = np.array([0.5, 0.3, 0.2, 0.1, 0.05][: len(distributions)] or [1.0])
    weights = np.resize(weights, len(distributions)) / np.resize(weights, len(distributions)).sum()
    rows = {m: np.floor(day_totals[m] * weights).astype("int64") for m in MEASURES}
    for m in MEASURES:  # the first distribution absorbs rounding so the totals match exactly
        rows[m][0] += int(day_totals[m]) - int(rows[m].sum())
    return pd.DataFrame({"distro": distributions, **rows})


def _top_objects(distributions: list[str], rng: np.random.Generator) -> pd.DataFrame:
    n = 50
    requests = np.sort(rng.integers(200_000, 6_000_000, n))[::-1]
    hits = np.rint(requests * rng.uniform(0.6, 0.99, n)).astype("int64")
    misses = requests - hits
    uris = [f"/vod/series-{i // 5:02d}/ep{i % 5 + 1}/seg-{rng.integers(1, 900):04d}.ts" for i in range(n)]
    uris[3] = "/動画/予告編/特報_第2弾_1080p.mp4"  # non-Latin paths exist in the wild
    uris[7] = "/live/channel-01/" + "very-long-path-segment-" * 4 + "chunk.m4s"
    byt = requests * rng.integers(400_000, 2_000_000, n)
    return pd.DataFrame({
        "distro": [distributions[i % len(distributions)] for i in range(n)], "uri": uris,
        "requests": requests, "hits": hits, "misses": misses, "hit_ratio": hits / requests,
        # Ratio first: byt * misses would overflow int64.
        "bytes": byt, "bytes_missed": np.rint(byt * (misses / requests)).astype("int64"),
        "incomplete": rng.integers(0, 900, n), "http2xx": requests - 40, "http3xx": rng.integers(0, 20, n),
        "http4xx": rng.integers(0, 15, n), "http5xx": rng.integers(0, 5, n),
    })


def _split(total: int, weights: list[float]) -> np.ndarray:
    """Integer counts proportional to ``weights`` (which may sum to < 1 for a top-N list)."""
    return np.floor(np.asarray(weights) * total).astype("int64")


def _small_tables(rng: np.random.Generator, total: int) -> dict[str, pd.DataFrame]:
    domains = ["www.example.jp", "m.example.jp", "t.co", "www.google.com", "search.yahoo.co.jp",
               "www.facebook.com", "news.example.com", "l.instagram.com", "line.me", "(direct)"]
    refs = [*domains, *[f"partner{i:02d}.example.net" for i in range(15)]]
    ref_req = _split(total, list(np.sort(rng.dirichlet(np.ones(len(refs)) * 0.7))[::-1] * 0.9))
    edge_req = _split(total, list(np.sort(rng.dirichlet(np.ones(len(_EDGES)) * 2))[::-1]))
    os_w = [0.33, 0.24, 0.16, 0.09, 0.06, 0.04, 0.03, 0.02, 0.015, 0.015]
    br_w = [0.30, 0.22, 0.18, 0.08, 0.06, 0.04, 0.03, 0.02, 0.01, 0.01]
    return {
        "top_referrers": pd.DataFrame({"referrer_domain": refs, "requests": ref_req,
                                       "bytes": ref_req * rng.integers(600_000, 1_100_000, len(refs))}),
        "edge_locations": pd.DataFrame({"edge_location": list(_EDGES), "requests": edge_req,
                                        "bytes": edge_req * 850_000,
                                        "hit_ratio": rng.uniform(0.82, 0.97, len(_EDGES))}),
        "devices": pd.DataFrame({"device_type": ["Mobile", "Desktop", "Smart TV", "Tablet", "Other"],
                                 "requests": _split(total, [0.52, 0.27, 0.12, 0.06, 0.03])}),
        "os": pd.DataFrame({"os": ["iOS", "Android", "Windows", "Mac OS X", "Tizen", "webOS", "Linux",
                                   "Chrome OS", "Fire OS", "Other"], "requests": _split(total, os_w)}),
        "browsers": pd.DataFrame({"browser": ["Mobile Safari", "Chrome Mobile", "Chrome", "Edge", "Safari",
                                              "Samsung Internet", "Firefox", "Android WebView", "Opera",
                                              "Other"], "requests": _split(total, br_w)}),
    }


def sample_report_data(
    date: dt.date, distributions: list[str] | None = None, report_tz: str = "UTC"
) -> ReportData:
    """A complete, internally consistent ReportData for ``date``; same date -> same data."""
    rng = np.random.default_rng(date.toordinal())
    dists = list(distributions or DEFAULT_DISTRIBUTIONS)
    hourly, minute = _hourly(date, rng)
    day_totals = hourly[hourly["date"] == date.isoformat()][list(MEASURES)].sum()
    loaded = int(day_totals["request_count"])
    return ReportData(
        date=date,
        report_tz=report_tz,
        distributions=dists,
        generated_at=dt.datetime.combine(date + dt.timedelta(days=1), dt.time(0, 30), tzinfo=dt.UTC),
        hourly=hourly,
        minute=minute,
        distro_daily=_distro_daily(day_totals, dists),
        top_objects=_top_objects(dists, rng),
        quality={"files": 4012, "damaged_files": 1, "lines_read": loaded + 1375, "loaded": loaded,
                 "rejected": 1375},
        **_small_tables(rng, loaded),
    )


def hourly_from_totals(day: dt.date, totals: dict[str, dict[str, int]], hour: int = 12) -> pd.DataFrame:
    """A zero-filled 72-hour frame where each date's given totals sit in one ``hour``.

    Lets tests write day totals by hand (``{"2024-06-09": {"request_count": 304_250_000}}``)
    and know every sum the report should show.
    """
    rows = []
    for current in window_dates(day):
        for h in range(24):
            given = totals.get(current.isoformat(), {}) if h == hour else {}
            measures = {m: int(given.get(m, 0)) for m in MEASURES}
            rows.append({"date": current.isoformat(), "hour": h, **measures})
    return pd.DataFrame(rows).astype({m: "int64" for m in MEASURES})


def report_data_from_totals(
    day: dt.date, totals: dict[str, dict[str, int]], minute_bytes: dict[int, int] | None = None,
    distributions: list[str] | None = None,
) -> ReportData:
    """A minimal ReportData around hand-written totals; other frames come from the sample."""
    base = sample_report_data(day, distributions)
    hourly = hourly_from_totals(day, totals)
    minute = pd.DataFrame({"minute": np.arange(1440), "bytes": np.zeros(1440, dtype="int64")})
    for m, value in (minute_bytes or {}).items():
        minute.loc[m, "bytes"] = value
    day_row = hourly[hourly["date"] == day.isoformat()][list(MEASURES)].sum()
    return ReportData(
        date=day, report_tz=base.report_tz, distributions=base.distributions, generated_at=base.generated_at,
        hourly=hourly, minute=minute, distro_daily=_distro_daily(day_row, base.distributions),
        top_objects=base.top_objects, top_referrers=base.top_referrers, edge_locations=base.edge_locations,
        devices=base.devices, os=base.os, browsers=base.browsers, quality=base.quality,
    )
