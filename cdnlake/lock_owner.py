"""Who holds a date lock (cdnlake/locks.py): written into the lock, so a waiting run can say who."""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import asdict, dataclass

from cdnlake.clock import utc_stamp


@dataclass(frozen=True)
class Owner:
    """Who holds a lock: written into the lock so that a waiting run can say who it waits for."""

    host: str
    pid: int
    run_id: str
    started: str  # UTC, ISO 8601
    heartbeat: str = ""  # UTC, ISO 8601; refreshed by the holder of an S3 lock

    @classmethod
    def current(cls, run_id: str | None = None) -> Owner:
        now = utc_stamp()
        return cls(socket.gethostname(), os.getpid(), run_id or uuid.uuid4().hex[:12], now, now)

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def parse(cls, data: bytes) -> Owner | None:
        try:
            raw = json.loads(data.decode())
            return cls(str(raw["host"]), int(raw["pid"]), str(raw["run_id"]), str(raw["started"]),
                       str(raw.get("heartbeat") or raw["started"]))  # fmt: skip
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None

    def describe(self) -> str:
        return f"run {self.run_id} on host {self.host} (pid {self.pid}) since {self.started}"
