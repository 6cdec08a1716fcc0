"""Per-date run locks: one run at a time loads, aggregates, reports and e-mails a given date.

The Prefect global concurrency limit (flows/daily.py) only serialises runs that talk to the same
Prefect server, and the in-process lock only threads of one process. Two `cdnlake run --date D`
started from two shells, or the daily deployment and a manual re-run on another server, would both
replace D's partitions and both send D's e-mail. The lock of a date lives with the warehouse, so
every writer of that warehouse sees it:

- local warehouse: `<warehouse>/_cdnlake_locks/<name>.lock`, held with `flock(2)`. The kernel drops
  the lock when the holder exits, even on SIGKILL, so a local lock is never stale. The file holds
  the owner (host, pid, run id, start time) while locked, for the message of the run that waits.
- S3 warehouse: the object `<warehouse>/_cdnlake_locks/<name>.lock` in the warehouse's store
  (cdnlake/storage.py), holding the owner as JSON: see StoreLock. Conditional writes only (create
  if absent, replace if unchanged), never a delete; a lock not refreshed for
  CDNLAKE_LOCK_STALE_SECONDS by the store's clock (a run that died) is taken over by the next run.
  A run that loses its lock stops before its next write or e-mail (LockLostError).

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
from typing import Protocol

from cdnlake.integrations import aws
from cdnlake.settings import Settings
from cdnlake.storage import Conflict, Store, is_s3

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

    def check(self) -> None: ...

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

    def check(self) -> None:
        """An flock is held until this process lets go or dies: it cannot be lost meanwhile."""

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # the file stays (deleting a flock file races with a waiter's open)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class LockLostError(RuntimeError):
    """This run no longer holds a date's lock (heartbeat failed past the stale time, or taken
    over): it must stop before it writes or e-mails anything."""


_RELEASED = "released"


def _is_released(data: bytes) -> bool:
    try:
        return bool(json.loads(data.decode()).get("state") == _RELEASED)
    except (ValueError, AttributeError, UnicodeDecodeError):
        return False  # unreadable: treated as held (and taken over once stale)


class StoreLock:
    """A lock object in the warehouse's store (S3): created if absent, kept fresh, never deleted.

    - Taking it: a conditional create (`If-None-Match: *`), or a conditional replace (`If-Match`
      the version read) of a released or stale lock: of two runs exactly one wins.
    - Staleness: the age of the object by the store's own clock (its `Date` minus the object's
      Last-Modified), so the holder's and the waiter's clocks need not agree; a store without a
      Date header falls back to the waiter's monotonic clock watching the version not change.
    - Heartbeat: the holder replaces the object (`If-Match` its version) every stale/4 seconds. A
      conflict (taken over) or no successful beat for the stale time marks the lock lost;
      `check()` then raises LockLostError, and the run stops before its next write or e-mail.
    - Release: a conditional replace with a "released" marker, never a DELETE: S3-compatible
      stores that ignore `If-Match` on DELETE would let a late release remove a lock that
      another run took over meanwhile.
    """

    def __init__(self, store: Store, key: str, stale_seconds: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.store, self.key = store, key
        self.location = store.uri(key)
        self.stale_seconds = stale_seconds
        self.stale_hint = f"a lock whose run died expires {stale_seconds:g} s after its last heartbeat"
        self.monotonic = monotonic
        self._owner: Owner | None = None
        self._version: str | None = None
        self._last_beat = 0.0
        self._lost: str | None = None
        self._seen: tuple[str, float] | None = None  # (version, first seen): the fallback clock
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._guard = threading.Lock()

    def _payload(self, owner: Owner, state: str = "held") -> bytes:
        record = asdict(owner) | {"state": state, "nonce": uuid.uuid4().hex}  # a new version per write
        return json.dumps(record, sort_keys=True).encode()

    def _is_stale(self, version: str) -> bool:
        age = self.store.age(self.key)
        if age is None:
            now = self.monotonic()
            if self._seen is None or self._seen[0] != version:
                self._seen = (version, now)
            age = now - self._seen[1]
        return age > self.stale_seconds

    def _take_over(self, owner: Owner) -> str | None:
        """The new version if the existing lock is released or stale and we replaced it first."""
        found = self.store.read_versioned(self.key)
        if found is None:
            return None  # gone (removed by hand): the next attempt creates it
        data, version = found
        released = _is_released(data)
        if not released and not self._is_stale(version):
            return None
        if not released:
            holder = Owner.parse(data)
            who = holder.describe() if holder else "an unreadable lock"
            log.warning("taking over the stale lock %s of %s: not refreshed for over %g s "
                        "(CDNLAKE_LOCK_STALE_SECONDS)", self.location, who, self.stale_seconds)  # fmt: skip
        try:
            return self.store.replace(self.key, self._payload(owner), version)
        except Conflict:
            return None

    def try_acquire(self, owner: Owner) -> bool:
        try:
            version: str | None = self.store.create(self.key, self._payload(owner))
        except Conflict:
            version = self._take_over(owner)
        if version is None:
            return False
        with self._guard:
            self._owner, self._version, self._lost = owner, version, None
            self._last_beat = self.monotonic()
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name=f"lock-heartbeat {self.key}", daemon=True)
        self._beat.start()
        return True

    def _heartbeat(self) -> None:
        interval = max(0.5, self.stale_seconds / 4)
        while not self._stop.wait(interval):
            with self._guard:
                if self._owner is None or self._version is None or self._lost:
                    return
                owner = replace(self._owner, heartbeat=_utc_now())
                try:
                    self._version = self.store.replace(self.key, self._payload(owner), self._version)
                    self._owner, self._last_beat = owner, self.monotonic()
                except Conflict:
                    self._lost = "another run took it over"
                except Exception as exc:  # the store unreachable: lost only once past the stale time
                    log.error("could not refresh the lock %s: %s: %s", self.location, type(exc).__name__, exc)
                if self._lost:
                    log.error("lost the lock %s: %s", self.location, self._lost)
                    return

    def check(self) -> None:
        """Raise LockLostError unless this run still holds the lock."""
        with self._guard:
            if not self._lost and self.monotonic() - self._last_beat > self.stale_seconds:
                self._lost = f"no successful heartbeat for over {self.stale_seconds:g} s"
            lost = self._lost
        if lost:
            raise LockLostError(f"lost the lock {self.location} ({lost}); stopping before writing or e-mailing. "
                                "Re-run the date once the other run has finished")  # fmt: skip

    def holder(self) -> Owner | None:
        data = self.store.read(self.key)
        if not data or _is_released(data):
            return None
        return Owner.parse(data)

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=30)
            self._beat = None
        with self._guard:
            owner, version, lost = self._owner, self._version, self._lost
            self._owner = self._version = None
        if owner is None or version is None or lost:
            return
        try:
            self.store.replace(self.key, self._payload(owner, _RELEASED), version)
        except Conflict:  # not ours any more: leave it to its new holder
            log.warning("the lock %s was taken over before this run released it", self.location)


def lock_for(settings: Settings, name: str, store: Store | None = None) -> FileLock | StoreLock:
    """The lock `name` (e.g. a date) of the settings' warehouse."""
    warehouse = settings.warehouse.rstrip("/")
    if is_s3(warehouse):
        store = store if store is not None else aws.store(settings, warehouse)  # the tables' S3
        return StoreLock(store, f"{LOCK_DIR}/{name}.lock", settings.lock_stale_seconds)
    return FileLock(Path(warehouse.removeprefix("file://")) / LOCK_DIR / f"{name}.lock")


def acquire(lock: FileLock | StoreLock, owner: Owner, what: str, deadline: float, wait_seconds: float,
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


class HeldLocks(list[str]):
    """The locations of the locks a run holds; `check()` before each write or e-mail."""

    def __init__(self) -> None:
        super().__init__()
        self.locks: list[FileLock | StoreLock] = []

    def check(self) -> None:
        for lock in self.locks:
            lock.check()


@contextlib.contextmanager
def date_locks(settings: Settings, dates: Iterable[dt.date], run_id: str | None = None,
               on_wait: Callable[[str], None] | None = None,
               store: Store | None = None) -> Iterator[HeldLocks]:  # fmt: skip
    """Hold the locks of `dates` (taken in date order, so two runs never wait for each other).

    Waits up to settings.lock_wait_seconds in all; yields the locks' locations (HeldLocks).
    """
    wait = settings.lock_wait_seconds
    deadline = time.monotonic() + wait
    owner = Owner.current(run_id)
    with contextlib.ExitStack() as stack:
        held = HeldLocks()
        for day in sorted(set(dates)):
            lock = lock_for(settings, day.isoformat(), store)
            acquire(lock, owner, f"date {day.isoformat()}", deadline, wait, on_wait)
            stack.callback(lock.release)
            held.append(lock.location)
            held.locks.append(lock)
        yield held


__all__ = ["FileLock", "HeldLocks", "LockBusyError", "LockLostError", "Owner", "StoreLock", "acquire", "date_locks",
           "lock_for"]  # fmt: skip
