"""A small JSON ledger of sent e-mails, so each date's report is e-mailed once."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

LEDGER_VERSION = 1


class SentLedger:
    """``{"version": 1, "sent": {"2024-06-09": [entry, ...]}}``; entries are appended, never edited.

    Each entry records ``message_id``, ``recipients``, ``sent_at``, ``sender_kind`` (outbox/ses),
    ``forced`` and ``subject``. Writes are atomic (temp file + rename) so a crash never leaves a
    truncated ledger that would make every date look unsent.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"version": LEDGER_VERSION, "sent": {}}
        data = json.loads(self.path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("sent"), dict):
            raise ValueError(f"{self.path} is not a cdnlake sent ledger")
        return data

    def entries(self, date: str) -> list[dict[str, Any]]:
        return list(self._load()["sent"].get(date, []))

    def was_sent(self, date: str) -> bool:
        return bool(self.entries(date))

    def record(self, date: str, entry: dict[str, Any]) -> None:
        data = self._load()
        data["sent"].setdefault(date, []).append(entry)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o644)  # mkstemp creates 0600; keep the ledger readable like other outputs
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2, ensure_ascii=False, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
