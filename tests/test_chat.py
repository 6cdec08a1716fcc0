"""Re-runs from chat: Slack payload -> cdn-rerun parameters, signatures, and the HTTP endpoint.

The deployment trigger is a fake; real HTTP requests go to the endpoint on 127.0.0.1. Nothing
talks to Slack or to a Prefect server.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
import pytest
import yaml

from cdnlake.integrations import chat
from cdnlake.settings import ConfigError, Settings, load_settings

TODAY = dt.date(2024, 5, 10)
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ROOT = Path(__file__).resolve().parents[1]


def form(text: str, **extra: str) -> dict[str, str]:
    return {"command": "/cdn-report", "text": text, "user_id": "U123", "user_name": "ops.tanaka",
            "channel_name": "cdn-ops", "trigger_id": "13345224609.738474920.8088930838d88f008e0", **extra}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "params"),
    [("2024-05-01", {"date": "2024-05-01"}), ("  2024-05-10 ", {"date": "2024-05-10"}),
     ("2024-05-01 resend", {"date": "2024-05-01", "resend_email": True}),
     ("2024-05-01 RESEND", {"date": "2024-05-01", "resend_email": True})],
)  # fmt: skip
def test_valid_commands_map_to_deployment_parameters(text: str, params: dict[str, Any]) -> None:
    parsed = chat.parse_command(form(text), today=TODAY)
    assert isinstance(parsed, chat.RerunRequest)
    assert parsed.parameters() == params and parsed.user == "ops.tanaka"


@pytest.mark.parametrize(
    ("text", "reply"),
    [("2024-05-11", "in the future"), ("2030-01-01", "in the future"), ("2024-02-30", "not a date"),
     ("yesterday", "not a date"), ("05/01/2024", "not a date"), ("2024-05-01; rm -rf /", "did not understand"),
     ("2024-05-01 please", "did not understand"), ("", "Usage"), ("help", "Usage")],
)  # fmt: skip
def test_bad_input_gets_a_clear_ephemeral_reply(text: str, reply: str) -> None:
    parsed = chat.parse_command(form(text), today=TODAY)
    assert isinstance(parsed, chat.Reply) and reply in parsed.text
    assert parsed.body()["response_type"] == "ephemeral"


def test_another_command_is_not_ours() -> None:
    parsed = chat.parse_command(form("2024-05-01", command="/deploy"), today=TODAY)
    assert isinstance(parsed, chat.Reply) and "/cdn-report" in parsed.text


def sign(body: bytes, timestamp: int, secret: str = SECRET) -> str:
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def test_signature_verification() -> None:
    body, now = urlencode(form("2024-05-01")).encode(), 1_715_000_000
    good = sign(body, now)
    assert chat.verify_slack_signature(SECRET, str(now), body, good, now=now + 10)
    assert not chat.verify_slack_signature(SECRET, str(now), body + b"x", good, now=now)  # tampered body
    assert not chat.verify_slack_signature("other-secret", str(now), body, good, now=now)
    assert not chat.verify_slack_signature(SECRET, str(now), body, good, now=now + 301)  # replayed later
    assert not chat.verify_slack_signature(SECRET, "soon", body, good, now=now)
    assert not chat.verify_slack_signature("", str(now), body, good, now=now)
    # Slack's documented example request and signature.
    example = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&"
               b"channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"
               b"response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
               b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")  # fmt: skip
    assert chat.verify_slack_signature(
        SECRET, "1531420618", example, "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        now=1531420618 + 60,
    )  # fmt: skip


class FakeTrigger:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[chat.RerunRequest] = []
        self.fail = fail

    def __call__(self, request: chat.RerunRequest) -> str:
        self.calls.append(request)
        if self.fail:
            raise ConnectionError("Prefect API at http://prefect:4200/api is unreachable")
        return "brave-otter"


@pytest.fixture
def server() -> Iterator[tuple[str, FakeTrigger]]:
    trigger = FakeTrigger()
    app = chat.make_app(SECRET, trigger, today=lambda: TODAY)
    httpd = chat.make_chat_server(app, "127.0.0.1", 0, timeout=2.0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", trigger
    httpd.shutdown()
    httpd.server_close()


def post(url: str, fields: dict[str, str], timestamp: int | None = None, signature: str | None = None) -> Any:
    body = urlencode(fields).encode()
    timestamp = int(time.time()) if timestamp is None else timestamp
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": str(timestamp),
               "X-Slack-Signature": signature or sign(body, timestamp)}  # fmt: skip
    request = urllib.request.Request(url + chat.PATH, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_endpoint_starts_the_rerun(server: tuple[str, FakeTrigger]) -> None:
    url, trigger = server
    status, reply = post(url, form("2024-05-01 resend"))
    assert status == 200 and reply["response_type"] == "in_channel"
    assert "2024-05-01" in reply["text"] and "brave-otter" in reply["text"]
    assert [c.parameters() for c in trigger.calls] == [{"date": "2024-05-01", "resend_email": True}]
    assert trigger.calls[0].trigger_id.startswith("13345224609")


def test_endpoint_bad_date_replies_and_runs_nothing(server: tuple[str, FakeTrigger]) -> None:
    url, trigger = server
    for text in ("2024-13-01", "2024-05-11", "tomorrow"):
        status, reply = post(url, form(text))
        assert status == 200 and reply["response_type"] == "ephemeral"
        assert "Usage" in reply["text"] or "in the future" in reply["text"]
    assert trigger.calls == []


def test_endpoint_refuses_unsigned_stale_and_other_requests(server: tuple[str, FakeTrigger]) -> None:
    url, trigger = server
    assert post(url, form("2024-05-01"), signature="v0=" + "0" * 64)[0] == 401
    stale = int(time.time()) - 600
    assert post(url, form("2024-05-01"), timestamp=stale, signature=None)[0] == 401
    with urllib.request.urlopen(url + "/healthz", timeout=10) as response:
        assert response.read() == b"ok"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(url + "/other", timeout=10)
    assert missing.value.code == 404
    assert trigger.calls == []


def test_a_failed_start_is_reported_to_the_user() -> None:
    reply = chat.handle(form("2024-05-01"), FakeTrigger(fail=True), today=TODAY)
    assert reply.body()["response_type"] == "ephemeral" and "Could not start" in reply.text
    assert "unreachable" in reply.text


def test_server_needs_the_signing_secret() -> None:
    with pytest.raises(ValueError, match="signing secret"):
        chat.make_app("", FakeTrigger())
    masked = load_settings(env={"CDNLAKE_SLACK_SIGNING_SECRET": SECRET}).masked()
    assert masked["slack_signing_secret"] == "***set***"
    with pytest.raises(ConfigError, match="CDNLAKE_RERUN_DEPLOYMENT"):
        load_settings(env={"CDNLAKE_RERUN_DEPLOYMENT": "just-a-name"})


def test_default_deployment_is_the_rerun_deployment_of_prefect_yaml() -> None:
    from flows.daily import cdn_rerun

    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))["deployments"]
    flow_name, deployment = Settings().rerun_deployment.split("/")
    entry = next(d for d in deployments if d["name"] == deployment)
    assert entry["entrypoint"].endswith(":cdn_rerun") and flow_name == cdn_rerun.name


def _doc_block(language: str, marker: str) -> str:
    text = (ROOT / "docs" / "chat.md").read_text(encoding="utf-8")
    blocks = re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)
    return next(b for b in blocks if marker in b)


@pytest.mark.parametrize(
    ("text", "event", "date"),
    [("2024-05-01", "cdnlake.report.requested", "2024-05-01"), (" 2024-05-01 ", "cdnlake.report.requested",
     "2024-05-01"), ("yesterday", "cdnlake.report.rejected", "yesterday"), ("", "cdnlake.report.rejected", ""),
     ('2024"}', "cdnlake.report.rejected", '2024"}')],
)  # fmt: skip
def test_prefect_cloud_webhook_template_renders_valid_events(text: str, event: str, date: str) -> None:
    template = jinja2.Environment().from_string(_doc_block("jinja2", "cdnlake.report"))
    body = form(text)
    rendered = json.loads(template.render(body=body, headers={}, method="POST"))
    assert rendered["event"] == event and rendered["payload"]["date"] == date
    assert rendered["resource"]["prefect.resource.id"] == "slack.user.U123"


def test_an_idle_or_slow_client_blocks_nobody(server: tuple[str, FakeTrigger]) -> None:
    url, trigger = server
    host, port = url.removeprefix("http://").split(":")
    idle = socket.create_connection((host, int(port)))  # connects, sends nothing
    slow = socket.create_connection((host, int(port)))
    slow.sendall(b"POST /slack/commands HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\nfoo")  # then stalls
    try:
        started = time.monotonic()
        with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
            assert response.status == 200 and response.read() == b"ok"
        status, _ = post(url, form("2024-05-01"))
        assert status == 200 and len(trigger.calls) == 1
        assert time.monotonic() - started < 2.0  # served while the other two hold their connections
        idle.settimeout(5)
        assert idle.recv(1024) == b""  # the server dropped the idle connection after its timeout
    finally:
        idle.close()
        slow.close()


def test_a_body_over_the_limit_is_refused_unread(server: tuple[str, FakeTrigger]) -> None:
    url, trigger = server
    request = urllib.request.Request(url + chat.PATH, data=b"x" * (chat.MAX_BODY + 1), method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 413 and trigger.calls == []
