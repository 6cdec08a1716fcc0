"""Delivery: SES v2 through moto, throttling retries, permanent errors, the ledger, the outbox."""

import datetime as dt
import email
import json
from email import policy

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from cdnlake.storage import LocalStore
from reporting.delivery import DeliveryError, OutboxSender, Recipients, SesSender, deliver
from reporting.email import EmailConfig, build_message
from reporting.ledger import EmailLedger
from reporting.sample import report_data_from_totals

D = dt.date(2024, 6, 9)
GIB = 2**30
CONFIG = EmailConfig(
    sender="cdn-report@example.com",
    to=["ops@example.com"],
    cc=["lead@example.com"],
    bcc=["audit@example.com"],
)
CSV = b"DATE,TIME\n2024-06-09,0\n"
PDF = b"%PDF-1.4 fake report"


@pytest.fixture(scope="module")
def message():
    totals = {"2024-06-09": {"request_count": 5}}
    data = report_data_from_totals(D, totals, minute_bytes={817: int(298.96 * GIB)})
    return build_message(data, CSV, PDF, CONFIG)


@pytest.fixture
def aws(monkeypatch):
    # Fake credentials for moto only, so a developer's real profile can never be used by a test.
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield boto3.client("sesv2", region_name="us-east-1")


def test_ses_send_through_moto(aws, message, tmp_path):
    aws.create_email_identity(EmailIdentity="cdn-report@example.com")
    ledger = EmailLedger(LocalStore(tmp_path))
    result = deliver(D, message, SesSender(aws), ledger)
    assert result.sent and result.message_id

    sent = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    assert len(sent) == 1
    raw = sent[0]
    assert raw.source == "cdn-report@example.com"
    # moto also appends the To/Cc headers; Bcc can only have come from Destination.
    assert {"ops@example.com", "lead@example.com", "audit@example.com"} <= set(raw.destinations)
    parsed = email.message_from_string(raw.raw_data, policy=policy.default)
    assert parsed["Bcc"] is None and "audit@example.com" not in raw.raw_data
    assert parsed["Subject"].startswith("[cdnlake] CDN daily report 2024-06-09 (")
    attachments = {p.get_filename(): p.get_payload(decode=True) for p in parsed.iter_attachments()}
    assert attachments == {"cdn_statistics.csv": CSV, "cdn_report.pdf": PDF}
    body = parsed.get_body(preferencelist=("plain",)).get_content()
    assert "最大ピークは 298.96GB (39.86Gbps) at 13:37 です" in body

    entries = ledger.entries("2024-06-09")
    assert len(entries) == 1 and entries[0]["message_id"] == result.message_id
    assert entries[0]["sender_kind"] == "ses"
    assert entries[0]["recipients"] == {
        "to": ["ops@example.com"],
        "cc": ["lead@example.com"],
        "bcc": ["audit@example.com"],
    }


def test_ses_unverified_sender_is_a_clear_delivery_error(aws, message, tmp_path):
    ledger = EmailLedger(LocalStore(tmp_path))
    with pytest.raises(DeliveryError) as info:
        deliver(D, message, SesSender(aws), ledger)
    assert info.value.code == "MessageRejected" and info.value.permanent
    assert "Did not have authority to send from email cdn-report@example.com" in str(info.value)
    assert ledger.entries("2024-06-09") == []


class FakeSes:
    """Raises the given error codes first, then succeeds."""

    def __init__(self, codes: list[str], message: str = "Maximum sending rate exceeded."):
        self.codes, self.message, self.calls = list(codes), message, []

    def send_email(self, **request):
        self.calls.append(request)
        if self.codes:
            code = self.codes.pop(0)
            raise ClientError({"Error": {"Code": code, "Message": self.message}}, "SendEmail")
        return {"MessageId": f"ses-{len(self.calls)}"}


def test_throttling_is_retried_with_backoff(message, tmp_path):
    client, sleeps = FakeSes(["TooManyRequestsException", "TooManyRequestsException"]), []
    sender = SesSender(client, base_delay=1.0, sleep=sleeps.append, jitter=lambda: 0.5)
    ledger = EmailLedger(LocalStore(tmp_path))
    result = deliver(D, message, sender, ledger)
    assert result.message_id == "ses-3" and len(client.calls) == 3
    assert sleeps == [0.5, 1.0]  # jitter 0.5 x (1 s, 2 s)
    assert len(ledger.entries("2024-06-09")) == 1
    request = client.calls[-1]
    assert request["Destination"] == {
        "ToAddresses": ["ops@example.com"],
        "CcAddresses": ["lead@example.com"],
        "BccAddresses": ["audit@example.com"],
    }
    assert request["FromEmailAddress"] == "cdn-report@example.com"
    assert b"audit@example.com" not in request["Content"]["Raw"]["Data"]


def test_throttling_gives_up_after_max_attempts(message):
    client = FakeSes(["Throttling"] * 5)
    sender = SesSender(client, max_attempts=3, sleep=lambda _: None)
    with pytest.raises(DeliveryError, match="still throttling after 3 attempts") as info:
        sender.send(message, Recipients(to=("ops@example.com",)))
    assert not info.value.permanent and len(client.calls) == 3


PERMANENT = [
    "MessageRejected",
    "MailFromDomainNotVerifiedException",
    "NotFoundException",
    "BadRequestException",
]


@pytest.mark.parametrize("code", PERMANENT)
def test_permanent_errors_are_not_retried(message, tmp_path, code):
    client = FakeSes([code], message="Email address is not verified: ops@example.com")
    ledger = EmailLedger(LocalStore(tmp_path))
    with pytest.raises(DeliveryError, match="Email address is not verified: ops@example.com") as info:
        deliver(D, message, SesSender(client, sleep=lambda _: pytest.fail("must not sleep")), ledger)
    assert info.value.code == code and info.value.permanent
    assert info.value.ses_message == "Email address is not verified: ops@example.com"
    assert len(client.calls) == 1 and not ledger.was_sent("2024-06-09")


def test_ledger_sends_once_per_date_unless_forced(message, tmp_path):
    client = FakeSes([])
    sender, ledger = SesSender(client), EmailLedger(LocalStore(tmp_path / "state"))
    first = deliver(D, message, sender, ledger)
    second = deliver(D, message, sender, ledger)
    assert first.sent and not second.sent and second.message_id == first.message_id
    assert "already sent" in second.detail and len(client.calls) == 1
    forced = deliver(D, message, sender, ledger, force=True)
    assert forced.sent and len(client.calls) == 2
    entries = ledger.entries("2024-06-09")
    assert [e["forced"] for e in entries] == [False, True]
    assert deliver(dt.date(2024, 6, 10), message, sender, ledger).sent  # another date is independent
    on_disk = sorted(p.relative_to(tmp_path / "state").as_posix() for p in (tmp_path / "state").rglob("*.json"))
    assert on_disk == ["_email_ledger/2024-06-09/all.json", "_email_ledger/2024-06-10/all.json"]


def test_outbox_sender(message, tmp_path):
    outbox, ledger = tmp_path / "outbox", EmailLedger(LocalStore(tmp_path))
    first = deliver(D, message, OutboxSender(outbox), ledger)
    deliver(D, message, OutboxSender(outbox), ledger, force=True)
    assert sorted(p.name for p in outbox.glob("*.eml")) == ["2024-06-09_1.eml", "2024-06-09_2.eml"]
    raw = (outbox / "2024-06-09_1.eml").read_bytes()
    assert b"\r\n" in raw and b"audit@example.com" not in raw
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert parsed["Message-ID"] == first.message_id
    envelope = json.loads((outbox / "2024-06-09_1.json").read_text(encoding="utf-8"))
    assert envelope["bcc"] == ["audit@example.com"]
    assert ledger.entries("2024-06-09")[0]["sender_kind"] == "outbox"


class ThrottleFirst:
    """A botocore `before-call` hook: the real (moto) SES client answers 429 TooManyRequestsException
    `times` times, as SES does above the account's sending rate, then lets calls through."""

    def __init__(self, times: int):
        self.left, self.calls = times, 0

    def __call__(self, **kwargs):
        from botocore.awsrequest import AWSResponse

        self.calls += 1
        if not self.left:
            return None  # go on to moto
        self.left -= 1
        error = {"Code": "TooManyRequestsException", "Message": "Maximum sending rate exceeded."}
        return AWSResponse("https://email.us-east-1.amazonaws.com", 429, {}, None), {
            "Error": error, "ResponseMetadata": {"HTTPStatusCode": 429}}  # fmt: skip


def test_ses_throttled_three_times_sends_exactly_one_email_once_per_date(aws, message, tmp_path):
    aws.create_email_identity(EmailIdentity="cdn-report@example.com")
    throttle, sleeps = ThrottleFirst(3), []
    aws.meta.events.register("before-call.sesv2.SendEmail", throttle)
    sender = SesSender(aws, base_delay=1.0, sleep=sleeps.append, jitter=lambda: 1.0)
    ledger = EmailLedger(LocalStore(tmp_path / "reports"))
    backend = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]

    result = deliver(D, message, sender, ledger)
    assert result.sent and throttle.calls == 4 and sleeps == [1.0, 2.0, 4.0]  # 3 x 429, then accepted
    assert len(backend.sent_messages) == 1  # exactly one e-mail left SES
    entries = ledger.entries("2024-06-09")
    assert len(entries) == 1 and entries[0]["message_id"] == result.message_id and not entries[0]["forced"]

    rerun = deliver(D, message, sender, ledger)  # the same date again (a re-run, a late file)
    assert not rerun.sent and "already sent" in rerun.detail and throttle.calls == 4
    assert len(backend.sent_messages) == 1 and len(ledger.entries("2024-06-09")) == 1

    forced = deliver(D, message, sender, ledger, force=True)  # --resend-email
    assert forced.sent and forced.message_id != result.message_id
    assert len(backend.sent_messages) == 2
    assert [e["forced"] for e in ledger.entries("2024-06-09")] == [False, True]
