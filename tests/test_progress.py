"""The console a person sees: live status line in a terminal, plain lines elsewhere, summary table."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from rich.console import Console

from cdnlake.notify import ConsoleNotifier, LiveConsoleNotifier, ProgressEvent, console_notifier
from cdnlake.progress import LiveStatus, interactive, progress_bar, summary_table


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_line_shows_stage_share_of_tasks_and_elapsed() -> None:
    clock, counts = Clock(), [(12, 48)]
    status = LiveStatus(Console(file=io.StringIO()), tasks=lambda: counts[0], clock=clock)
    clock.now += 65
    status._stage, status._stage_started = "ingest (2/7)", clock.now  # as stage() sets them, without Live
    clock.now += 7
    assert status.render().plain == ("ingest (2/7)  █████░░░░░░░░░░░░░░░ 12/48 Spark tasks (25%)  stage 0:07, run 1:12")
    counts[0] = None  # nothing countable running (e.g. the report stage): no bar
    assert status.render().plain == "ingest (2/7)  stage 0:07, run 1:12"


def test_status_line_survives_a_failing_counter() -> None:
    def broken() -> tuple[int, int]:
        raise ConnectionError("the JVM is stopping")

    status = LiveStatus(Console(file=io.StringIO()), tasks=broken, clock=Clock())
    status._stage = "compact (3/7)"
    assert status.render().plain == "compact (3/7)  stage 0:00, run 0:00"


def test_progress_bar() -> None:
    assert progress_bar(0, 10, width=10) == "░" * 10
    assert progress_bar(3, 10, width=10) == "███░░░░░░░"
    assert progress_bar(10, 10, width=10) == "█" * 10
    assert progress_bar(5, 0, width=4) == "░░░░"


def test_live_display_in_a_terminal_prints_the_lines_and_redraws_the_status() -> None:
    out = Terminal()
    status = LiveStatus(Console(file=out, force_terminal=True, width=120), tasks=lambda: (3, 4))
    notifier = LiveConsoleNotifier(status)
    notifier.send(ProgressEvent("begin", "cdn-daily", "2024-06-09"))
    notifier.send(ProgressEvent("running", "cdn-daily", "2024-06-09", stage="ingest", step=2, total=7))
    assert status._live is not None
    notifier.send(ProgressEvent("complete", "cdn-daily", "2024-06-09", duration_s=3.0))
    assert status._live is None
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    assert "BEGIN cdn-daily 2024-06-09 (distributions: all)" in text
    assert "running: ingest (2/7)" in text and "COMPLETE cdn-daily 2024-06-09 in 3s" in text
    assert "ingest (2/7)  ███████████████░░░░░ 3/4 Spark tasks (75%)" in text  # the live line, drawn then erased


def test_plain_lines_unless_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TERM", raising=False)
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    assert not interactive(io.StringIO())
    assert isinstance(console_notifier(io.StringIO()), ConsoleNotifier)
    assert isinstance(console_notifier(Terminal()), LiveConsoleNotifier)
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(console_notifier(Terminal()), ConsoleNotifier)


def render(table: Any) -> str:
    out = io.StringIO()
    Console(file=out, width=140).print(table)
    return out.getvalue()


def test_summary_table() -> None:
    summary = {
        "date": "2024-06-09", "durations": {"check": 0.42, "ingest": 61.25, "email": 0.1}, "duration_s": 75.5,
        "ingest": {"totals": {"files": 432, "damaged_files": 1, "lines_read": 171_171, "loaded": 171_000,
                              "rejected": 171}},
        "report": {"pdf": "/r/2024-06-09/cdn_report.pdf", "csv": "/r/2024-06-09/cdn_statistics.csv",
                   "summary": "/r/2024-06-09/summary.json"},
        "email": {"sent": True, "detail": "written to the outbox"},
    }  # fmt: skip
    rows = [re.split(r"\s*│\s*", line.strip("│ ")) for line in render(summary_table(summary)).splitlines()
            if line.startswith("│")]  # fmt: skip
    assert rows == [
        ["check", "0.4 s"], ["ingest", "61.2 s"], ["email", "0.1 s"], ["total", "75.5 s"],
        ["files", "432 (1 damaged)"], ["rows loaded", "171,000"], ["rows rejected", "171"],
        ["report PDF", "/r/2024-06-09/cdn_report.pdf"], ["CSV", "/r/2024-06-09/cdn_statistics.csv"],
        ["summary.json", "/r/2024-06-09/summary.json"], ["e-mail", "written to the outbox"],
    ]  # fmt: skip
    shown = render(summary_table(summary, email_path="/o/2024-06-09_1.eml"))
    assert "/o/2024-06-09_1.eml" in shown and "written to the outbox" not in shown


def test_spark_task_counts(spark: Any) -> None:
    """While a job runs, the counter sees its tasks; idle, it sees none."""
    import threading
    import time

    from spark_jobs.session import running_task_counts

    assert running_task_counts() is None

    def slow(rows: Any) -> Any:
        time.sleep(0.5)
        return rows

    job = threading.Thread(target=lambda: spark.sparkContext.parallelize(range(6), 6).mapPartitions(slow).count())
    job.start()
    seen = None
    deadline = time.monotonic() + 120
    while seen is None and time.monotonic() < deadline:
        seen = running_task_counts()
        time.sleep(0.05)
    job.join(timeout=300)
    assert seen is not None and seen[1] == 6 and 0 <= seen[0] < 6
    assert running_task_counts() is None
