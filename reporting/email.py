"""The daily e-mail: Japanese body (editable template), insights as responsive HTML, CSV + PDF.

Bcc recipients are kept as a ``Bcc`` header on the in-memory message only, so that
:func:`reporting.delivery.deliver` can route them through SES ``Destination``; every sender strips
that header before bytes leave the process (see :func:`reporting.delivery.wire_bytes`).
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from string import Template

from reporting.insights import InsightsTable, insights_tables
from reporting.model import ReportData
from reporting.outputs import CSV_NAME, PDF_NAME
from reporting.units import find_peak, peak_strings

DEFAULT_BODY_TEMPLATE = (
    "お世話になっております。\n\n"
    "早速ですが、日次の通信データ容量を添付いたしました。\n\n"
    "資料により最大ピークは $peak です、ご確認お願いします。\n\n"
    "以上、よろしくお願いします。"
)
DEFAULT_SUBJECT_TEMPLATE = "[cdnlake]$env_tag CDN daily report $date ($distributions)"
TEMPLATE_FIELDS = frozenset({"peak", "date", "distributions", "environment", "env_tag"})
PRODUCTION_NAMES = frozenset({"", "prod", "production"})
REPORT_DATE_HEADER = "X-Cdnlake-Report-Date"
MAX_SUBJECT_DISTRIBUTIONS = 3  # 20+ distributions must not produce a 400-character subject

UP_COLOUR, DOWN_COLOUR, FLAT_COLOUR = "#c62828", "#2e7d32", "#555555"


@dataclass(frozen=True)
class EmailConfig:
    sender: str
    to: list[str]
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    subject_template: str = DEFAULT_SUBJECT_TEMPLATE
    body_template: str = DEFAULT_BODY_TEMPLATE
    environment: str = "production"

    def __post_init__(self) -> None:
        # A typo in an edited template must fail the configuration, not silently send "$paek".
        for name in ("subject_template", "body_template"):
            unknown = set(Template(getattr(self, name)).get_identifiers()) - TEMPLATE_FIELDS
            if unknown:
                raise ValueError(f"EmailConfig.{name} uses unknown placeholders {sorted(unknown)}; "
                                 f"allowed: {sorted(TEMPLATE_FIELDS)}")
        if not self.sender:
            raise ValueError("EmailConfig.sender is required")
        if not (self.to or self.cc or self.bcc):
            raise ValueError("EmailConfig needs at least one recipient")


def _subject_distributions(distributions: list[str]) -> str:
    shown = ", ".join(distributions[:MAX_SUBJECT_DISTRIBUTIONS])
    hidden = len(distributions) - MAX_SUBJECT_DISTRIBUTIONS
    return f"{shown}, +{hidden} more" if hidden > 0 else shown


def template_values(data: ReportData, config: EmailConfig) -> dict[str, str]:
    env = config.environment.strip()
    return {
        "peak": peak_strings(find_peak(data.minute))[1],
        "date": data.date.isoformat(),
        "distributions": _subject_distributions(list(data.distributions)),
        "environment": env,
        "env_tag": "" if env.lower() in PRODUCTION_NAMES else f" [{env}]",
    }


def _cell(text: str, *, header: bool = False, align: str = "right", colour: str | None = None) -> str:
    tag = "th" if header else "td"
    style = f"padding:6px 8px;border-bottom:1px solid #d9dee5;text-align:{align};"
    if header:
        style += "background:#1f3b5a;color:#ffffff;font-weight:bold;white-space:nowrap;"
    if colour:
        style += f"color:{colour};font-weight:bold;white-space:nowrap;"
    return f'<{tag} style="{style}">{html.escape(text)}</{tag}>'


def insights_html(table: InsightsTable) -> str:
    """A plain table, width 100% (never wider than the screen: readable at 375 px)."""
    colours = {"up": UP_COLOUR, "down": DOWN_COLOUR}
    head = "".join(_cell(h, header=True, align="left" if i == 0 else "right")
                   for i, h in enumerate(table.headers))
    rows = []
    for row in table.rows:
        rows.append(
            "<tr>" + _cell(row.measure, align="left") + _cell(row.previous) + _cell(row.current)
            + _cell(row.trend, colour=colours.get(row.direction, FLAT_COLOUR)) + "</tr>"
        )
    return (
        '<table role="table" cellpadding="0" cellspacing="0" style="width:100%;max-width:100%;'
        'border-collapse:collapse;font-size:13px;line-height:1.4;font-variant-numeric:tabular-nums;">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def crosscheck_text(data: ReportData) -> str:
    """The CloudWatch cross-check as plain lines after the body (empty when not configured)."""
    if data.crosscheck is None:
        return ""
    lines = [data.crosscheck.summary_line(), *data.crosscheck.alerts[:5]]
    return "\n".join(lines)


def _html_body(body: str, table: InsightsTable, note: str = "") -> str:
    extra = (f'<p style="margin:1em 0 0 0;font-size:12px;color:#555555;">'
             f'{html.escape(note).replace(chr(10), "<br>")}</p>') if note else ""
    paragraphs = "".join(
        f'<p style="margin:0 0 1em 0;">{html.escape(part).replace(chr(10), "<br>")}</p>'
        for part in body.split("\n\n") if part.strip()
    )
    return (
        '<!DOCTYPE html><html lang="ja"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
        '<body style="margin:0;padding:12px;color:#222222;font-family:\'Hiragino Sans\',\'Meiryo\','
        'sans-serif;font-size:14px;line-height:1.6;">'
        f'<div style="max-width:640px;margin:0 auto;">{paragraphs}{insights_html(table)}{extra}</div>'
        "</body></html>"
    )


def build_message(
    data: ReportData, csv_bytes: bytes, pdf_bytes: bytes, config: EmailConfig,
    now: dt.datetime | None = None,
) -> EmailMessage:
    """multipart/mixed: (text/plain + text/html alternative), cdn_statistics.csv, cdn_report.pdf."""
    values = template_values(data, config)
    body = Template(config.body_template).substitute(values)
    if data.ops is not None:  # the morning figures, late files and one line per alert come first
        body = "\n".join(data.ops.lead_lines(peak_strings(find_peak(data.minute))[0])) + "\n\n" + body
    latest, _ = insights_tables(data.hourly, data.date)
    message = EmailMessage()
    message["Subject"] = Template(config.subject_template).substitute(values)
    message["From"] = config.sender
    if config.to:
        message["To"] = ", ".join(config.to)
    if config.cc:
        message["Cc"] = ", ".join(config.cc)
    if config.bcc:
        message["Bcc"] = ", ".join(config.bcc)  # stripped on the wire, see module docstring
    message["Date"] = format_datetime(now or dt.datetime.now(dt.UTC))
    # Short id string: a Message-ID longer than one header line gets folded, which some MTAs mangle.
    message["Message-ID"] = make_msgid(idstring="cdnlake", domain=config.sender.rpartition("@")[2] or None)
    message[REPORT_DATE_HEADER] = data.date.isoformat()
    message["X-Cdnlake-Environment"] = values["environment"] or "production"
    note = crosscheck_text(data)
    message.set_content(body + "\n" + (f"\n{note}\n" if note else ""), charset="utf-8")
    message.add_alternative(_html_body(body, latest, note), subtype="html", charset="utf-8")
    message.add_attachment(csv_bytes, maintype="text", subtype="csv", filename=CSV_NAME)
    message.add_attachment(pdf_bytes, maintype="application", subtype="pdf", filename=PDF_NAME)
    return message
