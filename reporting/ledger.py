"""The e-mail ledger: one object per (date, distribution set) in the reports store.

`<reports>/_email_ledger/<date>/<set>.json`, where `<set>` is `all` or the sorted distribution
ids joined by `+` (a run for one distribution is not the full report). Its `state`:

- `sending`: a run claimed the e-mail and is handing it to SES (or the outbox). The claim is a
  conditional create (S3 `If-None-Match: *`), or a conditional replace (`If-Match` the version it
  read) when re-sending: of two runs exactly one wins, the other never sends.
- `sent`: the sender accepted it; `attempts` lists every message id sent for the date and set.
- `failed`: the sender refused it (nothing left); the next run may send.

A run that dies between `sending` and `sent` (after SES may have accepted the message) leaves
`sending`: the next run does not guess. It stops with EmailStateUnknown, naming the run that was
sending and since when; `--resend-email` sends again, knowingly.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from typing import Any

from cdnlake.storage import Conflict, Store

LEDGER_PREFIX = "_email_ledger"
LEDGER_VERSION = 2


class EmailStateUnknown(RuntimeError):
    """Another run is sending this e-mail, or died while sending it: it may have gone out."""


def distribution_set(distributions: list[str] | tuple[str, ...] | None) -> str:
    return "+".join(sorted({d.lower() for d in distributions})) if distributions else "all"


class Claim:
    """A won claim: the right to send once, then to record the outcome at the version we wrote."""

    def __init__(self, ledger: EmailLedger, key: str, record: dict[str, Any], version: str) -> None:
        self.ledger, self.key, self.record, self.version = ledger, key, record, version

    def _update(self, **changes: Any) -> None:
        self.record = self.record | changes | {"nonce": uuid.uuid4().hex}
        self.version = self.ledger.store.replace(self.key, _encode(self.record), self.version)

    def sent(self, entry: dict[str, Any]) -> None:
        self._update(state="sent", attempts=[*self.record["attempts"], entry], error=None)

    def failed(self, error: str) -> None:
        self._update(state="failed", error=error)


def _encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, indent=2, ensure_ascii=False, sort_keys=True).encode("utf-8")


class EmailLedger:
    def __init__(self, store: Store) -> None:
        self.store = store

    def key(self, date: str, distributions: list[str] | tuple[str, ...] | None = None) -> str:
        return f"{LEDGER_PREFIX}/{date}/{distribution_set(distributions)}.json"

    def read(self, date: str, distributions: list[str] | None = None) -> tuple[dict[str, Any], str] | None:
        found = self.store.read_versioned(self.key(date, distributions))
        if found is None:
            return None
        record = json.loads(found[0].decode("utf-8"))
        if not isinstance(record, dict) or record.get("state") not in ("sending", "sent", "failed"):
            raise ValueError(f"{self.store.uri(self.key(date, distributions))} is not a cdnlake e-mail ledger entry")
        return record, found[1]

    def entries(self, date: str, distributions: list[str] | None = None) -> list[dict[str, Any]]:
        """The e-mails sent for the date and set, oldest first."""
        found = self.read(date, distributions)
        return list(found[0]["attempts"]) if found else []

    def was_sent(self, date: str, distributions: list[str] | None = None) -> bool:
        return bool(self.entries(date, distributions))

    def claim(self, date: str, distributions: list[str] | None, force: bool, run: str,
              now: str) -> Claim | dict[str, Any]:  # fmt: skip
        """A Claim to send, or the `sent` record when the e-mail went out already (and not force).

        Raises EmailStateUnknown when another run holds a `sending` claim (and not force), or
        when another run changed the entry between our read and our write.
        """
        key = self.key(date, distributions)
        found = self.read(date, distributions)
        claim = {"version": LEDGER_VERSION, "date": date, "distributions": distribution_set(distributions),
                 "state": "sending", "run": run, "host": socket.gethostname(), "pid": os.getpid(),
                 "since": now, "error": None, "nonce": uuid.uuid4().hex,
                 "attempts": list(found[0]["attempts"]) if found else []}  # fmt: skip
        if found is None:
            try:
                return Claim(self, key, claim, self.store.create(key, _encode(claim)))
            except Conflict:
                found = self.read(date, distributions)
                if found is None:
                    raise
        record, version = found
        if record["state"] == "sent" and not force:
            return record
        if record["state"] == "sending" and not force:
            raise EmailStateUnknown(
                f"the e-mail for {date} ({record['distributions']}) is marked as being sent by run "
                f"{record['run']} on {record['host']} since {record['since']}, and its outcome was never "
                f"recorded: it may have reached the recipients. Check the mailbox or SES, then re-run with "
                f"--resend-email to send it (again). Ledger: {self.store.uri(key)}"
            )
        claim["attempts"] = list(record["attempts"])
        try:
            return Claim(self, key, claim, self.store.replace(key, _encode(claim), version))
        except Conflict:
            raise EmailStateUnknown(
                f"another run changed the e-mail ledger of {date} ({record['distributions']}) while this run "
                f"was claiming it; that run sends. Ledger: {self.store.uri(key)}"
            ) from None


__all__ = ["Claim", "EmailLedger", "EmailStateUnknown", "distribution_set"]
