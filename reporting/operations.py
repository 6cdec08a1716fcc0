"""What the operators need beyond the statistics: traffic alerts, late files, the month's usage.

Carried by ReportData.ops (None for a report built outside the daily flow) and shown in the
report's first-page box, the e-mail's first lines, summary.json and the Prefect artifact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reporting.alerts import Alert
from reporting.usage import MonthUsage, morning_line


@dataclass(frozen=True)
class LateFiles:
    """Earlier dates this run re-ingested because files arrived late, and files that disappeared."""

    refreshed: list[str] = field(default_factory=list)
    lines_added: dict[str, int] = field(default_factory=dict)
    removed: dict[str, list[str]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)  # ready-made text, one per date

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LateFiles:
        data = data or {}
        removed = {k: list(v) for k, v in (data.get("removed") or {}).items()}
        return cls(list(data.get("refreshed", [])), dict(data.get("lines_added", {})), removed,
                   list(data.get("lines", [])))  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return {"refreshed": self.refreshed, "lines_added": self.lines_added, "removed": self.removed,
                "lines": self.lines}  # fmt: skip

    def short(self) -> str:
        """For the COMPLETE line: `refreshed 2024-06-08 (+1,234 lines)`; empty when nothing changed."""
        parts = [f"{d} (+{self.lines_added[d]:,} lines)" if d in self.lines_added else d for d in self.refreshed]
        return f"late files: refreshed {', '.join(parts)}" if parts else ""


@dataclass(frozen=True)
class Operations:
    alerts: list[Alert] = field(default_factory=list)
    usage: MonthUsage | None = None
    late: LateFiles = field(default_factory=LateFiles)

    def morning(self, peak_text: str | None) -> str:
        return morning_line(peak_text, self.usage) if self.usage else (f"peak {peak_text}" if peak_text else "")

    def lead_lines(self, peak_text: str | None) -> list[str]:
        """The e-mail's first lines: the morning figures, late files, one line per alert."""
        lines = [self.morning(peak_text)] if (self.usage or peak_text) else []
        lines += self.late.lines
        lines += [f"ALERT {a.text()}" for a in self.alerts]
        return lines

    def summary(self) -> dict[str, Any]:
        """summary.json keys: alerts, late_files, usage."""
        return {"alerts": [a.as_dict() for a in self.alerts], "late_files": self.late.as_dict(),
                "usage": self.usage.as_dict() if self.usage else None}  # fmt: skip
