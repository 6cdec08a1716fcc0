"""Per-date run locks: one run at a time loads, aggregates, reports and e-mails a given date.

The Prefect global concurrency limit (flows/daily.py) only serialises runs that talk to the same
Prefect server, and the in-process lock only threads of one process. Two `cdnlake run --date D`
started from two shells, or the daily deployment and a manual re-run on another server, would both
replace D's partitions and both send D's e-mail. The lock of a date lives with the warehouse, so
every writer of that warehouse sees it:

- local warehouse: `<warehouse>/_cdnlake_locks/<name>.lock`, held with `flock(2)`. The kernel drops
  the lock when the holder exits, even on SIGKILL, so a local lock is never stale. The file holds
  the owner (host, pid, run id, start time) while locked, for the message of the run that waits.
- S3 warehouse: the object `<warehouse>/_cdnlake_locks/<name>.lock`, created with a conditional put
  (`If-None-Match: *`: only one writer can create it) and holding the owner as JSON; deleted on
  release. The holder rewrites it (`If-Match` its ETag) every `stale/4` seconds; a lock whose
  heartbeat is older than CDNLAKE_LOCK_STALE_SECONDS (a run that died) is deleted by the next run
  (`If-Match` the ETag it judged stale, so two waiters cannot both break it) and taken over.

How long a second run waits is CDNLAKE_LOCK_WAIT_SECONDS; then it fails with LockBusyError naming
the date, the holder and the lock's location.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from cdnlake.integrations import aws
from cdnlake.settings import Settings

log = logging.getLogger(__name__)
LOCK_DIR = "_cdnlake_locks"
_MAX_POLL_S = 2.0


class LockBusyError(RuntimeError):
    """Another run holds the lock; the message names the date, the holder and the lock's location."""


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(stamp: str) -> float:
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


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
        now = _utc_now()
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


class Lock(Protocol):
    location: str

    def try_acquire(self, owner: Owner) -> bool: ...

    def holder(self) -> Owner | None: ...

    def release(self) -> None: ...


class FileLock:
    """An exclusive `flock` on a file under a local warehouse (released by the kernel if we die)."""

    stale_hint = "a lock whose run died is released at once"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        self._fd: int | None = None

    def try_acquire(self, owner: Owner) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, owner.to_bytes(), 0)
        os.fsync(fd)
        self._fd = fd
        return True

    def holder(self) -> Owner | None:
        try:
            return Owner.parse(self.path.read_bytes())
        except OSError:
            return None

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # the file stays (deleting a flock file races with a waiter's open)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


_CONFLICT = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")
_GONE = ("NoSuchKey", "404", "NotFound")


class S3Lock:
    """An S3 object created with If-None-Match: * (one creator wins), heartbeat, stale expiry."""

    def __init__(self, client: Any, bucket: str, key: str, stale_seconds: float,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.client = client
        self.bucket = bucket
        self.key = key
        self.location = f"s3://{bucket}/{key}"
        self.stale_seconds = stale_seconds
        self.stale_hint = f"a lock whose run died expires {stale_seconds:g} s after its last heartbeat"
        self.clock = clock
        self._owner: Owner | None = None
        self._etag: str | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._guard = threading.Lock()

    def _put(self, owner: Owner, **condition: str) -> str:
        response = self.client.put_object(Bucket=self.bucket, Key=self.key, Body=owner.to_bytes(),
                                          ContentType="application/json", **condition)  # fmt: skip
        return str(response["ETag"])

    def _read(self) -> tuple[Owner | None, str | None, float | None]:
        """(owner, ETag, last modified epoch) of the lock object, or Nones when there is none."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except Exception as exc:
            if _error_code(exc) in _GONE:
                return None, None, None
            raise
        modified = response.get("LastModified")
        return (Owner.parse(response["Body"].read()), str(response["ETag"]),
                modified.timestamp() if modified else None)  # fmt: skip

    def _break_if_stale(self) -> bool:
        owner, etag, modified = self._read()
        if etag is None:
            return True  # released meanwhile: try again at once
        beat = _epoch(owner.heartbeat) if owner else modified
        age = self.clock() - beat if beat is not None else 0.0
        if age <= self.stale_seconds:
            return False
        who = owner.describe() if owner else "an unreadable lock"
        log.warning("breaking the stale lock %s of %s: no heartbeat for %.0f s (CDNLAKE_LOCK_STALE_SECONDS=%g)",
                    self.location, who, age, self.stale_seconds)  # fmt: skip
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=etag)
        except Exception as exc:
            if _error_code(exc) not in _CONFLICT + _GONE:
                raise
        return True

    def try_acquire(self, owner: Owner) -> bool:
        for _ in range(2):  # a second attempt right after breaking a stale lock
            try:
                self._etag = self._put(owner, IfNoneMatch="*")
            except Exception as exc:
                if _error_code(exc) not in _CONFLICT:
                    raise
                if not self._break_if_stale():
                    return False
                continue
            self._owner = owner
            self._stop.clear()
            self._beat = threading.Thread(target=self._heartbeat, name=f"lock-heartbeat {self.key}", daemon=True)
            self._beat.start()
            return True
        return False

    def _heartbeat(self) -> None:
        interval = max(1.0, self.stale_seconds / 4)
        while not self._stop.wait(interval):
            with self._guard:
                if self._owner is None or self._etag is None:
                    return
                owner = replace(self._owner, heartbeat=_utc_now())
                try:
                    self._etag = self._put(owner, IfMatch=self._etag)
                    self._owner = owner
                except Exception as exc:
                    # Taken over as stale (a pause longer than the expiry) or S3 unreachable.
                    log.error("lost or could not refresh the lock %s: %s: %s", self.location, type(exc).__name__, exc)
                    if _error_code(exc) in _CONFLICT + _GONE:
                        return

    def holder(self) -> Owner | None:
        return self._read()[0]

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=30)
            self._beat = None
        with self._guard:
            etag, self._etag, self._owner = self._etag, None, None
        if etag is None:
            return
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=etag)
        except Exception as exc:
            if _error_code(exc) not in _CONFLICT + _GONE:  # not ours any more: nothing to delete
                raise


def lock_for(settings: Settings, name: str, s3_client: Any = None) -> FileLock | S3Lock:
    """The lock `name` (e.g. a date) of the settings' warehouse."""
    warehouse = settings.warehouse.rstrip("/")
    if warehouse.startswith(("s3://", "s3a://")):
        bucket, _, prefix = warehouse.split("://", 1)[1].partition("/")
        key = "/".join(p for p in (prefix.strip("/"), LOCK_DIR, f"{name}.lock") if p)
        client = s3_client if s3_client is not None else aws.s3_client(settings)  # the tables' S3
        return S3Lock(client, bucket, key, settings.lock_stale_seconds)
    return FileLock(Path(warehouse.removeprefix("file://")) / LOCK_DIR / f"{name}.lock")


def acquire(lock: FileLock | S3Lock, owner: Owner, what: str, deadline: float, wait_seconds: float,
            on_wait: Callable[[str], None] | None = None) -> None:  # fmt: skip
    """Take `lock` or raise LockBusyError once `deadline` (time.monotonic) has passed."""
    announced = False
    poll = 0.2
    while not lock.try_acquire(owner):
        holder = lock.holder()
        who = holder.describe() if holder else "another run"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LockBusyError(
                f"{what} is locked by {who}; lock {lock.location}; gave up after {wait_seconds:g} s "
                f"(CDNLAKE_LOCK_WAIT_SECONDS={wait_seconds:g}). Re-run when that run has finished ({lock.stale_hint})"
            )
        if not announced:
            announced = True
            message = f"{what} is locked by {who} ({lock.location}); waiting up to {remaining:.0f} s"
            log.warning(message)
            if on_wait is not None:
                on_wait(message)
        time.sleep(min(poll, remaining))
        poll = min(poll * 2, _MAX_POLL_S)


@contextlib.contextmanager
def date_locks(settings: Settings, dates: Iterable[dt.date], run_id: str | None = None,
               on_wait: Callable[[str], None] | None = None, s3_client: Any = None) -> Iterator[list[str]]:  # fmt: skip
    """Hold the locks of `dates` (taken in date order, so two runs never wait for each other).

    Waits up to settings.lock_wait_seconds in all; yields the locks' locations.
    """
    wait = settings.lock_wait_seconds
    deadline = time.monotonic() + wait
    owner = Owner.current(run_id)
    with contextlib.ExitStack() as held:
        locations = []
        for day in sorted(set(dates)):
            lock = lock_for(settings, day.isoformat(), s3_client)
            acquire(lock, owner, f"date {day.isoformat()}", deadline, wait, on_wait)
            held.callback(lock.release)
            locations.append(lock.location)
        yield locations


__all__ = ["FileLock", "LockBusyError", "Owner", "S3Lock", "acquire", "date_locks", "lock_for"]
