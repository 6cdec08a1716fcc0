"""What a person at a terminal sees of a run: a live status line, then a summary table.

In an interactive terminal the stage lines (`[..] running: ingest (2/7)`) scroll as before and a
live line under them shows the current stage, how much of its Spark work is done (tasks of the
running Spark stages; the ingest reads its files in those tasks, so this is the share of files
read) and the elapsed time. Elsewhere (Prefect worker, CI, a pipe) only the plain lines are
printed (cdnlake/notify.py decides). `summary_table` is printed at the end of a run either way.
"""

from __future__ import annotations

import atexit
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

# (tasks done, tasks) of the work in progress, or None when nothing countable is running.
TaskCounter = Callable[[], "tuple[int, int] | None"]
BAR_WIDTH = 20


def format_elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def progress_bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    filled = min(width, round(width * done / total)) if total else 0
    return "█" * filled + "░" * (width - filled)


def interactive(stream: TextIO) -> bool:
    """A terminal a person watches (not a pipe, a file, CI's log or a dumb terminal)."""
    console = Console(file=stream)
    return console.is_terminal and not console.is_dumb_terminal


class CurrentStderr:
    """A stream for logging handlers that writes to whatever sys.stderr is at the time: the live
    display replaces sys.stderr so that lines print above it instead of through it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class LiveStatus:
    """The live line under the scrolling progress lines; rich redraws it twice a second."""

    def __init__(self, console: Console, tasks: TaskCounter = lambda: None,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.console = console
        self._tasks = tasks
        self._clock = clock
        self._run_started = clock()
        self._stage: str | None = None
        self._stage_started = self._run_started
        self._live: Live | None = None

    def _counts(self) -> tuple[int, int] | None:
        try:
            counts = self._tasks()
        except Exception:  # the JVM may be stopping; the display must never fail the run
            return None
        return counts if counts and counts[1] > 0 else None

    def render(self) -> Text:
        if self._stage is None:
            return Text("")
        now = self._clock()
        parts = [self._stage]
        counts = self._counts()
        if counts:
            done, total = counts
            parts.append(f"{progress_bar(done, total)} {done}/{total} Spark tasks ({done / total:.0%})")
        stage, run = format_elapsed(now - self._stage_started), format_elapsed(now - self._run_started)
        parts.append(f"stage {stage}, run {run}")
        return Text("  ".join(parts), style="bold")

    def __rich__(self) -> Text:  # called by Live at every refresh
        return self.render()

    def stage(self, name: str, step: int | None = None, total: int | None = None) -> None:
        self._stage = f"{name} ({step}/{total})" if step and total else name
        self._stage_started = self._clock()
        if self._live is None:
            # transient: the live line goes away at the end; stdout/stderr writes print above it.
            self._live = Live(self, console=self.console, refresh_per_second=2, transient=True)
            self._live.start()
            atexit.register(self.stop)  # a run that dies outside a stage must not leave the cursor hidden

    def log(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        self._stage = None


def _outputs(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    report = summary.get("report") or {}
    rows = [(label, str(Path(report[key]).resolve())) for key, label in
            (("pdf", "report PDF"), ("csv", "CSV"), ("summary", "summary.json")) if report.get(key)]  # fmt: skip
    email = summary.get("email") or {}
    if email.get("path") or email.get("detail"):
        rows.append(("e-mail", str(email.get("path") or email.get("detail"))))
    return rows


def summary_table(summary: Mapping[str, Any], email_path: str | None = None) -> Table:
    """Stages with seconds, rows loaded and rejected, and where the outputs are."""
    table = Table(title=f"cdn-daily {summary.get('date', '')}", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for stage, seconds in (summary.get("durations") or {}).items():
        table.add_row(stage, f"{float(seconds):,.1f} s")
    if summary.get("duration_s") is not None:
        table.add_row("total", f"{float(summary['duration_s']):,.1f} s", end_section=True)
    ingest = (summary.get("ingest") or {}).get("totals") or {}
    if ingest:
        table.add_row("files", f"{int(ingest.get('files', 0)):,} ({int(ingest.get('damaged_files', 0)):,} damaged)")
        table.add_row("rows loaded", f"{int(ingest.get('loaded', 0)):,}")
        table.add_row("rows rejected", f"{int(ingest.get('rejected', 0)):,}", end_section=True)
    for label, where in _outputs(summary):
        table.add_row(label, email_path if label == "e-mail" and email_path else where)
    return table


def print_summary(summary: Mapping[str, Any], stream: TextIO | None = None, email_path: str | None = None) -> None:
    Console(file=stream or sys.stderr).print(summary_table(summary, email_path))
