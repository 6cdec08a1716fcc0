"""The daily e-mail: MIME structure, Japanese body with the peak, HTML insights, attachments."""

import datetime as dt
import email
from email import policy
from html.parser import HTMLParser

import pytest

from reporting.delivery import wire_bytes
from reporting.email import DEFAULT_BODY_TEMPLATE, EmailConfig, build_message
from reporting.sample import report_data_from_totals

D = dt.date(2024, 6, 9)
GIB = 2**30
TOTALS = {
    "2024-06-08": {
        "request_count": 258_920_000,
        "hit_count": 100_000_000,
        "error_count": 90_260,
        "http4xx_count": 1807,
        "bytes_requested": round(209360.64 * GIB),
    },
    "2024-06-09": {
        "request_count": 304_250_000,
        "hit_count": 96_960_000,
        "error_count": 113_340,
        "http4xx_count": 1862,
        "bytes_requested": round(251622.38 * GIB),
    },
}
CSV = b"DATE,TIME\n2024-06-09,0\n"
PDF = b"%PDF-1.4 not really a pdf \x00\xff"
CONFIG = EmailConfig(
    sender="cdn-report@example.com",
    to=["ops@example.com", "noc@example.com"],
    cc=["lead@example.com"],
    bcc=["audit@example.com"],
)


@pytest.fixture(scope="module")
def data():
    return report_data_from_totals(D, TOTALS, minute_bytes={817: int(298.96 * GIB)})


@pytest.fixture(scope="module")
def parsed(data):
    message = build_message(data, CSV, PDF, CONFIG, now=dt.datetime(2024, 6, 10, 0, 30, tzinfo=dt.UTC))
    return email.message_from_bytes(wire_bytes(message), policy=policy.default)


class _TableParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows: list[list[tuple[str, str]]] = []
        self._style: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._style = dict(attrs).get("style", "")
            self.rows[-1].append(("", self._style))

    def handle_data(self, text):
        if self._style is not None and self.rows and self.rows[-1]:
            cell, style = self.rows[-1][-1]
            self.rows[-1][-1] = (cell + text, style)

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._style = None


def test_mime_structure(parsed):
    assert parsed.get_content_type() == "multipart/mixed"
    parts = [p.get_content_type() for p in parsed.walk()]
    assert parts == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "text/csv",
        "application/pdf",
    ]


def test_headers_and_subject(parsed):
    assert parsed["Subject"] == (
        "[cdnlake] CDN daily report 2024-06-09 (e1abcd2efgh3ij, e2klmn4opqr5st, e3uvwx6yzab7cd)"
    )
    assert parsed["From"] == "cdn-report@example.com"
    assert parsed["To"] == "ops@example.com, noc@example.com"
    assert parsed["Cc"] == "lead@example.com"
    assert parsed["Bcc"] is None  # never on the wire
    assert parsed["X-Cdnlake-Report-Date"] == "2024-06-09"
    assert parsed["Date"] == "Mon, 10 Jun 2024 00:30:00 +0000"


def test_plain_body_is_japanese_with_the_peak(parsed):
    plain = parsed.get_body(preferencelist=("plain",))
    assert plain.get_content_charset() == "utf-8"
    text = plain.get_content()
    assert text.startswith("お世話になっております。\n\n早速ですが、日次の通信データ容量を添付いたしました。")
    assert "資料により最大ピークは 298.96GB (39.86Gbps) at 13:37 です、ご確認お願いします。" in text
    assert text.rstrip().endswith("以上、よろしくお願いします。")


def test_html_has_the_body_and_the_insights_table(parsed):
    html_part = parsed.get_body(preferencelist=("html",))
    assert html_part.get_content_charset() == "utf-8"
    source = html_part.get_content()
    assert 'name="viewport"' in source and "max-width:100%" in source
    assert "298.96GB (39.86Gbps) at 13:37" in source and "お世話になっております。" in source
    parser = _TableParser()
    parser.feed(source)
    table = [[cell for cell, _ in row] for row in parser.rows]
    assert table[0] == ["MEASURES", "JUN-08", "JUN-09", "TREND"]
    by_measure = {row[0]: row[1:] for row in table[1:]}
    assert by_measure["Request Count (M)"] == ["258.92", "304.25", "+17.51%"]
    assert by_measure["Hit Count (M)"] == ["100.00", "96.96", "-3.04%"]
    assert by_measure["Error Count (K)"] == ["90.26", "113.34", "+25.57%"]
    assert by_measure["HTTP 4XX Count"] == ["1807.00", "1862.00", "+3.04%"]
    assert by_measure["HTTP 5XX Count"] == ["0.00", "0.00", "n/a"]
    assert by_measure["Bytes Requested (GB)"] == ["209360.64", "251622.38", "+20.19%"]
    styles = {row[0][0]: row[3][1] for row in parser.rows[1:]}
    assert "color:#c62828" in styles["Request Count (M)"]  # up: red
    assert "color:#2e7d32" in styles["Hit Count (M)"]  # down: green


def test_attachments(parsed):
    attachments = {part.get_filename(): part for part in parsed.iter_attachments()}
    assert set(attachments) == {"cdn_statistics.csv", "cdn_report.pdf"}
    assert attachments["cdn_statistics.csv"].get_content_type() == "text/csv"
    assert attachments["cdn_statistics.csv"].get_payload(decode=True) == CSV
    assert attachments["cdn_report.pdf"].get_payload(decode=True) == PDF
    assert attachments["cdn_report.pdf"].get_content_disposition() == "attachment"


def test_in_memory_message_keeps_bcc_for_the_envelope(data):
    message = build_message(data, CSV, PDF, CONFIG)
    assert message["Bcc"] == "audit@example.com"
    assert b"audit@example.com" not in wire_bytes(message)
    assert message["Bcc"] == "audit@example.com"  # wire_bytes does not mutate the message


def test_templates_environment_and_many_distributions(data):
    config = EmailConfig(
        sender="r@example.com",
        to=["a@example.com"],
        environment="staging",
        subject_template="$env_tag$date $distributions",
        body_template="peak=$peak env=$environment",
    )
    many = report_data_from_totals(
        D, TOTALS, minute_bytes={0: GIB}, distributions=["d1", "d2", "d3", "d4", "d5"]
    )
    message = build_message(many, CSV, PDF, config)
    assert message["Subject"] == " [staging]2024-06-09 d1, d2, d3, +2 more"
    assert message.get_body(preferencelist=("plain",)).get_content() == (
        "peak=1.00GB (0.13Gbps) at 00:00 env=staging\n"
    )


def test_template_typos_and_missing_recipients_fail_early():
    with pytest.raises(ValueError, match="paek"):
        EmailConfig(sender="r@example.com", to=["a@example.com"], body_template="$paek")
    with pytest.raises(ValueError, match="recipient"):
        EmailConfig(sender="r@example.com", to=[])
    assert "$peak" in DEFAULT_BODY_TEMPLATE
