"""The report's first-page box: traffic alerts, late files and the month's usage (ReportData.ops)."""

from __future__ import annotations

from typing import Any

from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import Paragraph, Spacer, Table, TableStyle

from reporting.fonts import FontSet
from reporting.model import ReportData
from reporting.units import find_peak, peak_strings

MAX_ALERT_LINES = 10  # the rest is in summary.json; the box must leave room for the charts
ALERT_COLOUR, CALM_COLOUR = colors.HexColor("#fdecea"), colors.HexColor("#eef3f8")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def ops_lines(data: ReportData) -> list[str]:
    """The box's lines, plain text (tested without rendering)."""
    if data.ops is None:
        return []
    ops = data.ops
    lines = [ops.morning(peak_strings(find_peak(data.minute))[0])] + ops.late.lines
    shown = ops.alerts[:MAX_ALERT_LINES]
    lines += [f"ALERT {a.text()}" for a in shown]
    if len(ops.alerts) > len(shown):
        lines.append(f"... and {len(ops.alerts) - len(shown)} more alert(s) in summary.json")
    if not ops.alerts:
        lines.append("No traffic alerts.")
    return lines


def ops_box(data: ReportData, fonts: FontSet, width: float) -> list[Any]:
    """A shaded box (red-tinted when there are alerts); nothing when the report has no ops."""
    lines = ops_lines(data)
    if not lines:
        return []
    style = ParagraphStyle("ops", fontName=fonts.cjk, fontSize=8, leading=10.5)
    rows = [[Paragraph(_escape(line), style)] for line in lines]
    box = Table(rows, colWidths=[width])
    shade = ALERT_COLOUR if data.ops and data.ops.alerts else CALM_COLOUR
    box.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (-1, -1), shade), ("BOX", (0, 0), (-1, -1), 0.6, colors.HexColor("#9aa5b1")),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ]))  # fmt: skip
    return [Spacer(1, 4), box]
