"""Date locks on the store (flows/locks.StoreLock): a lost lock stops the run, staleness by the
store's clock only, and a release never removes a lock another run took over."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cdnlake import locks
from cdnlake.storage import Conflict, LocalStore, S3Store, Store
from tests.moto_endpoint import client, moto_endpoint

KEY = "_cdnlake_locks/2024-06-09.lock"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_endpoint("locks") as url:
        yield url


_RUNS = iter(range(10_000))


@pytest.fixture
def store(endpoint: str) -> S3Store:
    return S3Store(client("s3", endpoint), f"s3://locks/wh{next(_RUNS)}")


def owner(run: str, stamp: str | None = None) -> locks.Owner:
    now = stamp or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return locks.Owner("host-" + run, 1, run, now, now)


def stored(store: Store) -> dict[str, Any]:
    return dict(json.loads(store.read(KEY) or b"{}"))


def test_the_store_gives_the_age_by_its_own_clock(store: S3Store, tmp_path: Any) -> None:
    store.write(KEY, b"x")
    age = store.age(KEY)
    assert age is not None and -2 <= age <= 5  # moto's Date minus its Last-Modified
    assert store.age("absent") is None
    local = LocalStore(tmp_path)
    local.write(KEY, b"x")
    assert 0 <= (local.age(KEY) or -1) < 5


class SkewedAge(S3Store):
    """What the store's clock says, whatever the holder's timestamps claim."""

    def __init__(self, base: S3Store, age: float) -> None:
        super().__init__(base.client, base.location)
        self.fixed_age = age

    def age(self, key: str) -> float | None:
        return self.fixed_age


def test_staleness_ignores_the_holders_clock(store: S3Store) -> None:
    # The holder's clock runs an hour slow: its heartbeat looks old, but the store saw it just now.
    holder = locks.StoreLock(store, KEY, stale_seconds=600)
    assert holder.try_acquire(owner("slow-clock", "2024-06-09T00:00:00Z"))
    try:
        waiter = locks.StoreLock(SkewedAge(store, 1.0), KEY, stale_seconds=600)
        assert not waiter.try_acquire(owner("waiter"))
        assert stored(store)["run_id"] == "slow-clock"
    finally:
        holder.release()
    # A run that died with its clock a day ahead: its timestamps look fresh, the store says 1 h old.
    dead = locks.StoreLock(store, KEY, stale_seconds=600)
    assert dead.try_acquire(owner("fast-clock", "2099-01-01T00:00:00Z"))
    dead._stop.set()  # it dies: no more heartbeats, no release
    waiter = locks.StoreLock(SkewedAge(store, 3600.0), KEY, stale_seconds=600)
    assert waiter.try_acquire(owner("waiter"))
    assert stored(store)["run_id"] == "waiter"
    waiter.release()


class FailingReplace(S3Store):
    """The store becomes unreachable for the holder's heartbeats."""

    def __init__(self, base: S3Store) -> None:
        super().__init__(base.client, base.location)
        self.down = False

    def replace(self, key: str, data: bytes, version: str) -> str:
        if self.down:
            raise ConnectionError("store unreachable")
        return super().replace(key, data, version)


def test_a_lock_taken_over_is_lost_and_check_stops_the_run(store: S3Store) -> None:
    mine = locks.StoreLock(store, KEY, stale_seconds=2)  # heartbeat every 0.5 s
    assert mine.try_acquire(owner("paused"))
    mine.check()
    found = store.read_versioned(KEY)
    assert found is not None
    store.replace(KEY, json.dumps({"run_id": "other", "state": "held"}).encode(), found[1])  # taken over
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            mine.check()
        except locks.LockLostError as exc:
            assert "another run took it over" in str(exc) and "before writing or e-mailing" in str(exc)
            break
        time.sleep(0.1)
    else:
        pytest.fail("the lost lock was not noticed")
    mine.release()
    assert stored(store)["run_id"] == "other"  # the release left the new holder's lock alone


def test_no_heartbeat_past_the_stale_time_is_a_lost_lock(store: S3Store) -> None:
    now = [100.0]
    flaky = FailingReplace(store)
    mine = locks.StoreLock(flaky, KEY, stale_seconds=10, monotonic=lambda: now[0])
    assert mine.try_acquire(owner("cut-off"))
    flaky.down = True
    now[0] += 9.0
    mine.check()  # within the stale time: still ours
    now[0] += 2.0
    with pytest.raises(locks.LockLostError, match="no successful heartbeat for over 10 s"):
        mine.check()
    mine.release()


class IgnoresIfMatchOnDelete:
    """An S3 client whose delete_object ignores If-Match (some S3-compatible stores do)."""

    def __init__(self, real: Any) -> None:
        self.real, self.deletes = real, 0

    def delete_object(self, **kwargs: Any) -> Any:
        self.deletes += 1
        kwargs.pop("IfMatch", None)
        return self.real.delete_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_release_never_removes_a_lock_another_run_took_over(store: S3Store) -> None:
    sloppy = IgnoresIfMatchOnDelete(store.client)
    first_store = S3Store(sloppy, store.location)
    first = locks.StoreLock(first_store, KEY, stale_seconds=600)
    assert first.try_acquire(owner("first"))
    first._stop.set()  # paused past the stale time: no heartbeats
    second = locks.StoreLock(SkewedAge(store, 900.0), KEY, stale_seconds=600)
    assert second.try_acquire(owner("second"))  # takes over the stale lock
    first.release()  # the first run wakes up and lets go of what it thinks it holds
    assert stored(store)["run_id"] == "second" and stored(store)["state"] == "held"
    assert sloppy.deletes == 0  # no DELETE at all: nothing for a store to get wrong
    second.release()
    assert stored(store)["state"] == "released"
    third = locks.StoreLock(store, KEY, stale_seconds=600)
    assert third.try_acquire(owner("third"))  # a released lock is free at once
    third.release()


def test_two_waiters_cannot_both_take_a_released_lock(store: S3Store) -> None:
    store.write(KEY, json.dumps({"state": "released"}).encode())
    found = store.read_versioned(KEY)
    assert found is not None
    a, b = locks.StoreLock(store, KEY, 600), locks.StoreLock(store, KEY, 600)
    assert a.try_acquire(owner("a"))
    with pytest.raises(Conflict):
        store.replace(KEY, b"{}", found[1])  # the version b would have used is gone
    assert not b.try_acquire(owner("b"))
    a.release()
