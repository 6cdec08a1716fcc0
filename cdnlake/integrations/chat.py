"""Re-runs from chat: the Slack slash command `/cdn-report 2024-05-01` -> a run of `cdn-rerun`.

The original operators generated reports with a Slack command; this is its Prefect version. A
small WSGI endpoint (`cdnlake chat-server`) checks Slack's request signature, turns the command
into deployment parameters, starts the run with Prefect's `run_deployment(..., timeout=0)` and
answers within Slack's 3 seconds. Bad input gets a clear ephemeral reply and no run.
docs/chat.md also shows the Prefect Cloud webhook alternative (no server to run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from spark_jobs.contract import iso_date

log = logging.getLogger(__name__)

COMMAND = "/cdn-report"
PATH = "/slack/commands"
MAX_BODY = 64 * 1024  # a slash command is well under 4 KB; anything bigger is not Slack
REPLAY_WINDOW_S = 300  # Slack's own recommendation: reject requests older than five minutes
USAGE = (
    "Usage: `/cdn-report YYYY-MM-DD [resend]` re-runs the CDN pipeline and report for that UTC date "
    "(`resend` e-mails the report again even if it was already sent)."
)


@dataclass(frozen=True)
class RerunRequest:
    """A valid command: what to run, and who asked (for the run's tags and the reply)."""

    date: dt.date
    resend_email: bool = False
    user: str = ""
    channel: str = ""
    trigger_id: str = ""

    def parameters(self) -> dict[str, Any]:
        """The cdn-rerun deployment's parameters (resend_email only when asked: the deployment's default rules)."""
        params: dict[str, Any] = {"date": self.date.isoformat()}
        if self.resend_email:
            params["resend_email"] = True
        return params


@dataclass(frozen=True)
class Reply:
    """What Slack shows: ephemeral (only the requester sees it) unless `in_channel`."""

    text: str
    in_channel: bool = False

    def body(self) -> dict[str, str]:
        return {"response_type": "in_channel" if self.in_channel else "ephemeral", "text": self.text}


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def parse_command(
    form: Mapping[str, str], today: dt.date | None = None, command: str = COMMAND
) -> RerunRequest | Reply:
    """Slack's slash-command form -> a RerunRequest, or a Reply explaining what is wrong."""
    if form.get("command", command) != command:
        return Reply(f"This endpoint handles {command}, not {form.get('command')!r}.")
    words = form.get("text", "").split()
    if not words or words[0].lower() in ("help", "-h", "--help"):
        return Reply(USAGE)
    if len(words) > 2 or (len(words) == 2 and words[1].lower() != "resend"):
        return Reply(f"I did not understand `{' '.join(words)[:100]}`. {USAGE}")
    try:
        day = iso_date(words[0])
    except argparse.ArgumentTypeError as exc:
        return Reply(f"{str(exc)[:120]}. {USAGE}")
    today = today or _today()
    if day > today:
        return Reply(f"{day} is in the future (today is {today} UTC): there are no logs for it yet. Nothing was run.")
    user = form.get("user_name") or form.get("user_id", "")
    return RerunRequest(day, len(words) == 2, user, form.get("channel_name", ""), form.get("trigger_id", ""))


def verify_slack_signature(secret: str, timestamp: str, body: bytes, signature: str, now: float) -> bool:
    """Slack's v0 signature: HMAC-SHA256 of `v0:<timestamp>:<body>` with the signing secret.

    Requests older or newer than five minutes are refused too, so a captured request cannot be
    replayed later.
    """
    if not (secret and timestamp and signature):
        return False
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > REPLAY_WINDOW_S:
        return False
    base = b"v0:" + timestamp.encode("ascii", "replace") + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode("ascii", "replace"))


Trigger = Callable[[RerunRequest], str]


def prefect_trigger(deployment: str) -> Trigger:
    """Start `deployment` (flow/deployment) for the request and return the flow run's name."""

    def trigger(request: RerunRequest) -> str:
        from prefect.deployments import run_deployment

        # Called from sync code, run_deployment returns the FlowRun itself (not a coroutine).
        run: Any = run_deployment(
            deployment, parameters=request.parameters(), timeout=0, as_subflow=False,
            tags=["slack", f"slack-user:{request.user}"[:100]],
            # Slack gives each invocation its own trigger_id: a duplicate delivery makes no second run.
            idempotency_key=f"slack-{request.trigger_id}" if request.trigger_id else None,
        )  # fmt: skip
        return str(run.name)

    return trigger


def handle(form: Mapping[str, str], trigger: Trigger, today: dt.date | None = None, command: str = COMMAND) -> Reply:
    """Parse, run if valid, and say what happened (a failed start is reported, never raised)."""
    parsed = parse_command(form, today, command)
    if isinstance(parsed, Reply):
        return parsed
    try:
        run_name = trigger(parsed)
    except Exception as exc:  # Prefect unreachable, deployment missing, ...: the user must know
        log.exception("could not start the re-run for %s", parsed.date)
        return Reply(f"Could not start the re-run for {parsed.date}: {type(exc).__name__}: {str(exc)[:200]}")
    log.info("re-run of %s started by %s: flow run %s", parsed.date, parsed.user, run_name)
    resend = " and e-mail" if parsed.resend_email else ""
    who = parsed.user or "someone"
    text = (f"Re-running the CDN pipeline and report{resend} for {parsed.date} (asked by {who}): "
            f"Prefect flow run `{run_name}`. Progress is posted by the pipeline as usual.")  # fmt: skip
    return Reply(text, in_channel=True)


def _respond(start_response: Callable[..., Any], status: str, payload: dict[str, Any] | str) -> Iterable[bytes]:
    is_json = isinstance(payload, dict)
    data = (json.dumps(payload) if is_json else str(payload)).encode("utf-8")
    kind = "application/json" if is_json else "text/plain; charset=utf-8"
    start_response(status, [("Content-Type", kind), ("Content-Length", str(len(data)))])
    return [data]


def make_app(
    secret: str, trigger: Trigger, command: str = COMMAND, clock: Callable[[], float] = time.time,
    today: Callable[[], dt.date] = _today,
) -> Callable[..., Iterable[bytes]]:  # fmt: skip
    """The WSGI application: POST /slack/commands (signed by Slack), GET /healthz for probes."""
    if not secret:
        raise ValueError("a Slack signing secret is required (CDNLAKE_SLACK_SIGNING_SECRET)")

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        if method == "GET" and path == "/healthz":
            return _respond(start_response, "200 OK", "ok")
        if path != PATH:
            return _respond(start_response, "404 Not Found", "not found")
        if method != "POST":
            return _respond(start_response, "405 Method Not Allowed", "POST only")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            return _respond(start_response, "413 Content Too Large", "request too large")
        body = environ["wsgi.input"].read(length)
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
        if not verify_slack_signature(secret, timestamp, body, environ.get("HTTP_X_SLACK_SIGNATURE", ""), clock()):
            log.warning("refused a request with a missing, wrong or stale Slack signature")
            return _respond(start_response, "401 Unauthorized", "invalid signature")
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return _respond(start_response, "200 OK", handle(form, trigger, today(), command).body())

    return app


REQUEST_TIMEOUT_S = 10.0  # per socket operation: an idle or trickling client is dropped after this


def make_chat_server(app: Callable[..., Iterable[bytes]], host: str, port: int,
                     timeout: float = REQUEST_TIMEOUT_S) -> Any:  # fmt: skip
    """A WSGI server that serves each connection in its own thread, with socket timeouts.

    One idle or slow client (a port scanner, a half-open connection) must not block /healthz or
    Slack's next command; the body limit is MAX_BODY (checked by the app before reading).
    """
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Handler(WSGIRequestHandler):
        def setup(self) -> None:
            self.timeout = timeout  # StreamRequestHandler applies it to the connection's socket
            super().setup()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            log.info("%s %s", self.address_string(), format % args)

    class ThreadingServer(ThreadingMixIn, WSGIServer):
        daemon_threads = True  # a stuck client never holds up shutdown

    return make_server(host, port, app, server_class=ThreadingServer, handler_class=Handler)


def serve(app: Callable[..., Iterable[bytes]], host: str, port: int) -> None:
    """Serve until interrupted."""
    with make_chat_server(app, host, port) as server:
        log.info("cdnlake chat endpoint on http://%s:%d%s", host, server.server_port, PATH)
        server.serve_forever()
