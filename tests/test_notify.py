"""Progress notifications: exact line formats, Slack over a real local HTTP server, SNS with moto."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdnlake.notify import (
    ConsoleNotifier,
    FanoutNotifier,
    NotificationError,
    ProgressEvent,
    SlackNotifier,
    SnsNotifier,
    StageProgress,
    format_duration,
    format_message,
    notifier_from_settings,
)
from cdnlake.settings import load_settings

AT = dt.datetime(2026, 11, 26, 0, 30, 56, tzinfo=dt.UTC)


def event(kind: Any, **fields: Any) -> ProgressEvent:
    return ProgressEvent(kind, "cdn-daily", "2024-05-01", at=AT, **fields)


class Recorder:
    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    def send(self, e: ProgressEvent) -> None:
        self.events.append(e)


# ---------------------------------------------------------------- formats
def test_begin_and_running_lines() -> None:
    assert format_message(event("begin")) == "[2026-11-26 00:30:56] BEGIN cdn-daily 2024-05-01 (distributions: all)"
    assert (
        format_message(event("begin", distributions=("e1abc", "e2def")))
        == "[2026-11-26 00:30:56] BEGIN cdn-daily 2024-05-01 (distributions: e1abc,e2def)"
    )
    assert format_message(event("running", stage="ingest", step=2, total=7)) == (
        "[2026-11-26 00:30:56] running: ingest (2/7)"
    )


def test_complete_line_has_duration_and_totals() -> None:
    totals = {"requests": 304_250_112, "gb": 251622.384, "peak": "298.96 GB (39.86Gbps) at 13:37"}
    line = format_message(event("complete", duration_s=616.4, totals=totals))
    assert line == (
        "[2026-11-26 00:30:56] COMPLETE cdn-daily 2024-05-01 in 10m 16s (requests: 304,250,112, "
        "bytes: 251,622.38 GB, peak: 298.96 GB (39.86Gbps) at 13:37)"
    )


def test_failure_line_names_stage_error_and_run_url() -> None:
    failed = event("failed", stage="reconcile", step=5, total=7, detail="ReconciliationError: 3 != 4",
                   run_url="https://prefect.example.com/runs/flow-run/abc")  # fmt: skip
    assert format_message(failed) == (
        "[2026-11-26 00:30:56] FAILED cdn-daily 2024-05-01 at reconcile (5/7): ReconciliationError: 3 != 4 "
        "(run: https://prefect.example.com/runs/flow-run/abc)"
    )
    bare = event("failed", detail="ConfigError: bad")
    assert format_message(bare) == "[2026-11-26 00:30:56] FAILED cdn-daily 2024-05-01: ConfigError: bad"


def test_times_are_shown_in_utc() -> None:
    taipei = AT.astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert format_message(event("warning", detail="x")).startswith("[2026-11-26 00:30:56] WARNING")
    assert format_message(ProgressEvent("warning", "f", "d", at=taipei, detail="x")).startswith("[2026-11-26 00:30:56]")
    naive = ProgressEvent("warning", "f", "d", at=AT.replace(tzinfo=None), detail="x")
    assert format_message(naive).startswith("[2026-11-26 00:30:56]")


@pytest.mark.parametrize(("seconds", "text"), [(4.4, "4s"), (61, "1m 01s"), (3725, "1h 02m 05s")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_stage_progress_reports_failure_with_position_and_url() -> None:
    recorder = Recorder()
    progress = StageProgress(recorder, "cdn-daily", dt.date(2024, 5, 1), ("check", "ingest"), None,
                             run_url=lambda: "https://ui/run/1")  # fmt: skip
    with progress.stage("check"):
        pass
    with pytest.raises(ValueError), progress.stage("ingest"):
        raise ValueError("boom")
    kinds = [(e.kind, e.stage, e.step, e.total) for e in recorder.events]
    assert kinds == [("running", "check", 1, 2), ("running", "ingest", 2, 2), ("failed", "ingest", 2, 2)]
    assert recorder.events[-1].detail == "ValueError: boom"
    assert recorder.events[-1].run_url == "https://ui/run/1"
    assert set(progress.durations) == {"check", "ingest"}


def test_console_notifier_prints_the_line(capsys: pytest.CaptureFixture[str]) -> None:
    ConsoleNotifier().send(event("running", stage="report", step=6, total=7))
    assert capsys.readouterr().err == "[2026-11-26 00:30:56] running: report (6/7)\n"


# ---------------------------------------------------------------- Slack
class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server: Any = self.server
        server.received.append((self.headers["Content-Type"], json.loads(body)))
        status = server.statuses.pop(0) if server.statuses else 200
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:  # keep the test output clean
        pass


@pytest.fixture
def slack_server() -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received, server.statuses = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: Any) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/XXXX"


def test_slack_posts_json_text(slack_server: Any) -> None:
    SlackNotifier(_url(slack_server)).send(event("running", stage="ingest", step=2, total=7))
    assert slack_server.received == [
        ("application/json; charset=utf-8", {"text": "[2026-11-26 00:30:56] running: ingest (2/7)"})
    ]


def test_slack_retries_server_errors_with_backoff(slack_server: Any) -> None:
    slack_server.statuses = [500, 503]
    sleeps: list[float] = []
    SlackNotifier(_url(slack_server), attempts=3, backoff_s=0.5, sleep=sleeps.append).send(event("begin"))
    assert len(slack_server.received) == 3
    assert sleeps == [0.5, 1.0]


def test_slack_does_not_retry_a_bad_request(slack_server: Any) -> None:
    slack_server.statuses = [400]
    with pytest.raises(NotificationError, match="HTTP 400"):
        SlackNotifier(_url(slack_server), sleep=lambda s: None).send(event("begin"))
    assert len(slack_server.received) == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_slack_down_is_logged_and_the_pipeline_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/services/T000/B000/SECRET"
    slack = SlackNotifier(url, attempts=3, sleep=lambda s: None)
    recorder = Recorder()
    fanout = FanoutNotifier([slack, recorder])
    with caplog.at_level(logging.WARNING, logger="cdnlake.notify"):
        fanout.send(event("begin"))  # must not raise
        fanout.send(event("running", stage="ingest", step=2, total=7))
    assert [e.kind for e in recorder.events] == ["begin", "running"]
    assert "notification via SlackNotifier failed" in caplog.text
    assert "after 3 attempt(s)" in caplog.text and "after 1 attempt(s)" in caplog.text  # no backoff per stage
    assert "SECRET" not in caplog.text and "SECRET" not in repr(slack)


@pytest.mark.parametrize("url", [
    "https://hooks.example.com/services/T000/B000/TOKEN with space",  # http.client.InvalidURL quotes the path
    "https://hooks.example.com/services/T000/B000/TOKEN\x7fctl",
    "hxxps://hooks.example.com/services/T000/B000/TOKENSCHEME",  # ValueError: unknown url type: '<url>'
])  # fmt: skip
def test_no_exception_text_carries_the_webhook_into_a_log(url: str, caplog: pytest.LogCaptureFixture) -> None:
    slack = SlackNotifier(url, attempts=2, sleep=lambda s: None)
    with pytest.raises(NotificationError) as failure:
        slack.send(event("begin"))
    chain, error = [], failure.value
    while error is not None:  # the error and everything chained to it (what a traceback would print)
        chain.append(f"{type(error).__name__}: {error}")
        error = error.__cause__ or error.__context__
    token = url.rsplit("/", 1)[1]
    assert len(chain) == 1 and token not in chain[0] and "/services/" not in chain[0]
    with caplog.at_level(logging.DEBUG):
        FanoutNotifier([slack]).send(event("begin"))
    assert token not in caplog.text and "T000/B000" not in caplog.text


# ---------------------------------------------------------------- SNS
@pytest.fixture
def sns_topic() -> Iterator[tuple[Any, str, Any, str]]:
    with mock_aws():
        sns = boto3.client("sns", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        topic = sns.create_topic(Name="cdnlake-alerts")["TopicArn"]
        queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        yield sns, topic, sqs, queue


def _published(sqs: Any, queue: str) -> list[str]:
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"])["Message"] for m in messages]


def test_sns_publishes_failures_only(sns_topic: tuple[Any, str, Any, str]) -> None:
    sns, topic, sqs, queue = sns_topic
    notifier = SnsNotifier(sns, topic)
    notifier.send(event("begin"))
    notifier.send(event("running", stage="ingest", step=2, total=7))
    notifier.send(event("complete", duration_s=5))
    notifier.send(event("failed", stage="ingest", step=2, total=7, detail="JobFailedError: executor lost"))
    assert _published(sqs, queue) == [
        "[2026-11-26 00:30:56] FAILED cdn-daily 2024-05-01 at ingest (2/7): JobFailedError: executor lost"
    ]


def test_notifier_from_settings_builds_the_configured_channels(sns_topic: tuple[Any, str, Any, str]) -> None:
    sns, topic, _, _ = sns_topic
    console_only = notifier_from_settings(load_settings(env={}))
    assert [type(n).__name__ for n in console_only.notifiers] == ["ConsoleNotifier"]
    settings = load_settings(env={}, slack_webhook_url="https://hooks.slack.com/services/X", sns_topic_arn=topic)
    channels = notifier_from_settings(settings, sns_client=sns).notifiers
    assert [type(n).__name__ for n in channels] == ["ConsoleNotifier", "SlackNotifier", "SnsNotifier"]
