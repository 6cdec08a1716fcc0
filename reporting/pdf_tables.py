"""Platypus tables of the report: insights, per-distribution totals, top lists, data quality."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import Paragraph, Table, TableStyle

from reporting.fonts import FontSet
from reporting.insights import InsightsTable
from reporting.model import MEASURES, CrossCheck, ReportData
from reporting.units import fmt_gb, fmt_int, fmt_percent

HEADER_BG = colors.HexColor("#1f3b5a")
ZEBRA = colors.HexColor("#f3f5f8")
RULE = colors.HexColor("#c8ced6")
UP = colors.HexColor("#c62828")  # SPEC/brief: red for up, green for down, as the original e-mail
DOWN = colors.HexColor("#2e7d32")
FONT_SIZE = 7
# Figures are set in Bitstream Vera (embedded), about 13% wider than the Helvetica these column
# widths were made for: at 7 x 0.885 pt it takes the same room and looks as large (taller x-height).
LATIN_SIZE = 6.2


def _style(fonts: FontSet, numeric_from: int, rows: int) -> list[tuple[Any, ...]]:
    commands: list[tuple[Any, ...]] = [
        ("FONT", (0, 0), (-1, -1), fonts.latin, LATIN_SIZE),
        ("FONT", (0, 0), (-1, 0), fonts.latin_bold, LATIN_SIZE),
        ("TEXTCOLOR", (0, 0), (-1, 0), colors.white),
        ("BACKGROUND", (0, 0), (-1, 0), HEADER_BG),
        ("ALIGN", (numeric_from, 0), (-1, -1), "RIGHT"),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
    commands += [("BACKGROUND", (0, r), (-1, r), ZEBRA) for r in range(2, rows, 2)]
    return commands


def _table(rows: Sequence[Sequence[Any]], widths: Sequence[float] | None, fonts: FontSet,
           numeric_from: int = 1, extra: Sequence[tuple[Any, ...]] = ()) -> Table:
    body = [list(r) for r in rows]
    extra = list(extra)
    if len(body) == 1:  # header only: say so, rather than print a bare header bar
        body.append(["no data for this day"] + [""] * (len(body[0]) - 1))
        extra += [("SPAN", (0, 1), (-1, 1)), ("ALIGN", (0, 1), (-1, 1), "LEFT"),
                  ("TEXTCOLOR", (0, 1), (-1, 1), colors.HexColor("#777777"))]
    table = Table(body, colWidths=widths, repeatRows=1, hAlign="LEFT")
    table.setStyle(TableStyle([*_style(fonts, numeric_from, len(body)), *extra]))
    return table


def _text(value: object, fonts: FontSet, size: float = FONT_SIZE) -> Paragraph:
    """A wrapping cell in the CJK font: URIs, referrers and labels may be non-Latin and long."""
    style = ParagraphStyle("cell", fontName=fonts.cjk, fontSize=size, leading=size + 1.5, wordWrap="CJK")
    escaped = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return Paragraph(escaped, style)


def _trend_colour(direction: str) -> colors.Color:
    return {"up": UP, "down": DOWN}.get(direction, colors.HexColor("#555555"))


def insights_flowable(latest: InsightsTable, previous: InsightsTable, fonts: FontSet) -> Table:
    """One table for both comparisons: MEASURES | D-2 | D-1 | TREND | D | TREND."""
    header = ["MEASURES", *previous.headers[1:3], "TREND", latest.headers[2], "TREND"]
    rows: list[list[Any]] = [header]
    extra: list[tuple[Any, ...]] = [("FONT", (3, 1), (3, -1), fonts.latin_bold, LATIN_SIZE),
                                    ("FONT", (5, 1), (5, -1), fonts.latin_bold, LATIN_SIZE)]
    for index, (old, new) in enumerate(zip(previous.rows, latest.rows, strict=True), start=1):
        rows.append([new.measure, old.previous, old.current, old.trend, new.current, new.trend])
        extra.append(("TEXTCOLOR", (3, index), (3, index), _trend_colour(old.direction)))
        extra.append(("TEXTCOLOR", (5, index), (5, index), _trend_colour(new.direction)))
    return _table(rows, [150, 76, 76, 64, 76, 64], fonts, extra=extra)


def _day_requests(data: ReportData) -> int:
    hourly = data.hourly
    return int(hourly.loc[hourly["date"].astype(str) == data.date.isoformat(), "request_count"].sum())


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _distro_row(name: str, r: pd.Series) -> list[str]:
    return [name, fmt_int(r["request_count"]), fmt_percent(_ratio(r["hit_count"], r["request_count"])),
            fmt_int(r["miss_count"]), fmt_int(r["error_count"]), fmt_int(r["incomplete_count"]),
            fmt_int(r["http4xx_count"]), fmt_int(r["http5xx_count"]), fmt_gb(r["bytes_requested"]),
            fmt_gb(r["bytes_missed"])]


def distributions_flowable(data: ReportData, fonts: FontSet) -> Table:
    """Day D per distribution, busiest first, with a bold total row."""
    frame = data.distro_daily.sort_values("request_count", ascending=False, kind="stable")
    header = ["Distribution", "Requests", "Hit ratio", "Misses", "Errors", "Incomplete", "4xx", "5xx",
              "GB", "GB from misses"]
    rows: list[list[Any]] = [header, *(_distro_row(str(r["distro"]), r) for _, r in frame.iterrows())]
    rows.append(_distro_row("Total", frame[list(MEASURES)].sum()))
    total_style = [("FONT", (0, -1), (-1, -1), fonts.latin_bold, LATIN_SIZE),
                   ("LINEABOVE", (0, -1), (-1, -1), 0.8, HEADER_BG)]
    return _table(rows, [78, 58, 40, 52, 42, 46, 30, 30, 62, 62], fonts, extra=total_style)


def top_objects_flowable(data: ReportData, fonts: FontSet, width: float) -> Table:
    header = ["#", "Distribution", "URI", "Requests", "Hit %", "Misses", "GB", "Miss GB", "Incompl.",
              "2xx", "3xx", "4xx", "5xx"]
    fixed: list[float] = [14, 58, 0, 42, 24, 38, 38, 36, 32, 40, 20, 20, 18]
    fixed[2] = width - sum(fixed)
    rows: list[list[Any]] = [header]
    for rank, (_, r) in enumerate(data.top_objects.head(50).iterrows(), start=1):
        rows.append([rank, r["distro"], _text(r["uri"], fonts, 6.5), fmt_int(r["requests"]),
                     fmt_percent(r["hit_ratio"], 0), fmt_int(r["misses"]), fmt_gb(r["bytes"]),
                     fmt_gb(r["bytes_missed"]), fmt_int(r["incomplete"]), fmt_int(r["http2xx"]),
                     fmt_int(r["http3xx"]), fmt_int(r["http4xx"]), fmt_int(r["http5xx"])])
    extra = [("FONT", (0, 1), (-1, -1), fonts.latin, 5.75), ("FONT", (0, 0), (-1, 0), fonts.latin_bold, 5.75),
             ("ALIGN", (1, 0), (2, -1), "LEFT")]
    return _table(rows, fixed, fonts, numeric_from=3, extra=[*extra, ("ALIGN", (0, 0), (0, -1), "RIGHT")])


def _ranked(frame: pd.DataFrame, label: str, title: str, total: int, fonts: FontSet,
            extra_cols: Sequence[str], widths: Sequence[float]) -> Table:
    """Rank | label | requests | share of day D's requests | optional GB / hit ratio."""
    header = ["#", title, "Requests", "Share", *extra_cols]
    rows: list[list[Any]] = [header]
    for rank, (_, r) in enumerate(frame.iterrows(), start=1):
        share = fmt_percent(_ratio(r["requests"], total))
        row = [rank, _text(r[label], fonts), fmt_int(r["requests"]), share]
        if "GB" in extra_cols:
            row.append(fmt_gb(r["bytes"]))
        if "Hit ratio" in extra_cols:
            row.append(fmt_percent(r["hit_ratio"]))
        rows.append(row)
    return _table(rows, widths, fonts, numeric_from=2, extra=[("ALIGN", (0, 0), (0, -1), "RIGHT")])


def referrers_flowable(data: ReportData, fonts: FontSet) -> Table:
    total = _day_requests(data)
    return _ranked(data.top_referrers.head(25), "referrer_domain", "Referrer domain", total, fonts, ["GB"],
                   [16, 170, 62, 40, 62])


def edges_flowable(data: ReportData, fonts: FontSet) -> Table:
    total = _day_requests(data)
    return _ranked(data.edge_locations, "edge_location", "Edge location", total, fonts, ["GB", "Hit ratio"],
                   [16, 90, 62, 40, 62, 46])


def viewers_flowable(data: ReportData, fonts: FontSet, width: float) -> Table:
    """Devices, OS and browsers side by side: three short lists read best together."""
    total = _day_requests(data)
    column = (width - 12) / 3
    widths = [12, column - 12 - 50 - 32, 50, 32]
    parts = [_ranked(data.devices.head(10), "device_type", "Device type", total, fonts, [], widths),
             _ranked(data.os.head(10), "os", "OS", total, fonts, [], widths),
             _ranked(data.browsers.head(10), "browser", "Browser", total, fonts, [], widths)]
    outer = Table([parts], colWidths=[column + 4] * 3, hAlign="LEFT")
    # The outer cells' own font is never drawn but still named: the default Helvetica is not embedded.
    outer.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0),
                               ("FONT", (0, 0), (-1, -1), fonts.latin)]))
    return outer


def countries_flowable(data: ReportData, fonts: FontSet) -> Table:
    """Requests and bytes by viewer country; the share is of all of day D's requests (legacy rows
    carry no country, so on a mixed day the shares add up to less than 100%)."""
    total = _day_requests(data)
    return _ranked(data.countries.head(15), "country", "Country", total, fonts, ["GB"], [16, 90, 62, 40, 62])


def quality_flowable(data: ReportData, fonts: FontSet) -> Table:
    q = {k: int(v) for k, v in data.quality.items()}
    read, loaded, rejected = q.get("lines_read", 0), q.get("loaded", 0), q.get("rejected", 0)
    balanced = "OK" if read == loaded + rejected else "MISMATCH"
    header = ["Files", "Damaged files", "Lines read", "Loaded", "Rejected", "Reject rate",
              "Read = loaded + rejected"]
    rows = [header, [fmt_int(q.get("files", 0)), fmt_int(q.get("damaged_files", 0)), fmt_int(read),
                     fmt_int(loaded), fmt_int(rejected), fmt_percent(_ratio(rejected, read), 3), balanced]]
    return _table(rows, [48, 60, 70, 70, 56, 56, 110], fonts, numeric_from=0)


def _signed_pct(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:+.2f}%"


def crosscheck_flowable(check: CrossCheck, fonts: FontSet) -> Table:
    """Logs vs CloudWatch per distribution; differences beyond the threshold in red."""
    header = ["Distribution", "Requests (logs)", "Requests (CW)", "Diff", "GB (logs)", "GB (CW)", "Diff",
              "Hours over"]
    rows: list[list[Any]] = [header]
    extra: list[tuple[Any, ...]] = []
    for index, (_, r) in enumerate(check.table.iterrows(), start=1):
        rows.append([str(r["distro"]), fmt_int(r["requests_logs"]), fmt_int(r["requests_cloudwatch"]),
                     _signed_pct(r["requests_diff_pct"]), fmt_gb(r["bytes_logs"]), fmt_gb(r["bytes_cloudwatch"]),
                     _signed_pct(r["bytes_diff_pct"]), fmt_int(r["hours_over"])])
        for col, key in ((3, "requests_diff_pct"), (6, "bytes_diff_pct")):
            value = r[key]
            if value is None or pd.isna(value) or abs(value) > check.threshold_pct:
                extra.append(("TEXTCOLOR", (col, index), (col, index), UP))
    if len(rows) > 2:  # the last row is the total of the distributions above it
        extra += [("FONT", (0, -1), (-1, -1), fonts.latin_bold, LATIN_SIZE),
                  ("LINEABOVE", (0, -1), (-1, -1), 0.8, HEADER_BG)]
    return _table(rows, [78, 66, 80, 44, 62, 66, 44, 46], fonts, extra=extra)
