"""A date lock as an object of the warehouse's store (S3): see StoreLock."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, replace

from cdnlake.clock import utc_stamp
from cdnlake.lock_owner import Owner
from cdnlake.storage import Conflict, Store

log = logging.getLogger(__name__)


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
                owner = replace(self._owner, heartbeat=utc_stamp())
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
