"""Prefect defaults for the command line (`cdnlake run`, `backfill`, `demo`): not a flow, so not in flows/."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
STARTUP_TIMEOUT_S = 180  # Prefect's own 20 s is too short on a busy 2-core machine (we measured 45 s)


@dataclass
class PrefectServer:
    """A Prefect API server for this command only (a child process, stopped when the command exits).

    Without PREFECT_API_URL, Prefect 3 starts such a server itself when the flow starts, after
    importing its whole server in this process (3 s of CPU) to start the same thing in a child.
    Started by the command's first line instead, with Prefect's own command (`prefect server start`,
    API only), it is ready 2-3 s sooner while the imports, the settings and Spark's start go on.
    """

    process: subprocess.Popen[bytes]
    port: int

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def wait_until_ready(self, timeout_s: float = STARTUP_TIMEOUT_S) -> bool:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _end_with_this_process() -> None:
    """In the server's child, before it runs (Linux): SIGTERM when the command's process dies, even
    when it is killed and its exit handlers never run (a server left behind holds a port and the
    SQLite file)."""
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_prefect_server() -> PrefectServer | None:
    """Start this command's Prefect server now, unless PREFECT_API_URL names one (then None).

    The variable is looked at first, before Prefect is imported (a second); local_prefect then
    checks Prefect's own settings (a profile may name a server) and stops this one if so."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    port = _free_port()
    prefect = Path(sys.executable).with_name("prefect")
    command = [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-services",
               "--no-ui", "--analytics-off", "--log-level", "WARNING"]  # fmt: skip
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL,
                                   preexec_fn=_end_with_this_process if sys.platform == "linux" else None)  # fmt: skip
    except OSError:
        log.debug("could not start %s; Prefect starts its own server", command, exc_info=True)
        return None
    server = PrefectServer(process, port)
    # Stopped at exit, after Prefect's own exit handlers (registered later, run first) have sent
    # the last logs and events to it: the order Prefect keeps for the server it starts itself.
    atexit.register(server.stop)
    return server


@contextlib.contextmanager
def local_prefect(verbose: bool = False, server: PrefectServer | None = None) -> Iterator[None]:
    """Prefect defaults for the command line: the one place cdnlake sets PREFECT_* values.

    Only defaults (an explicit PREFECT_* variable or profile wins). `server`: the command's own
    server (start_prefect_server), used once it answers; without one, or when it does not start,
    Prefect 3 starts its temporary server itself (startup timeout raised: its 20 s is too short
    on a busy 2-core machine). Its telemetry job competes with the run for the SQLite file
    ("database is locked"): off. Prefect's INFO line per task state repeats our progress lines,
    so its loggers go to WARNING unless -v.
    """
    # prefect.main configures Prefect's loggers when it is first imported (dictConfig: levels reset).
    # Imported here, before the level is set, so it cannot happen later (e.g. when `cdnlake demo`
    # imports the flow inside this context) and bring back an INFO line per task.
    import prefect.main  # noqa: F401
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    if not verbose:
        logging.getLogger("prefect").setLevel(logging.WARNING)
    updates = {}
    if server is not None:
        if PREFECT_API_URL.value() or not server.wait_until_ready():
            server.stop()  # a profile names a server, or this one did not come up
        else:
            updates[PREFECT_API_URL] = server.api_url
    defaults = {PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: STARTUP_TIMEOUT_S,
                PREFECT_SERVER_ANALYTICS_ENABLED: False}  # fmt: skip
    with temporary_settings(updates=updates, set_defaults=defaults):
        yield


__all__ = ["PrefectServer", "local_prefect", "start_prefect_server"]
