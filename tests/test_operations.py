"""The operations side of a run around the rules: delivery of alerts, the morning line, the outputs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import io
import json
from email import policy
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from cdnlake.late_files import plan_ingest
from cdnlake.notify import ProgressEvent, format_message
from cdnlake.operations import announce, complete_note, late_files_summary, operations_markdown
from cdnlake.settings import ConfigError, load_settings
from reporting.alerts import Alert
from reporting.email import EmailConfig, build_message
from reporting.operations import LateFiles, Operations
from reporting.outputs import write_outputs
from reporting.pdf_ops import MAX_ALERT_LINES, ops_lines
from reporting.sample import report_data_from_totals
from reporting.usage import month_usage

D = dt.date(2024, 6, 9)
TB = 2**40
SPIKE = Alert("5xx_share", "e1", 7, 30.0, 5.0, severe=True)
DROP = Alert("hit_ratio_drop", "e2", None, 12.5, 10.0)


class Recorder:
    def __init__(self) -> None:
        self.details: list[str] = []

    def event(self, kind: Any, **fields: Any) -> None:
        self.details.append(f"{kind}: {fields['detail']}")


class FakeSns:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.messages: list[dict[str, str]] = []

    def publish(self, **kwargs: str) -> None:
        if self.fail:
            raise ConnectionError("SNS down")
        self.messages.append(kwargs)


def ops() -> Operations:
    usage = month_usage(D, {"2024-06-01": 8 * TB, "2024-06-09": TB})
    late = LateFiles(["2024-06-08"], {"2024-06-08": 1234}, {}, ["2024-06-08 refreshed: 1 late or changed file(s), "
                                                               "+1,234 lines"])  # fmt: skip
    return Operations([SPIKE, DROP], usage, late)


def test_every_alert_is_a_warning_line_and_the_severe_ones_go_by_sns() -> None:
    run, sns = Recorder(), FakeSns()
    settings = load_settings(env={}, sns_topic_arn="arn:aws:sns:us-east-1:123456789012:ops")
    sent = announce(run, [SPIKE.as_dict(), DROP.as_dict()], settings, D, sns)
    assert run.details == ["warning: traffic alert: SEVERE 5xx_share e1 07:00: 5xx share 30.0% of requests "
                           "(limit 5%)", "warning: traffic alert: hit_ratio_drop e2: hit ratio down 12.5 points "
                           "from the day before (limit 10)"]  # fmt: skip
    assert sent == 1 and len(sns.messages) == 1 and "5xx_share e1 07:00" in sns.messages[0]["Message"]


def test_sns_outage_or_no_topic_never_raises() -> None:
    topic = load_settings(env={}, sns_topic_arn="arn:aws:sns:us-east-1:123456789012:ops")
    assert announce(Recorder(), [SPIKE.as_dict()], topic, D, FakeSns(fail=True)) == 0
    none = FakeSns()
    assert announce(Recorder(), [SPIKE.as_dict()], load_settings(env={}), D, none) == 0 and none.messages == []


def test_complete_line_carries_the_morning_figures_late_files_and_alert_count() -> None:
    figures = {"morning": ops().morning("1.00 GB (0.13Gbps) at 13:37"), "late_files": ops().late.as_dict(),
               "alerts": [SPIKE.as_dict()]}  # fmt: skip
    event = ProgressEvent("complete", "cdn-daily", D.isoformat(), at=dt.datetime(2024, 6, 10, 0, 30, tzinfo=dt.UTC),
                          duration_s=65, totals={"requests": 9}, detail=complete_note(figures))  # fmt: skip
    # 9 TB to date over 9 of 30 days: estimate 30 TB; D alone 1 TB = 1024 GB x 8 / 86400 = 0.09 Gbps average
    assert format_message(event) == (
        "[2024-06-10 00:30:00] COMPLETE cdn-daily 2024-06-09 in 1m 05s (requests: 9) — peak 1.00 GB (0.13Gbps) "
        "at 13:37, average 0.09 Gbps; June bandwidth usage — Yesterday 1.00 TB, To-Date 9.00 TB, Estimate "
        "30.00 TB; late files: refreshed 2024-06-08 (+1,234 lines); 1 traffic alert(s)")
    assert complete_note({}) == ""


def test_late_files_summary_from_a_plan_and_the_ingest_results() -> None:
    class Listed:
        def __init__(self, uri: str, size: int) -> None:
            self.uri, self.size, self.date, self.modified = uri, size, "2024-06-08", None

    import pandas as pd

    loaded = pd.DataFrame([{"dt": "2024-06-08", "file_name": "E1.2024-06-08-01.a.gz", "size_bytes": 5,
                            "loaded": 10, "modified": None}])  # fmt: skip
    plan = plan_ingest(D, 2, [Listed("E1.2024-06-08-01.a.gz", 5), Listed("E1.2024-06-08-02.b.gz", 7)], loaded)
    late = late_files_summary(plan, {"2024-06-08": {"loaded": 25}})
    assert late["refreshed"] == ["2024-06-08"] and late["lines_added"] == {"2024-06-08": 15}
    assert LateFiles.from_dict(late).short() == "late files: refreshed 2024-06-08 (+15 lines)"


def test_summary_json_pdf_box_and_email_first_lines(tmp_path: Path) -> None:
    data = report_data_from_totals(D, {D.isoformat(): {"request_count": 9, "bytes_requested": TB}},
                                   minute_bytes={817: 2**30})  # fmt: skip
    data = dataclasses.replace(data, ops=ops())
    paths = write_outputs(data, tmp_path)
    summary = json.loads(paths["summary"].read_text(encoding="utf-8"))
    assert summary["alerts"] == [
        {"kind": "5xx_share", "distribution": "e1", "hour": 7, "value": 30.0, "threshold": 5.0, "severe": True},
        {"kind": "hit_ratio_drop", "distribution": "e2", "hour": None, "value": 12.5, "threshold": 10.0,
         "severe": False}]  # fmt: skip
    assert summary["late_files"]["refreshed"] == ["2024-06-08"] and summary["usage"]["estimate_tb"] == 30.0
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(paths["pdf"].read_bytes())).pages[:1])
    text = " ".join(text.split())  # the box wraps its lines
    assert "ALERT SEVERE 5xx_share e1 07:00" in text and "Estimate 30.00 TB" in text and "+1,234 lines" in text
    config = EmailConfig(sender="a@example.com", to=["b@example.com"])
    message = build_message(data, b"csv", paths["pdf"].read_bytes(), config)
    parsed = email.message_from_bytes(message.as_bytes(), policy=policy.default)
    body = parsed.get_body(("plain",)).get_content().splitlines()  # type: ignore[union-attr]
    assert body[0].startswith("peak 1.00 GB (0.13Gbps) at 13:37, average 0.09 Gbps; June bandwidth usage")
    assert body[1].startswith("2024-06-08 refreshed") and body[2].startswith("ALERT SEVERE 5xx_share e1 07:00")
    assert body[3].startswith("ALERT hit_ratio_drop e2") and body[4] == ""


def test_pdf_box_caps_the_alert_lines_and_says_when_there_are_none() -> None:
    data = report_data_from_totals(D, {})
    many = Operations([SPIKE] * (MAX_ALERT_LINES + 3), None, LateFiles())
    lines = ops_lines(dataclasses.replace(data, ops=many))
    assert lines[-1] == "... and 3 more alert(s) in summary.json" and len(lines) == MAX_ALERT_LINES + 2
    assert ops_lines(dataclasses.replace(data, ops=Operations()))[-1] == "No traffic alerts."
    assert ops_lines(data) == []


def test_artifact_sections() -> None:
    lines = operations_markdown({"morning": "peak x", "alerts": [DROP.as_dict()], "late_files": ops().late.as_dict()})
    assert "## Late files" in lines and "- hit_ratio_drop e2: hit ratio down 12.5 points from the day before " \
        "(limit 10)" in lines  # fmt: skip
    assert operations_markdown({})[-1] == "none"


@pytest.mark.parametrize(("key", "value", "message"), [
    ("LATE_DAYS", "-1", "LATE_DAYS: 0..30"), ("LATE_DAYS", "31", "LATE_DAYS: 0..30"),
    ("ALERT_MIN_REQUESTS", "-5", "ALERT_MIN_REQUESTS: 0 or more"), ("ALERT_SILENT_DAYS", "8", "0..7"),
    ("ALERT_5XX_PCT", "0", "ALERT_5XX_PCT"), ("ALERT_HIT_RATIO_DROP_POINTS", "101", "DROP_POINTS"),
    ("ALERT_VOLUME_LOW", "1.5", "0 < low < 1 < high"), ("ALERT_VOLUME_HIGH", "0.9", "0 < low < 1 < high"),
    ("ALERT_COMMITTED_GBPS", "-1", "ALERT_COMMITTED_GBPS"), ("COMPLETION_DEADLINE", "25:00", "HH:MM"),
])  # fmt: skip
def test_operations_settings_are_validated(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env={f"CDNLAKE_{key}": value})
