"""The CDN cache report as an A4 PDF (ReportLab platypus + reportlab.graphics charts)."""

from __future__ import annotations

import io
from typing import Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import CondPageBreak, KeepTogether, PageBreak, Paragraph, SimpleDocTemplate, Spacer

from reporting.fonts import FontSet, resolve_fonts
from reporting.insights import insights_tables
from reporting.model import ReportData
from reporting.pdf_charts import bandwidth_chart, hourly_charts
from reporting.pdf_ops import ops_box
from reporting.pdf_tables import (
    countries_flowable,
    crosscheck_flowable,
    distributions_flowable,
    edges_flowable,
    insights_flowable,
    quality_flowable,
    referrers_flowable,
    top_objects_flowable,
    viewers_flowable,
)
from reporting.units import find_peak, fmt_gb, fmt_int, fmt_percent, peak_strings

MARGIN = 14 * mm
CONTENT_WIDTH = A4[0] - 2 * MARGIN
TITLE_JA = "CDN キャッシュ統計レポート"
ACCENT = colors.HexColor("#1f3b5a")


def _numbered_canvas(fonts: FontSet, footer_left: str) -> type[Canvas]:
    """A canvas that defers page drawing so the footer can say "Page 2 / 5"."""

    class NumberedCanvas(Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802 - ReportLab's API name
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self._footer(total)
                super().showPage()
            super().save()

        def _footer(self, total: int) -> None:
            self.saveState()
            self.setStrokeColor(colors.HexColor("#c8ced6"))
            self.line(MARGIN, 10 * mm, A4[0] - MARGIN, 10 * mm)
            self.setFont(fonts.cjk, 7)
            self.setFillColor(colors.HexColor("#555555"))
            self.drawString(MARGIN, 6.5 * mm, footer_left)
            self.setFont(fonts.latin, 7)
            self.drawRightString(A4[0] - MARGIN, 6.5 * mm, f"Page {self._pageNumber} / {total}")
            self.restoreState()

    return NumberedCanvas


def _styles(fonts: FontSet) -> dict[str, ParagraphStyle]:
    return {
        "title": ParagraphStyle("title", fontName=fonts.cjk, fontSize=18, leading=23, textColor=ACCENT),
        "subtitle": ParagraphStyle("subtitle", fontName=fonts.latin, fontSize=10.5, leading=14,
                                   textColor=colors.HexColor("#333333")),
        "meta": ParagraphStyle("meta", fontName=fonts.cjk, fontSize=8.5, leading=12),
        "peak": ParagraphStyle("peak", fontName=fonts.latin_bold, fontSize=12, leading=16,
                               textColor=colors.HexColor("#c62828")),
        "h2": ParagraphStyle("h2", fontName=fonts.cjk, fontSize=11.5, leading=15, textColor=ACCENT,
                             spaceBefore=8, spaceAfter=4),
        "note": ParagraphStyle("note", fontName=fonts.cjk, fontSize=7, leading=9.5, spaceBefore=3,
                               textColor=colors.HexColor("#555555")),
    }


def _title_block(data: ReportData, fonts: FontSet, st: dict[str, ParagraphStyle]) -> list[Any]:
    first, last = data.window[0], data.window[-1]
    peak = find_peak(data.minute)
    hourly = data.hourly[data.hourly["date"].astype(str) == data.date.isoformat()]
    requests, hits = int(hourly["request_count"].sum()), int(hourly["hit_count"].sum())
    day_bytes = int(hourly["bytes_requested"].sum())
    tz = data.report_tz
    return [
        Paragraph(TITLE_JA, st["title"]),
        Paragraph(f"CDN cache statistics report &mdash; {data.date.isoformat()} ({tz})", st["subtitle"]),
        Spacer(1, 4),
        Paragraph(f"対象期間 Period: {first.isoformat()} 00:00 &ndash; {last.isoformat()} 23:59 ({tz}), "
                  "72 hours", st["meta"]),
        Paragraph(f"ディストリビューション Distributions ({len(data.distributions)}): "
                  + ", ".join(data.distributions), st["meta"]),
        Paragraph(f"{data.date.isoformat()}: requests {fmt_int(requests)}, hit ratio "
                  f"{fmt_percent(hits / requests if requests else None)}, {fmt_gb(day_bytes)} GB "
                  "transferred (GB = 2^30 bytes)", st["meta"]),
        Spacer(1, 4),
        # Japanese words need the CJK font; the figures stay in the Latin bold font.
        Paragraph(f'<font name="{fonts.cjk}">最大ピーク</font> Peak: {peak_strings(peak)[0]}', st["peak"]),
    ]


def _overview(data: ReportData, fonts: FontSet, st: dict[str, ParagraphStyle]) -> list[Any]:
    """Page 1: what a reader needs at a glance (peak, bandwidth, day-over-day, per distribution)."""
    latest, previous = insights_tables(data.hourly, data.date)
    note = ("M = 10^6, K = 10^3, GB = 2^30 bytes; each TREND compares with the column on its left "
            "(red: up, green: down).")
    return [
        *_title_block(data, fonts, st),
        *ops_box(data, fonts, CONTENT_WIDTH),
        Spacer(1, 6),
        bandwidth_chart(data, fonts, CONTENT_WIDTH),
        Paragraph("前日比 Day-over-day insights", st["h2"]),
        insights_flowable(latest, previous, fonts),
        Paragraph(note, st["note"]),
        Paragraph("ディストリビューション別 Per distribution", st["h2"]),
        distributions_flowable(data, fonts),
        # Data quality belongs on page 1: a reject spike changes how every figure above reads.
        Paragraph("データ品質 Data quality", st["h2"]),
        quality_flowable(data, fonts),
        *_crosscheck(data, fonts, st),
    ]


def _crosscheck(data: ReportData, fonts: FontSet, st: dict[str, ParagraphStyle]) -> list[Any]:
    """CloudWatch vs logs, next to data quality: both say whether the figures above are complete."""
    check = data.crosscheck
    if check is None:
        return []
    notes = [Paragraph(_escape(line), st["note"]) for line in check.alerts[:8]]
    return [
        Paragraph("CloudWatch 照合 CloudWatch cross-check", st["h2"]),
        crosscheck_flowable(check, fonts),
        Paragraph(_escape(check.summary_line()) + " &mdash; CW = CloudWatch, diff = (logs - CW) / CW; "
                  "CloudWatch bytes are GET/HEAD/OPTIONS bodies, log bytes include headers.", st["note"]),
        *notes,
    ]


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _details(data: ReportData, fonts: FontSet, st: dict[str, ParagraphStyle]) -> list[Any]:
    """Top lists of day D; CondPageBreak keeps each heading with the start of its table."""
    return [
        Paragraph("人気オブジェクト Top objects", st["h2"]),
        top_objects_flowable(data, fonts, CONTENT_WIDTH),
        CondPageBreak(90 * mm),
        Paragraph("リファラー Top referrers", st["h2"]),
        referrers_flowable(data, fonts),
        CondPageBreak(60 * mm),
        Paragraph("エッジロケーション Edge locations", st["h2"]),
        edges_flowable(data, fonts),
        CondPageBreak(60 * mm),
        Paragraph("デバイス / OS / ブラウザ Viewers", st["h2"]),
        viewers_flowable(data, fonts, CONTENT_WIDTH),
        *_countries(data, fonts, st),
    ]


def _countries(data: ReportData, fonts: FontSet, st: dict[str, ParagraphStyle]) -> list[Any]:
    """Viewer countries, only where rows carry one (standard logging v2)."""
    if data.countries.empty:
        return []
    return [CondPageBreak(60 * mm), Paragraph("国・地域 Viewer countries", st["h2"]), countries_flowable(data, fonts)]


def _story(data: ReportData, fonts: FontSet) -> list[Any]:
    st = _styles(fonts)
    charts = [KeepTogether([chart, Spacer(1, 6)]) for chart in hourly_charts(data, fonts, CONTENT_WIDTH)]
    return [*_overview(data, fonts, st), PageBreak(),
            Paragraph("キャッシュ統計 Cache statistics, 72 hours", st["h2"]), *charts, PageBreak(),
            *_details(data, fonts, st)]


def build_pdf(data: ReportData, font_path: str | None = None) -> bytes:
    """Render the report; ``font_path`` overrides the CJK font search (see reporting.fonts)."""
    fonts = resolve_fonts(font_path)
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer, pagesize=A4, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN, bottomMargin=16 * mm,
        title=f"CDN cache report {data.date.isoformat()}", author="cdnlake",
        subject=", ".join(data.distributions),
        # A fixed document id keeps the output byte-stable for the same input (diff-able reports).
        invariant=1,
        initialFontName=fonts.latin,  # else every page names Helvetica, a font no PDF embeds
    )
    generated = data.generated_at.strftime("%Y-%m-%d %H:%M %Z").strip()
    footer = f"cdnlake · {TITLE_JA} {data.date.isoformat()} · generated {generated}"
    doc.build(_story(data, fonts), canvasmaker=_numbered_canvas(fonts, footer))
    return buffer.getvalue()
