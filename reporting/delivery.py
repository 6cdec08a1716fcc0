"""Sending the daily e-mail once per date: outbox files or Amazon SES (v2), and a sent ledger.

The boto3 ``sesv2`` client is injected (flows/ builds it from the settings): this module never
creates sessions or looks for credentials.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import ClientError, EndpointConnectionError

from reporting.email import REPORT_DATE_HEADER
from reporting.ledger import Claim, EmailLedger

log = logging.getLogger(__name__)

THROTTLING_CODES = frozenset({"TooManyRequestsException", "Throttling", "ThrottlingException",
                              "LimitExceededException"})
PERMANENT_CODES = frozenset({"MessageRejected", "MailFromDomainNotVerifiedException", "NotFoundException",
                             "BadRequestException", "AccountSuspendedException", "SendingPausedException"})


class DeliveryError(RuntimeError):
    """The e-mail could not be sent; ``code``/``ses_message`` carry what SES said."""

    def __init__(self, text: str, *, code: str | None = None, ses_message: str | None = None,
                 permanent: bool = True) -> None:
        super().__init__(text)
        self.code, self.ses_message, self.permanent = code, ses_message, permanent


@dataclass(frozen=True)
class Recipients:
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.to, *self.cc, *self.bcc)


def _addresses(message: EmailMessage, header: str) -> tuple[str, ...]:
    return tuple(addr for _, addr in getaddresses(message.get_all(header, [])) if addr)


def recipients_of(message: EmailMessage) -> Recipients:
    return Recipients(_addresses(message, "To"), _addresses(message, "Cc"), _addresses(message, "Bcc"))


def wire_bytes(message: EmailMessage) -> bytes:
    """RFC 5322 bytes (CRLF) without the Bcc header: Bcc must never reach other recipients."""
    clean = copy.deepcopy(message)  # the caller's message keeps its Bcc for the envelope
    del clean["Bcc"]
    return clean.as_bytes(policy=SMTP)


class EmailSender(Protocol):
    kind: str

    def send(self, message: EmailMessage, recipients: Recipients) -> str:
        """Send (or store) ``message`` for ``recipients``; return a message id."""
        ...


class OutboxSender:
    """Writes ``<outbox>/<date>_<n>.eml`` (plus the envelope as ``.json``): the embedded default."""

    kind = "outbox"

    def __init__(self, outbox_dir: Path) -> None:
        self.outbox_dir = Path(outbox_dir)

    def send(self, message: EmailMessage, recipients: Recipients) -> str:
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        date = str(message.get(REPORT_DATE_HEADER, "undated"))
        payload = wire_bytes(message)
        n = len(list(self.outbox_dir.glob(f"{date}_*.eml"))) + 1
        while True:
            path = self.outbox_dir / f"{date}_{n}.eml"
            try:  # "x" mode: two concurrent runs never overwrite each other's file
                with path.open("xb") as handle:
                    handle.write(payload)
                break
            except FileExistsError:
                n += 1
        # The .eml has no Bcc (like the real thing); the envelope keeps who would receive it.
        path.with_suffix(".json").write_text(json.dumps(asdict(recipients), indent=2), encoding="utf-8")
        log.info("e-mail for %s written to %s", date, path)
        return str(message.get("Message-ID") or path.name).strip()


class SesSender:
    """Amazon SES v2 raw sending, with exponential backoff and full jitter on throttling."""

    kind = "ses"

    def __init__(
        self, client: Any, *, max_attempts: int = 6, base_delay: float = 0.5, max_delay: float = 20.0,
        configuration_set: str | None = None, sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.client, self.max_attempts = client, max_attempts
        self.base_delay, self.max_delay, self.configuration_set = base_delay, max_delay, configuration_set
        self._sleep, self._jitter = sleep, jitter

    def _request(self, message: EmailMessage, recipients: Recipients) -> dict[str, Any]:
        # With raw content SES delivers to Destination, not to the headers: this is how Bcc works.
        fields = (("ToAddresses", recipients.to), ("CcAddresses", recipients.cc),
                  ("BccAddresses", recipients.bcc))
        destination = {key: list(values) for key, values in fields if values}
        request: dict[str, Any] = {"Destination": destination,
                                   "Content": {"Raw": {"Data": wire_bytes(message)}}}
        sender_address = parseaddr(str(message.get("From", "")))[1]
        if sender_address:  # bare address: a non-ASCII display name stays in the raw header only
            request["FromEmailAddress"] = sender_address
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        return request

    def send(self, message: EmailMessage, recipients: Recipients) -> str:
        request = self._request(message, recipients)
        for attempt in range(1, self.max_attempts + 1):
            try:
                return str(self.client.send_email(**request)["MessageId"])
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code, text = str(error.get("Code", "")), str(error.get("Message", exc))
                if code in THROTTLING_CODES and attempt < self.max_attempts:
                    # Full jitter: runs for many dates retrying together must not stay in lockstep.
                    delay = self._jitter() * min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
                    log.warning("SES throttled (%s), attempt %d/%d, retrying in %.2fs", code, attempt,
                                self.max_attempts, delay)
                    self._sleep(delay)
                    continue
                raise _delivery_error(code, text, attempt) from exc
        raise AssertionError("unreachable")  # the loop always returns or raises


def _delivery_error(code: str, text: str, attempt: int) -> DeliveryError:
    if code in THROTTLING_CODES:
        return DeliveryError(f"SES still throttling after {attempt} attempts: {code}: {text}",
                             code=code, ses_message=text, permanent=False)
    permanent = code in PERMANENT_CODES
    kind = "rejected the message" if permanent else "failed"
    return DeliveryError(f"SES {kind}: {code}: {text}", code=code, ses_message=text, permanent=permanent)


@dataclass(frozen=True)
class DeliveryResult:
    sent: bool
    message_id: str | None
    detail: str


def deliver(data_date: dt.date | str, message: EmailMessage, sender: EmailSender, ledger: EmailLedger,
            force: bool = False, now: dt.datetime | None = None, distributions: list[str] | None = None,
            run: str = "") -> DeliveryResult:  # fmt: skip
    """Send the report of ``data_date`` (for ``distributions``) once; later calls are no-ops unless ``force``.

    The ledger entry is claimed (conditional write) before sending and marked sent after: two runs
    cannot both send, and a crash in between is reported by the next run (EmailStateUnknown)
    instead of silently sending again. A refusal by the sender (DeliveryError: nothing went out)
    marks the entry failed, so a retry may send.
    """
    key = data_date if isinstance(data_date, str) else data_date.isoformat()
    stamp = (now or dt.datetime.now(dt.UTC)).isoformat()
    claim = ledger.claim(key, distributions, force, run or uuid.uuid4().hex[:12], stamp)
    if not isinstance(claim, Claim):
        last = claim["attempts"][-1]
        detail = f"already sent for {key} at {last['sent_at']} ({last['message_id']}); use force to re-send"
        log.info(detail)
        return DeliveryResult(sent=False, message_id=str(last["message_id"]), detail=detail)
    recipients = recipients_of(message)
    try:
        message_id = sender.send(message, recipients)
    except (DeliveryError, EndpointConnectionError) as exc:  # refused, or never reached SES: nothing went out
        claim.failed(f"{type(exc).__name__}: {exc}")
        raise
    claim.sent({
        "message_id": message_id,
        "recipients": asdict(recipients),
        "sent_at": stamp,
        "sender_kind": sender.kind,
        "forced": bool(claim.record["attempts"]) and force,
        "subject": str(message.get("Subject", "")),
    })
    return DeliveryResult(sent=True, message_id=message_id, detail=f"sent via {sender.kind}")
