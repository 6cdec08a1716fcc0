"""Late files: which earlier dates a daily run must re-ingest, from the source listing vs ingest_files.

CloudFront delivers a file up to 24 hours late, so the files of D-1 (and, rarely, D-2) can grow
after their own run. Each run compares, for every date of D-N..D-1 (N = CDNLAKE_LATE_DAYS), the
raw files listed in the source with the files `ingest_files` recorded (by file name: size and
modification time). A date with a new or changed file is re-ingested (its statistics are rebuilt
by the same run); a date whose files disappeared from the source is only reported: re-ingesting
it would silently drop rows that were reported before.

Pure functions over plain values (the listing and a pandas frame of ingest_files), so the
decision is tested without a warehouse or a source.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import pandas as pd

from spark_jobs.contract import REPORT_WINDOW_DAYS

# The listing's mtime and the one ingest recorded come from the same clock but through different
# APIs (os.stat vs Hadoop's FileStatus, S3 LastModified): they may differ in the sub-second part.
MTIME_TOLERANCE_S = 2.0
# Dates of the report window (D-2, D-1) that are ingested when the warehouse has nothing for them
# yet, whatever CDNLAKE_LATE_DAYS says: the first run on a fresh warehouse reports all 72 hours.
WINDOW_EARLIER_DAYS = REPORT_WINDOW_DAYS - 1


class Listed(Protocol):
    """What the source listing gives for a file (cdnlake.sources.SourceFile fits)."""

    uri: str
    size: int
    date: str
    modified: float | None


@dataclass(frozen=True)
class DateChanges:
    """How an earlier date's files in the source differ from what was ingested."""

    date: str
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    loaded_before: int = 0  # rows loaded by the previous ingest of the date (to tell what late files added)
    files_before: int = 0

    @property
    def has_late_files(self) -> bool:
        return bool(self.new or self.changed)


@dataclass(frozen=True)
class IngestPlan:
    """The dates a run ingests (oldest first, D last) and why the earlier ones are in it."""

    date: str
    dates: list[dt.date]
    late_days: int
    changes: dict[str, DateChanges] = field(default_factory=dict)  # earlier dates with any difference

    def refreshed(self) -> list[str]:
        """Earlier dates re-ingested because files arrived or changed after they were loaded."""
        return sorted(d for d, c in self.changes.items() if c.has_late_files and c.files_before)

    def as_dict(self) -> dict[str, Any]:
        return {"date": self.date, "dates": [d.isoformat() for d in self.dates], "late_days": self.late_days,
                "changes": {d: asdict(c) for d, c in sorted(self.changes.items())}}  # fmt: skip


def _name(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def _epoch_seconds(value: Any) -> float | None:
    """ingest_files.modified (naive UTC or tz-aware, as delta-rs returns it) as epoch seconds."""
    if value is None or pd.isna(value):
        return None
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    return float(stamp.timestamp())


def _differs(size: int, modified: float | None, row: pd.Series) -> bool:
    if int(row["size_bytes"]) != int(size):
        return True
    recorded = _epoch_seconds(row.get("modified"))
    return modified is not None and recorded is not None and abs(modified - recorded) > MTIME_TOLERANCE_S


def compare_date(date: str, listed: Iterable[Listed], ingested: pd.DataFrame) -> DateChanges:
    """New, changed and removed file names of one date; `ingested` is that date's ingest_files rows."""
    source = {_name(f.uri): f for f in listed}
    known = {str(row["file_name"]): row for _, row in ingested.iterrows()} if not ingested.empty else {}
    new = sorted(n for n in source if n not in known)
    changed = sorted(n for n, f in source.items() if n in known and _differs(f.size, f.modified, known[n]))
    removed = sorted(n for n in known if n not in source)
    loaded = int(ingested["loaded"].sum()) if not ingested.empty else 0
    return DateChanges(date, new, changed, removed, loaded_before=loaded, files_before=len(known))


def earlier_dates(date: dt.date, late_days: int) -> list[dt.date]:
    """The dates before D a run compares with the source, oldest first."""
    return [date - dt.timedelta(days=i) for i in range(max(late_days, WINDOW_EARLIER_DAYS), 0, -1)]


def plan_ingest(date: dt.date, late_days: int, listed: Iterable[Listed], ingested: pd.DataFrame) -> IngestPlan:
    """D always; an earlier date of D-`late_days`..D-1 with new or changed files; a date of the report
    window (D-2, D-1) that has files but nothing ingested yet.

    `listed`: the source's files of the earlier dates; `ingested`: their ingest_files rows.
    """
    if late_days < 0:
        raise ValueError(f"late_days must be 0 or more (got {late_days})")
    earlier = earlier_dates(date, late_days)
    by_date: dict[str, list[Listed]] = {}
    for f in listed:
        by_date.setdefault(f.date, []).append(f)
    changes: dict[str, DateChanges] = {}
    dates = []
    for day in earlier:
        key = day.isoformat()
        rows = ingested[ingested["dt"] == key] if not ingested.empty else ingested
        found = compare_date(key, by_date.get(key, []), rows)
        within_late = (date - day).days <= late_days
        first_load = not found.files_before and bool(found.new)
        if (within_late and found.has_late_files) or first_load:
            dates.append(day)
        if within_late and (found.has_late_files or found.removed) and found.files_before:
            changes[key] = found
    return IngestPlan(date.isoformat(), dates + [date], late_days, changes)


def lines_added(plan: IngestPlan, ingested: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Rows each refreshed date gained (loaded now - loaded before), from the ingest results by date."""
    return {d: int(ingested[d].get("loaded", 0)) - plan.changes[d].loaded_before
            for d in plan.refreshed() if d in ingested}  # fmt: skip


def describe(plan: IngestPlan, added: dict[str, int]) -> list[str]:
    """One line per earlier date that changed, for Slack, the report and the artifact."""
    lines = []
    for day, change in sorted(plan.changes.items()):
        if change.has_late_files:
            files = len(change.new) + len(change.changed)
            gained = f", +{added[day]:,} lines" if day in added else ""
            lines.append(f"{day} refreshed: {files} late or changed file(s){gained}")
        if change.removed:
            shown = ", ".join(change.removed[:3]) + (f" (+{len(change.removed) - 3} more)"
                                                      if len(change.removed) > 3 else "")  # fmt: skip
            lines.append(f"{day}: {len(change.removed)} file(s) ingested before are gone from the source: {shown}")
    return lines
