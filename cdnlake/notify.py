"""Progress notifications: console, Slack incoming webhook, SMS (SNS) on failures.

One line per event, in the format the operations team knew from the original system::

    [2026-11-26 00:30:56] BEGIN cdn-daily 2024-05-01 (distributions: all)
    [2026-11-26 00:30:56] running: ingest (2/7)
    [2026-11-26 00:41:12] COMPLETE cdn-daily 2024-05-01 in 10m 16s (requests: 304,250,112, ...)
    [2026-11-26 00:35:02] FAILED cdn-daily 2024-05-01 at reconcile (5/7): ReconciliationError: ...

Timestamps are UTC: the original ran at 08:30 Taipei and its lines read 00:30.
A notifier must never break the pipeline: `FanoutNotifier` logs a failing channel and carries on.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TextIO

from cdnlake.clock import utc_now
from cdnlake.settings import Settings

log = logging.getLogger(__name__)

EventKind = Literal["begin", "running", "warning", "complete", "failed"]
_SMS_LIMIT = 1400  # SNS SMS messages are cut at 1,600 bytes; keep room for multi-byte text


@dataclass(frozen=True)
class ProgressEvent:
    """Something worth telling the operators; `format_message` renders it."""

    kind: EventKind
    flow: str
    date: str
    at: dt.datetime = field(default_factory=utc_now)
    stage: str | None = None
    step: int | None = None
    total: int | None = None
    distributions: tuple[str, ...] = ()
    detail: str | None = None  # warning text, or "Type: message" of a failure
    run_url: str | None = None
    duration_s: float | None = None
    totals: dict[str, Any] | None = None  # requests, gb, peak (text)


def format_duration(seconds: float) -> str:
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def _stamp(at: dt.datetime) -> str:
    aware = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC).strftime("[%Y-%m-%d %H:%M:%S]")


def _position(event: ProgressEvent) -> str:
    return f" ({event.step}/{event.total})" if event.step and event.total else ""


def _totals_text(totals: dict[str, Any]) -> str:
    parts = []
    if "requests" in totals:
        parts.append(f"requests: {int(totals['requests']):,}")
    if "gb" in totals:
        parts.append(f"bytes: {float(totals['gb']):,.2f} GB")
    if totals.get("peak"):
        parts.append(f"peak: {totals['peak']}")
    return f" ({', '.join(parts)})" if parts else ""


def format_message(event: ProgressEvent) -> str:
    """The one-line text of an event (identical on every channel)."""
    head = f"{_stamp(event.at)} "
    title = f"{event.flow} {event.date}"
    if event.kind == "begin":
        scope = ",".join(event.distributions) if event.distributions else "all"
        return f"{head}BEGIN {title} (distributions: {scope})"
    if event.kind == "running":
        return f"{head}running: {event.stage}{_position(event)}"
    if event.kind == "warning":
        return f"{head}WARNING {title}: {event.detail}"
    if event.kind == "complete":
        took = f" in {format_duration(event.duration_s)}" if event.duration_s is not None else ""
        note = f" — {event.detail}" if event.detail else ""  # morning figures, late files, alerts
        return f"{head}COMPLETE {title}{took}{_totals_text(event.totals or {})}{note}"
    where = f" at {event.stage}{_position(event)}" if event.stage else ""
    run = f" (run: {event.run_url})" if event.run_url else ""
    return f"{head}FAILED {title}{where}: {event.detail}{run}"


class Notifier(Protocol):
    def send(self, event: ProgressEvent) -> None: ...


class NotificationError(RuntimeError):
    """A channel could not deliver; the message never contains the webhook URL (it is a secret)."""


class ConsoleNotifier:
    """Prints each line; to stderr by default so `cdnlake run | jq` still gets clean JSON on stdout."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def send(self, event: ProgressEvent) -> None:
        print(format_message(event), file=self.stream or sys.stderr, flush=True)


class LiveConsoleNotifier:
    """In a terminal: the same lines, plus a live status line (cdnlake/progress.py) under them."""

    def __init__(self, status: Any) -> None:
        self.status = status

    def send(self, event: ProgressEvent) -> None:
        self.status.log(format_message(event))
        if event.kind == "running" and event.stage:
            self.status.stage(event.stage, event.step, event.total)
        elif event.kind in ("complete", "failed"):
            self.status.stop()


def _spark_task_counts() -> tuple[int, int] | None:
    if "pyspark" not in sys.modules:  # the Kubernetes runner has no Spark in this process
        return None
    from spark_jobs.session import running_task_counts

    return running_task_counts()


def console_notifier(stream: TextIO | None = None) -> Notifier:
    """A live display for a person at a terminal; plain timestamped lines anywhere else."""
    from cdnlake.progress import LiveStatus, interactive

    stream = stream or sys.stderr
    if not interactive(stream):
        return ConsoleNotifier(stream if stream is not sys.stderr else None)
    from rich.console import Console

    return LiveConsoleNotifier(LiveStatus(Console(file=stream), tasks=_spark_task_counts))


class SlackNotifier:
    """Slack incoming webhook: POST `{"text": ...}`; retried with backoff on network and 5xx/429 errors."""

    def __init__(self, webhook_url: str, timeout_s: float = 10.0, attempts: int = 3, backoff_s: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:  # fmt: skip
        self._url = webhook_url
        self.timeout_s = timeout_s
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._healthy = True

    def __repr__(self) -> str:  # never show the webhook (it grants posting rights)
        return "SlackNotifier(webhook_url=***)"

    def _scrub(self, text: str) -> str:
        """`text` without the webhook URL or any piece of its path (the token is in the path)."""
        parts = urllib.parse.urlsplit(self._url)
        for secret in sorted({self._url, parts.path, *parts.path.split("/"), parts.query}, key=len, reverse=True):
            if len(secret) >= 6:
                text = text.replace(secret, "***")
        return text

    def _post(self, payload: bytes) -> None:
        request = urllib.request.Request(
            self._url, data=payload, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # https enforced by settings
            response.read()

    def send(self, event: ProgressEvent) -> None:
        payload = json.dumps({"text": format_message(event)}, ensure_ascii=False).encode("utf-8")
        problem = ""
        # After a failed event, later events get one attempt until one succeeds: a Slack outage
        # must not add the whole backoff to every stage of the run.
        attempts = self.attempts if self._healthy else 1
        for attempt in range(1, attempts + 1):
            try:
                self._post(payload)
                self._healthy = True
                return
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code}"
                if exc.code < 500 and exc.code != 429:  # a bad request does not get better by repeating it
                    break
            except urllib.error.URLError as exc:
                # str(URLError) is "<urlopen error reason>": the network's reason, scrubbed all the same.
                problem = self._scrub(f"{type(exc).__name__}: {exc.reason}")
            except Exception as exc:  # noqa: BLE001 - any other failure (http.client.InvalidURL, ValueError ...)
                # Their messages may quote the URL, escaped in ways no scrubbing can foresee
                # (InvalidURL: "URL can't contain control characters. '/services/…\\x7f'"): only the kind leaves.
                problem = f"{type(exc).__name__} (message withheld: it may quote the webhook URL)"
            if attempt < attempts:
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
        self._healthy = False
        raise NotificationError(f"Slack webhook failed after {attempt} attempt(s): {problem}")


class SnsNotifier:
    """SMS (or any subscription) through an SNS topic; only failures are worth waking someone up."""

    def __init__(self, client: Any, topic_arn: str) -> None:
        self.client = client
        self.topic_arn = topic_arn

    def send(self, event: ProgressEvent) -> None:
        if event.kind != "failed":
            return
        text = format_message(event)[:_SMS_LIMIT]
        self.client.publish(TopicArn=self.topic_arn, Message=text, Subject=f"cdnlake {event.flow} failed"[:100])


class FanoutNotifier:
    """Sends to every channel; a failing channel is logged and skipped, never raised to the pipeline."""

    def __init__(self, notifiers: Sequence[Notifier]) -> None:
        self.notifiers = list(notifiers)

    def send(self, event: ProgressEvent) -> None:
        for notifier in self.notifiers:
            try:
                notifier.send(event)
            except Exception as exc:  # best effort by design
                log.warning("notification via %s failed (pipeline continues): %s: %s",
                            type(notifier).__name__, type(exc).__name__, exc)  # fmt: skip


class StageProgress:
    """The progress lines of one run: BEGIN, `running: <stage> (i/n)`, FAILED at a stage, COMPLETE.

    Also times each stage (the run summary and artifacts show the durations).
    """

    def __init__(self, notifier: Notifier, flow: str, date: dt.date, stages: Sequence[str],
                 distributions: Sequence[str] | None = None,
                 run_url: Callable[[], str | None] = lambda: None) -> None:  # fmt: skip
        self.notifier = notifier
        self.flow = flow
        self.date = date.isoformat()
        self.stages = tuple(stages)
        self.distributions = tuple(distributions or ())
        self.run_url = run_url
        self.durations: dict[str, float] = {}
        self.started = time.monotonic()

    def event(self, kind: EventKind, **fields: Any) -> None:
        self.notifier.send(ProgressEvent(kind, self.flow, self.date, distributions=self.distributions, **fields))

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        position = {"step": self.stages.index(name) + 1, "total": len(self.stages)}
        self.event("running", stage=name, **position)
        started = time.monotonic()
        try:
            yield
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"[:500]
            self.event("failed", stage=name, detail=detail, run_url=self.run_url(), **position)
            raise
        finally:
            self.durations[name] = round(time.monotonic() - started, 2)

    @property
    def elapsed(self) -> float:
        return round(time.monotonic() - self.started, 2)


def notifier_from_settings(settings: Settings, sns_client: Any = None) -> FanoutNotifier:
    """Console always; Slack when a webhook is configured; SNS when a topic is configured."""
    channels: list[Notifier] = [console_notifier()]
    if settings.slack_webhook_url:
        channels.append(SlackNotifier(settings.slack_webhook_url))
    if settings.sns_topic_arn:
        if sns_client is None:
            import boto3

            sns_client = boto3.client("sns", region_name=settings.aws_region)
        channels.append(SnsNotifier(sns_client, settings.sns_topic_arn))
    return FanoutNotifier(channels)


__all__ = [
    "ConsoleNotifier", "FanoutNotifier", "LiveConsoleNotifier", "NotificationError", "Notifier", "ProgressEvent",
    "SlackNotifier", "console_notifier",
    "SnsNotifier", "StageProgress", "format_duration", "format_message", "notifier_from_settings",
]  # fmt: skip
