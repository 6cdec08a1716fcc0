"""The report's charts: CloudFront's five cache-statistics graphs over 72 hours, and bandwidth."""

from __future__ import annotations

import numpy as np
import pandas as pd
from reportlab.graphics.shapes import Drawing

from reporting.charts import PALETTE, Marker, Series, XAxis, line_chart
from reporting.fonts import FontSet
from reporting.insights import day_header
from reporting.model import ReportData
from reporting.units import GB, count_scale, find_peak, format_peak, minute_gbps

CHART_HEIGHT = 134.0  # five hourly charts must fit on one A4 page


def _share(part: pd.Series, whole: pd.Series) -> np.ndarray:
    """Percent of ``whole``; an hour without requests shows 0 rather than NaN."""
    num, den = part.to_numpy(dtype=float), whole.to_numpy(dtype=float)
    return np.divide(num * 100.0, den, out=np.zeros_like(num), where=den > 0)


def _hour_axis(data: ReportData) -> XAxis:
    days = data.window

    def label(value: float) -> str:
        index = int(round(value))
        if index % 24 == 0:
            return day_header(days[min(index // 24, 2)])
        return f"{index % 24:02d}:00"

    return XAxis(maximum=71, steps=list(range(0, 72, 6)), label=label,
                 title=f"時刻 Hour ({data.report_tz})", separators=(24, 48))


def _ordered(hourly: pd.DataFrame) -> pd.DataFrame:
    return hourly.assign(date=hourly["date"].astype(str)).sort_values(["date", "hour"], kind="stable")


def hourly_charts(data: ReportData, fonts: FontSet, width: float) -> list[Drawing]:
    """Requests; hit/miss/error share; bytes; status classes; incomplete downloads."""
    h = _ordered(data.hourly)
    axis = _hour_axis(data)
    req = h["request_count"]
    divisor, suffix = count_scale(float(req.max()))
    unit = f" ({suffix})" if suffix else ""

    def chart(title: str, series: list[Series], y_title: str, log_scale: bool = False) -> Drawing:
        return line_chart(title, series, axis, y_title, fonts, width=width, height=CHART_HEIGHT,
                          log_scale=log_scale)

    return [
        chart("リクエスト数  Total requests",
              [Series("Requests", (req / divisor).tolist(), PALETTE["requests"])],
              f"Requests / hour{unit}"),
        chart("結果タイプ別の割合  Hit / miss / error share",
              [Series("Hit", _share(h["hit_count"], req).tolist(), PALETTE["hit"]),
               Series("Miss", _share(h["miss_count"], req).tolist(), PALETTE["miss"]),
               Series("Error", _share(h["error_count"], req).tolist(), PALETTE["error"])],
              "% of requests"),
        chart("転送バイト数  Bytes transferred to viewers",
              [Series("Total", (h["bytes_requested"] / GB).tolist(), PALETTE["bytes"]),
               Series("From misses", (h["bytes_missed"] / GB).tolist(), PALETTE["bytes_missed"])],
              "GB / hour (GB = 2^30 bytes)"),
        chart("HTTP ステータス別  Status classes (log scale)",
              [Series(f"{k}xx", h[f"http{k}xx_count"].tolist(), PALETTE[f"{k}xx"]) for k in (2, 3, 4, 5)],
              "Requests / hour (log)", log_scale=True),
        chart("未完了ダウンロード  Incomplete downloads",
              [Series("Incomplete", _share(h["incomplete_count"], req).tolist(), PALETTE["incomplete"])],
              "% of requests"),
    ]


def bandwidth_chart(data: ReportData, fonts: FontSet, width: float) -> Drawing:
    """Day D's bandwidth per minute in Gbps, with the peak minute circled and labelled."""
    minute = data.minute.sort_values("minute", kind="stable")
    gbps = [minute_gbps(b) for b in minute["bytes"].tolist()]
    peak = find_peak(data.minute)
    peak_minute = int(peak["time"][:2]) * 60 + int(peak["time"][3:])
    axis = XAxis(maximum=1439, steps=list(range(0, 1440, 120)),
                 label=lambda v: f"{int(v) // 60:02d}:00",
                 title=f"時刻 Time of day ({data.report_tz})")
    marker = Marker(x=peak_minute, y=minute_gbps(peak["bytes"]),
                    text="Peak " + format_peak(peak["bytes"], peak_minute))
    title = f"帯域幅  Bandwidth per minute, {day_header(data.date)}"
    return line_chart(title, [Series("Gbps", gbps, PALETTE["bandwidth"])], axis, "Gbps (GB x 8 / 60)", fonts,
                      width=width, height=CHART_HEIGHT + 20, marker=marker)
