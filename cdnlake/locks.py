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
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol

from cdnlake.integrations import aws
from cdnlake.lock_owner import Owner
from cdnlake.settings import Settings
from cdnlake.storage import Store, is_s3
from cdnlake.store_lock import LockLostError, StoreLock

log = logging.getLogger(__name__)
LOCK_DIR = "_cdnlake_locks"
_MAX_POLL_S = 2.0


class LockBusyError(RuntimeError):
    """Another run holds the lock; the message names the date, the holder and the lock's location."""


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
