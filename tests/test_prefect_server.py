"""The command line's own Prefect server (cdnlake/prefect_defaults.py): started first, used when it
answers, never in the way of a server the user named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cdnlake.prefect_defaults import PrefectServer, local_prefect, start_prefect_server

ROOT = Path(__file__).resolve().parents[1]


def test_a_command_runs_its_flow_on_its_own_server_and_stops_it(tmp_path: Path) -> None:
    """In a fresh process (the tests' own Prefect server is not there): the flow runs against the
    started server, Prefect's server code is never imported here, and the server ends with the command."""
    code = (
        "import sys\n"
        "from cdnlake.prefect_defaults import local_prefect, start_prefect_server\n"
        "server = start_prefect_server()\n"
        "from prefect import flow\n"
        "from prefect.settings import PREFECT_API_URL\n"
        "@flow\n"
        "def seven() -> int:\n"
        "    return 7\n"
        "with local_prefect(server=server):\n"
        "    print(server.process.pid, PREFECT_API_URL.value() == server.api_url, seven())\n"
        "print('prefect.server.api.server' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {"PREFECT_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=240, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = done.stdout.split("\n")[:2]
    pid, on_own_server, result = first.split()
    assert (on_own_server, result, second) == ("True", "7", "False")
    assert "Error" not in done.stderr, done.stderr[-3000:]  # no log or event sent to a stopped server
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's (prctl)")
def test_the_server_ends_when_the_command_is_killed(tmp_path: Path) -> None:
    """Killed (SIGKILL: no exit handler runs), the command does not leave its server behind."""
    import signal
    import time

    code = "from cdnlake.prefect_defaults import start_prefect_server\nimport time\n" \
           "print(start_prefect_server().process.pid, flush=True)\ntime.sleep(120)\n"  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {"PREFECT_HOME": str(tmp_path)}
    command = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    assert command.stdout is not None
    server_pid = int(command.stdout.readline())
    os.kill(server_pid, 0)  # running
    command.send_signal(signal.SIGKILL)
    command.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise AssertionError(f"the Prefect server {server_pid} outlived its killed command")


def test_no_server_when_the_environment_names_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.example:4200/api")
    assert start_prefect_server() is None


def _process(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def test_a_server_that_does_not_come_up_is_left_to_prefect() -> None:
    """It exits at once (say, its port was taken): stopped, and the API setting left as it was, so
    Prefect starts its own temporary server as it would without us."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    broken = PrefectServer(_process("import sys; sys.exit(3)"), port=9)
    # No server named (this worker may hold the tests' own server in its settings).
    with temporary_settings(restore_defaults={PREFECT_API_URL}), local_prefect(server=broken):
        assert PREFECT_API_URL.value() is None
    assert broken.process.poll() == 3  # it ended by itself: waited for, not stopped


def test_a_server_named_in_prefect_settings_wins() -> None:
    """A profile (not the environment) names a server: ours is stopped, the profile's is used."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    ours = PrefectServer(_process("import time; time.sleep(60)"), port=9)
    with temporary_settings(updates={PREFECT_API_URL: "http://prefect.example:4200/api"}), local_prefect(server=ours):
        assert PREFECT_API_URL.value() == "http://prefect.example:4200/api"
    assert ours.process.poll() is not None
