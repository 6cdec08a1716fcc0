"""cdnlake/storage.py (local and S3 on moto's server) and the exactly-once e-mail ledger on it."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from cdnlake.storage import Conflict, LocalStore, S3Store, Store, store_for
from reporting.delivery import DeliveryError, Recipients, deliver
from reporting.ledger import EmailLedger, EmailStateUnknown
from tests.moto_endpoint import client, moto_endpoint

D = dt.date(2024, 6, 9)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_endpoint("reports") as url:
        yield url


_PREFIXES = iter(range(10_000))


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return LocalStore(tmp_path / "reports")
    url = request.getfixturevalue("endpoint")
    return store_for(f"s3://reports/run{next(_PREFIXES)}", lambda: client("s3", url))


# ---------------------------------------------------------------- the store
def test_read_write_list_exists(store: Store) -> None:
    assert store.read("2024-06-09/summary.json") is None and not store.exists("2024-06-09/summary.json")
    store.write("2024-06-09/summary.json", b"{}")
    store.write("2024-06-09/cdn_report.pdf", b"%PDF")
    store.write("misses/x.csv", b"a\n")
    assert store.read("2024-06-09/summary.json") == b"{}" and store.exists("2024-06-09/cdn_report.pdf")
    assert store.list("2024-06-09") == ["2024-06-09/cdn_report.pdf", "2024-06-09/summary.json"]
    assert store.list() == ["2024-06-09/cdn_report.pdf", "2024-06-09/summary.json", "misses/x.csv"]
    assert store.uri("a/b.json").endswith("/a/b.json")


def test_create_is_put_if_absent(store: Store) -> None:
    version = store.create("k.json", b"first")
    with pytest.raises(Conflict):
        store.create("k.json", b"second")
    found = store.read_versioned("k.json")
    assert found == (b"first", version)


def test_replace_only_at_the_version_read(store: Store) -> None:
    v1 = store.create("k.json", b"one")
    v2 = store.replace("k.json", b"two", v1)
    with pytest.raises(Conflict):
        store.replace("k.json", b"three", v1)  # a stale version: somebody else wrote meanwhile
    with pytest.raises(Conflict):
        store.replace("absent.json", b"x", v2)
    assert store.read("k.json") == b"two"


def test_local_keys_cannot_leave_the_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="leaves the store"):
        LocalStore(tmp_path / "r").write("../outside.txt", b"x")
    assert not (tmp_path / "outside.txt").exists()


def test_store_for_needs_a_client_for_s3(tmp_path: Path) -> None:
    assert isinstance(store_for(str(tmp_path)), LocalStore)
    with pytest.raises(ValueError, match="S3 client"):
        store_for("s3://bucket/reports")
    assert isinstance(store_for("s3a://bucket/reports", lambda: object()), S3Store)


# ---------------------------------------------------------------- the ledger
def message_for(date: dt.date) -> EmailMessage:
    message = EmailMessage()
    message["To"], message["Subject"] = "ops@example.com", f"report {date}"
    message.set_content("body")
    return message


class Sender:
    """Counts what it accepted; optionally waits on an event, fails or 'crashes' after accepting."""

    kind = "fake"

    def __init__(self, gate: threading.Event | None = None, fail: Exception | None = None,
                 crash: bool = False) -> None:  # fmt: skip
        self.accepted: list[str] = []
        self.gate, self.fail, self.crash = gate, fail, crash
        self.lock = threading.Lock()

    def send(self, message: EmailMessage, recipients: Recipients) -> str:
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail is not None:
            raise self.fail
        with self.lock:
            self.accepted.append(str(message["Subject"]))
            message_id = f"m{len(self.accepted)}"
        if self.crash:  # SES accepted, then the process died before the ledger was updated
            raise SystemExit("killed")
        return message_id


def test_two_concurrent_runs_send_once(store: Store) -> None:
    ledger, gate = EmailLedger(store), threading.Event()
    sender = Sender(gate)
    outcomes: list[Any] = []

    def run() -> None:
        try:
            outcomes.append(deliver(D, message_for(D), sender, ledger))
        except EmailStateUnknown as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while not outcomes and time.monotonic() < deadline:
        time.sleep(0.01)  # one run claimed the e-mail and waits in the sender; the other has its answer
    gate.set()
    for t in threads:
        t.join()
    assert len(sender.accepted) == 1
    assert sorted(type(o).__name__ for o in outcomes) == ["DeliveryResult", "EmailStateUnknown"]
    assert "being sent by run" in str(next(o for o in outcomes if isinstance(o, Exception)))
    assert len(ledger.entries("2024-06-09")) == 1


def test_crash_after_the_send_is_reported_not_resent(store: Store) -> None:
    ledger, crashing = EmailLedger(store), Sender(crash=True)
    with pytest.raises(SystemExit):
        deliver(D, message_for(D), crashing, ledger, run="run-a")
    assert crashing.accepted == ["report 2024-06-09"]  # it went out once
    sender = Sender()
    with pytest.raises(EmailStateUnknown) as info:
        deliver(D, message_for(D), sender, ledger, run="run-b")
    text = str(info.value)
    assert "run-a" in text and "--resend-email" in text and "may have reached" in text
    assert sender.accepted == []  # not silently sent again
    forced = deliver(D, message_for(D), sender, ledger, force=True)  # the operator's decision
    assert forced.sent and sender.accepted == ["report 2024-06-09"]
    assert [e["forced"] for e in ledger.entries("2024-06-09")] == [False]  # the crashed one has no id
    assert not deliver(D, message_for(D), sender, ledger).sent


def test_refused_send_can_be_retried(store: Store) -> None:
    ledger = EmailLedger(store)
    with pytest.raises(DeliveryError):
        deliver(D, message_for(D), Sender(fail=DeliveryError("SES rejected the message")), ledger)
    record, _ = ledger.read("2024-06-09") or ({}, "")
    assert record["state"] == "failed" and "SES rejected" in record["error"]
    sender = Sender()
    assert deliver(D, message_for(D), sender, ledger).sent and len(sender.accepted) == 1


def test_concurrent_dates_keep_every_entry(store: Store) -> None:
    ledger, sender = EmailLedger(store), Sender()
    dates = [D + dt.timedelta(days=i) for i in range(6)]
    threads = [threading.Thread(target=deliver, args=(d, message_for(d), sender, ledger)) for d in dates]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(sender.accepted) == sorted(f"report {d}" for d in dates)
    assert all(len(ledger.entries(d.isoformat())) == 1 for d in dates)


def test_a_distribution_subset_is_not_the_full_report(store: Store) -> None:
    ledger, sender = EmailLedger(store), Sender()
    assert deliver(D, message_for(D), sender, ledger, distributions=["E2ABC", "e1abc"]).sent
    assert deliver(D, message_for(D), sender, ledger).sent  # all distributions: its own e-mail
    assert not deliver(D, message_for(D), sender, ledger, distributions=["e1abc", "e2abc"]).sent
    assert len(sender.accepted) == 2
    assert store.list("_email_ledger") == ["_email_ledger/2024-06-09/all.json",
                                           "_email_ledger/2024-06-09/e1abc+e2abc.json"]  # fmt: skip


def test_a_foreign_object_is_not_taken_for_a_ledger(store: Store) -> None:
    store.write("_email_ledger/2024-06-09/all.json", json.dumps({"sent": {}}).encode())
    with pytest.raises(ValueError, match="not a cdnlake e-mail ledger entry"):
        deliver(D, message_for(D), Sender(), EmailLedger(store))
