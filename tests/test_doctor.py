"""`cdnlake doctor`: each check's line, S3 through a moto server, Prefect through a local HTTP server."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from cdnlake import cli, doctor
from cdnlake.integrations.aws import s3_client
from cdnlake.settings import ConfigError, load_settings
from reporting.fonts import packaged_cjk_font
from spark_jobs.session import JavaNotFoundError

KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    url = f"http://127.0.0.1:{server._port}"
    boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket="lake")  # fmt: skip
    yield url
    server.stop()


class Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - http.server's API name
        self.send_response(self.status if self.path == "/api/health" else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def prefect_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api"
    server.shutdown()
    server.server_close()


def machine(settings: Any, **changes: Any) -> doctor.Machine:
    """Java, jars and credentials as on a ready machine; S3 and the font are the real ones."""
    values: dict[str, Any] = {
        "java_version": lambda: 17, "cached_jars": lambda packages: "file:///a.jar,file:///b.jar",
        "jar_packages": ["io.delta:delta-spark_4.1_2.13:4.4.0"], "font_file": packaged_cjk_font(),
        "s3_client": lambda: s3_client(settings), "aws_credentials": lambda: object(), "prefect_api_url": None,
        "class_archive": lambda jars: Path(__file__),  # a file that exists
    }  # fmt: skip
    return doctor.Machine(**(values | changes))


def lines_of(settings: Any, m: doctor.Machine) -> tuple[int, dict[str, str]]:
    out = io.StringIO()
    code = doctor.report(doctor.run_checks(settings, m), out)
    rows = [line for line in out.getvalue().splitlines() if line and not line.startswith(("all ", "1 ", "2 ", "3 "))]
    return code, {line[6:29].strip(): line for line in rows}


def test_ready_machine_with_s3_warehouse_through_the_endpoint(tmp_path: Path, moto_endpoint: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    for key, value in KEYS.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "landing").mkdir()
    settings = load_settings(env={"CDNLAKE_SOURCE": str(tmp_path / "landing"), "CDNLAKE_WAREHOUSE": "s3://lake/wh",
                                  "CDNLAKE_REPORTS": str(tmp_path / "reports"), "CDNLAKE_LOG_DIR": str(tmp_path),
                                  "CDNLAKE_OUTBOX": str(tmp_path), "CDNLAKE_S3_ENDPOINT": moto_endpoint})  # fmt: skip
    code, lines = lines_of(settings, machine(settings))
    assert code == 0
    assert list(lines) == ["Java", "Spark/Delta jars", "Spark class archive", "CJK font", "S3 endpoint", "source",
                           "warehouse", "reports", "logs", "outbox", "AWS credentials", "SES e-mail", "Slack",
                           "Prefect API"]  # fmt: skip
    assert all(line.startswith("ok ") for line in lines.values()), lines
    assert lines["warehouse"].endswith("s3://lake/wh (readable, writable)")
    assert lines["reports"].endswith("(does not exist yet: it will be created)")
    assert lines["Spark/Delta jars"].endswith("2 jars resolved for io.delta:delta-spark_4.1_2.13:4.4.0")
    assert lines["Spark class archive"].endswith(f"local Spark starts map {Path(__file__)}")
    listing = s3_client(settings).list_objects_v2(Bucket="lake")
    assert listing["KeyCount"] == 0  # the write probe was deleted


def test_missing_bucket_and_dead_endpoint_fail_with_the_cause(tmp_path: Path, moto_endpoint: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    for key, value in KEYS.items():
        monkeypatch.setenv(key, value)
    env = {
        "CDNLAKE_SOURCE": str(tmp_path),
        "CDNLAKE_WAREHOUSE": "s3://nobucket/wh",
        "CDNLAKE_REPORTS": str(tmp_path),
        "CDNLAKE_LOG_DIR": str(tmp_path),
        "CDNLAKE_OUTBOX": str(tmp_path),
        "CDNLAKE_S3_ENDPOINT": moto_endpoint,
    }
    settings = load_settings(env=env)
    code, lines = lines_of(settings, machine(settings))
    assert code == 1
    assert lines["warehouse"].startswith("FAIL") and "NoSuchBucket" in lines["warehouse"]
    dead = load_settings(env=env | {"CDNLAKE_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}"})
    code, lines = lines_of(dead, machine(dead))
    assert code == 1
    assert lines["S3 endpoint"].startswith("FAIL") and "EndpointConnectionError" in lines["S3 endpoint"]


def test_missing_java_jars_font_and_credentials_say_what_to_do(tmp_path: Path) -> None:
    def no_java() -> int:
        raise JavaNotFoundError("Java was not found: Spark 4 needs Java 17 or newer. Install it")

    bogus = tmp_path / "bogus.ttf"
    bogus.write_bytes(b"not a font")
    settings = load_settings(env={"CDNLAKE_SOURCE": str(tmp_path), "CDNLAKE_WAREHOUSE": str(tmp_path),
                                  "CDNLAKE_REPORTS": str(tmp_path), "CDNLAKE_LOG_DIR": str(tmp_path),
                                  "CDNLAKE_OUTBOX": str(tmp_path), "CDNLAKE_SES_ENABLED": "true"})  # fmt: skip
    m = machine(settings, java_version=no_java, cached_jars=lambda packages: None, font_file=None,
                aws_credentials=lambda: None)  # fmt: skip
    code, lines = lines_of(settings, m)
    assert code == 1
    assert lines["Java"].startswith("FAIL") and "Install it" in lines["Java"]
    assert lines["Spark/Delta jars"].startswith("FAIL") and "make install" in lines["Spark/Delta jars"]
    assert lines["CJK font"].startswith("FAIL") and "make install" in lines["CJK font"]
    assert lines["AWS credentials"].startswith("FAIL") and "AWS_PROFILE" in lines["AWS credentials"]
    assert "outbox" not in lines  # SES on: nothing is written to the outbox
    assert doctor.check_font(bogus).status == "FAIL"
    # No jars, so no archive yet: a warning, never a failure (it only makes Spark start sooner).
    assert lines["Spark class archive"].startswith("warn") and "make install" in lines["Spark class archive"]
    missing = doctor.check_class_archive("file:///a.jar", lambda jars: tmp_path / "cdnlake-classes-0.jsa")
    assert missing.status == "warn" and "run `make install`" in missing.detail


def test_local_folders(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    assert doctor._local_folder("warehouse", str(tmp_path / "a-file" / "wh"), write=True).status == "FAIL"
    assert doctor._local_folder("source", str(tmp_path / "missing"), write=False).status == "warn"
    ok = doctor._local_folder("reports", str(tmp_path), write=True)
    assert ok.status == "ok" and list(tmp_path.glob(".cdnlake-doctor-*")) == []


def test_ses_slack_and_prefect(prefect_api: str) -> None:
    assert doctor.check_ses(True, "not-an-address", ("ops@example.com",), "us-east-1", "o").status == "FAIL"
    assert doctor.check_ses(True, "cdn@example.com", ("ops@example.com",), "ap-northeast-1", "o").status == "ok"
    webhook = "https://hooks.slack.com/services/T0/B0/secretvalue"
    slack = doctor.check_slack(webhook)
    assert slack.status == "ok" and "secretvalue" not in doctor.format_check(slack)
    assert doctor.check_slack("https://example.com/hook").status == "warn"
    assert doctor.check_prefect(prefect_api).status == "ok"
    Health.status = 503
    try:
        failed = doctor.check_prefect(prefect_api)
    finally:
        Health.status = 200
    assert failed.status == "FAIL" and "HTTP 503" in failed.detail
    dead = doctor.check_prefect(f"http://127.0.0.1:{free_port()}/api")
    assert dead.status == "FAIL" and "prefect server start" in dead.detail


def test_cli_prints_one_line_per_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["doctor", "--source", str(tmp_path), "--warehouse", str(tmp_path), "--reports", str(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    checks = [line for line in out[:-2]]
    assert len(checks) == 14 and out[-2] == ""
    assert code == (1 if any(line.startswith("FAIL") for line in checks) else 0)
    assert out[-1] == ("all checks passed" if code == 0 else out[-1])


def test_log_dir_must_be_local() -> None:
    with pytest.raises(ConfigError, match="CDNLAKE_LOG_DIR"):
        load_settings(env={"CDNLAKE_LOG_DIR": "s3://bucket/logs"})
