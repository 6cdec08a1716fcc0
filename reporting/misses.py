"""The cache-miss page of the weekly report: top rules, top missed objects, miss ratio by edge."""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from reporting.fonts import resolve_fonts
from reporting.units import fmt_gb

_HEADER = colors.HexColor("#1f3b5b")


def _table(rows: list[list[str]], widths: list[float], font: str) -> Table:
    table = Table(rows, colWidths=widths, repeatRows=1)
    table.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, -1), font, 7), ("BACKGROUND", (0, 0), (-1, 0), _HEADER),
        ("TEXTCOLOR", (0, 0), (-1, 0), colors.white), ("ALIGN", (1, 1), (-1, -1), "RIGHT"),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#eef2f7")]),
    ]))  # fmt: skip
    return table


def build_misses_pdf(
    start: dt.date, end: dt.date, rules: pd.DataFrame, top: pd.DataFrame, edges: pd.DataFrame
) -> bytes:
    fonts = resolve_fonts()
    styles = getSampleStyleSheet()
    title = styles["Title"].clone("t", fontName=fonts.cjk)
    heading = styles["Heading3"].clone("h", fontName=fonts.cjk)
    story = [Paragraph(f"キャッシュミス分析 Cache-miss analysis {start} – {end}", title)]
    story.append(Paragraph("Association rules => result (ranked by lift)", heading))
    rule_rows = [["antecedent", "consequent", "support", "confidence", "lift", "count"]] + [
        [str(r.antecedent), str(r.consequent), f"{r.support:.6f}", f"{r.confidence:.2f}", f"{r.lift:.2f}",
         f"{int(r.count):,}"] for r in rules.head(15).itertuples()
    ]  # fmt: skip
    story.append(_table(rule_rows, [80 * mm, 22 * mm, 18 * mm, 18 * mm, 14 * mm, 18 * mm], fonts.latin))
    story += [Spacer(1, 4 * mm), Paragraph("Top missed objects", heading)]
    top_rows = [["uri", "misses", "miss ratio", "GB from misses"]] + [
        [str(r.uri)[-70:], f"{int(r.misses):,}", f"{r.miss_ratio:.1%}", fmt_gb(int(r.bytes_missed or 0))]
        for r in top.head(15).itertuples()
    ]
    story.append(_table(top_rows, [110 * mm, 20 * mm, 20 * mm, 25 * mm], fonts.latin))
    story += [Spacer(1, 4 * mm), Paragraph("Miss ratio by edge location", heading)]
    edge_rows = [["edge location", "requests", "misses", "miss ratio"]] + [
        [str(r.edge_location), f"{int(r.requests):,}", f"{int(r.misses):,}", f"{r.miss_ratio:.1%}"]
        for r in edges.sort_values("miss_ratio", ascending=False).head(15).itertuples()
    ] if not edges.empty else [["edge location", "requests", "misses", "miss ratio"]]
    story.append(_table(edge_rows, [50 * mm, 30 * mm, 30 * mm, 30 * mm], fonts.latin))
    buffer = io.BytesIO()
    SimpleDocTemplate(buffer, pagesize=A4, title="cdnlake cache-miss analysis",
                      initialFontName=fonts.latin).build(story)
    return buffer.getvalue()
