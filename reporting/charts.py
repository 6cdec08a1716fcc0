"""Line charts (reportlab.graphics) shared by the PDF: axes, legends, colours, markers.

Axes are computed here (nice round steps) instead of ReportLab's automatic ones so that tick
labels get thousands separators and just enough decimals, and so every chart reads the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reportlab.graphics.charts.axes import LogYValueAxis
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.lineplots import LinePlot
from reportlab.graphics.shapes import Circle, Drawing, Group, Line, String
from reportlab.lib import colors

from reporting.fonts import FontSet

# One colour per concept across all charts and tables, so "miss" is always orange.
PALETTE = {
    "requests": colors.HexColor("#1f5fa8"),
    "hit": colors.HexColor("#2e9d4f"),
    "miss": colors.HexColor("#f08c1a"),
    "error": colors.HexColor("#d1343a"),
    "bytes": colors.HexColor("#1f5fa8"),
    "bytes_missed": colors.HexColor("#f08c1a"),
    "2xx": colors.HexColor("#2e9d4f"),
    "3xx": colors.HexColor("#1f5fa8"),
    "4xx": colors.HexColor("#f08c1a"),
    "5xx": colors.HexColor("#d1343a"),
    "incomplete": colors.HexColor("#7b4fa8"),
    "bandwidth": colors.HexColor("#1f5fa8"),
    "peak": colors.HexColor("#d1343a"),
}
GRID = colors.HexColor("#dddddd")
DAY_LINE = colors.HexColor("#888888")
TEXT = colors.HexColor("#333333")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    color: colors.Color


@dataclass(frozen=True)
class XAxis:
    maximum: float
    steps: list[float]
    label: Callable[[float], str]
    title: str
    separators: tuple[float, ...] = ()  # x values that get a darker vertical line (day starts)


@dataclass(frozen=True)
class Marker:
    x: float
    y: float
    text: str


def nice_axis(max_value: float, ticks: int = 5) -> tuple[float, float, int]:
    """(axis max, step, decimals) with a 1/2/2.5/5 x 10^k step covering ``max_value``."""
    if not max_value or max_value <= 0 or math.isnan(max_value):
        return 1.0, 0.2, 1
    raw = max_value / ticks
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    # Fewest decimals that still print the step exactly (0.025 -> 3, 2.5 -> 1, 250 -> 0).
    decimals = next(d for d in range(0, 10) if abs(round(step, d) - step) <= step * 1e-6)
    return step * math.ceil(max_value / step - 1e-9), step, decimals


def log_label(value: float) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if value >= limit:
            return f"{value / limit:g}{suffix}"
    return f"{value:g}"


def _axis_titles(drawing: Drawing, plot: LinePlot, x_title: str, y_title: str, fonts: FontSet) -> None:
    drawing.add(String(plot.x + plot.width / 2, 4, x_title, fontName=fonts.cjk, fontSize=7,
                       fillColor=TEXT, textAnchor="middle"))
    y_text = String(0, 0, y_title, fontName=fonts.cjk, fontSize=7, fillColor=TEXT, textAnchor="middle")
    y_label = Group(y_text)
    y_label.translate(9, plot.y + plot.height / 2)
    y_label.rotate(90)
    drawing.add(y_label)


def _legend(drawing: Drawing, series: Sequence[Series], fonts: FontSet, top: float) -> None:
    legend = Legend()
    legend.colorNamePairs = [(s.color, s.name) for s in series]
    legend.fontName, legend.fontSize = fonts.cjk, 7
    legend.alignment = "right"
    legend.columnMaximum = 1  # one row: legends sit on the title line, right-aligned
    legend.deltax, legend.dx, legend.dy, legend.dxTextSpace = 6, 8, 6, 3
    legend.boxAnchor = "ne"
    legend.x, legend.y = drawing.width - 14, top
    legend.variColumn = 1
    drawing.add(legend)


def _configure_y(plot: LinePlot, series: Sequence[Series], log_scale: bool) -> None:
    top = max((max(s.values) for s in series if len(s.values)), default=0.0)
    if log_scale:
        plot.yValueAxis = LogYValueAxis()
        exponent = max(1, math.ceil(math.log10(max(top, 1.0)) + 1e-9))
        plot.yValueAxis.valueMin, plot.yValueAxis.valueMax = 1, 10**exponent
        # Every other power of ten once the range is wide: nine labels in 90 pt are unreadable.
        stride = 2 if exponent > 5 else 1
        plot.yValueAxis.valueSteps = [10**e for e in range(exponent % stride, exponent + 1, stride)]
        plot.yValueAxis.labelTextFormat = log_label
    else:
        axis_max, step, decimals = nice_axis(top)
        plot.yValueAxis.valueMin, plot.yValueAxis.valueMax, plot.yValueAxis.valueStep = 0, axis_max, step
        plot.yValueAxis.labelTextFormat = lambda v, d=decimals: f"{v:,.{d}f}"
    plot.yValueAxis.visibleGrid = 1
    plot.yValueAxis.gridStrokeColor = GRID
    plot.yValueAxis.labels.fontSize = 6.5


def line_chart(
    title: str, series: Sequence[Series], x_axis: XAxis, y_title: str, fonts: FontSet,
    *, width: float, height: float, log_scale: bool = False, marker: Marker | None = None,
) -> Drawing:
    """A titled line chart with legend, axis titles and optional day separators / marker."""
    # The drawing's initial font (else Helvetica, which no PDF embeds) and its tick labels'.
    drawing = Drawing(width, height, initialFontName=fonts.latin)
    plot = LinePlot()
    plot.x, plot.y, plot.width, plot.height = 48, 30, width - 60, height - 52
    # Log axes cannot show 0: draw it at the floor (1) rather than dropping the point.
    floor = 1.0 if log_scale else None
    plot.data = [[(i, max(float(v), floor) if floor else float(v)) for i, v in enumerate(s.values)]
                 for s in series]
    for index, s in enumerate(series):
        plot.lines[index].strokeColor = s.color
        plot.lines[index].strokeWidth = 1.1 if len(s.values) < 200 else 0.5
    plot.xValueAxis.valueMin, plot.xValueAxis.valueMax = 0, x_axis.maximum
    plot.xValueAxis.valueSteps = x_axis.steps
    plot.xValueAxis.labelTextFormat = x_axis.label
    plot.xValueAxis.labels.fontSize = 6.5
    plot.xValueAxis.visibleGrid, plot.xValueAxis.gridStrokeColor = 1, GRID
    _configure_y(plot, series, log_scale)
    # After _configure_y, which may swap in a log axis.
    plot.xValueAxis.labels.fontName = plot.yValueAxis.labels.fontName = fonts.latin
    drawing.add(plot)
    for x in x_axis.separators:
        px = plot.x + x / x_axis.maximum * plot.width
        drawing.add(Line(px, plot.y, px, plot.y + plot.height, strokeColor=DAY_LINE, strokeWidth=0.6,
                         strokeDashArray=[2, 2]))
    if marker is not None:
        _add_marker(drawing, plot, x_axis, marker, fonts)
    drawing.add(String(plot.x - 40, height - 12, title, fontName=fonts.cjk, fontSize=9, fillColor=TEXT))
    _legend(drawing, series, fonts, top=height - 4)
    _axis_titles(drawing, plot, x_axis.title, y_title, fonts)
    return drawing


def _add_marker(drawing: Drawing, plot: LinePlot, x_axis: XAxis, marker: Marker, fonts: FontSet) -> None:
    y_max = float(plot.yValueAxis.valueMax)
    px = plot.x + marker.x / x_axis.maximum * plot.width
    py = plot.y + marker.y / y_max * plot.height
    drawing.add(Circle(px, py, 3, fillColor=None, strokeColor=PALETTE["peak"], strokeWidth=1.2))
    # Put the label on the side with room so it never runs off the chart.
    anchor, dx = ("end", -6) if px > plot.x + plot.width * 0.6 else ("start", 6)
    drawing.add(String(px + dx, min(py + 4, plot.y + plot.height - 8), marker.text, fontName=fonts.latin_bold,
                       fontSize=7, fillColor=PALETTE["peak"], textAnchor=anchor))
