"""Production configuration, end to end: the real `cdn-daily` flow with everything on S3.

Source, warehouse and reports are prefixes of a bucket on moto's server (reached through
CDNLAKE_S3_ENDPOINT, as MinIO or LocalStack would be), e-mail goes to SES on the same server
(boto3's AWS_ENDPOINT_URL_SESV2), Slack to a local stand-in. Every setting comes from the CDNLAKE_*
environment, as in a deployed run: nothing is passed to the flow but the date.

Read-only working directory: the tests run as root in CI, and root ignores permission bits, so a
chmod proves nothing. Instead the run starts in an empty directory and the test compares that
directory (recursively) and the repository's top level (the Spark JVM's working directory, fixed
when the session started) before and after: nothing may appear there. The run may use the system
temp dir and the configured locations only; the outbox (configured, unused with SES) stays absent.

Spark is the conftest session, given per-bucket s3a options (as tests/test_s3.py does).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from bench.duckdb_reference import hourly_statistics
from cdnlake.demo import generate_days
from cdnlake.runners.local import InProcessRunner
from cdnlake.services import build_services, use_services
from cdnlake.settings import load_settings
from flows import daily
from tests.fake_services import FakeRunner
from tests.moto_endpoint import FAKE_KEYS, client, moto_endpoint

D = dt.date(2024, 6, 9)
ROWS = 1_500
MASTER = "local[2]"
BUCKET = "cdnlake-prod"
SENDER = "cdn-report@example.com"
ROOT = Path(__file__).resolve().parents[1]
CSV_HEADER = ("DATE,TIME,REQUEST_COUNT,HIT_COUNT,MISS_COUNT,ERROR_COUNT,INCOMPLETE_COUNT,HTTP2XX_COUNT,"
              "HTTP3XX_COUNT,HTTP4XX_COUNT,HTTP5XX_COUNT,BYTES_REQUESTED,BYTES_MISSED")  # fmt: skip


class _Slack(BaseHTTPRequestHandler):
    posts: list[bytes]

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        self.posts.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def slack() -> Iterator[tuple[str, list[bytes]]]:
    handler: Any = type("Handler", (_Slack,), {"posts": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/stand-in", handler.posts
    server.shutdown()
    server.server_close()


def snapshot(folder: Path, recursive: bool = True) -> set[str]:
    entries = folder.rglob("*") if recursive else folder.iterdir()
    return {str(p.relative_to(folder)) for p in entries}


def s3_keys(url: str, prefix: str) -> list[str]:
    pages = client("s3", url).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def sent_emails() -> int:
    return len(ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages)


@pytest.fixture(scope="module")
def production(spark: Any, slack: tuple[str, list[bytes]], prefect_server: None,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:  # fmt: skip
    root = tmp_path_factory.mktemp("production")
    generated = generate_days(root / "landing", [D], 1, [ROWS], seed=5, files_per_hour=1)[D]
    cwd = root / "cwd"
    cwd.mkdir()
    with moto_endpoint() as url, pytest.MonkeyPatch.context() as mp:
        s3 = client("s3", url)
        s3.create_bucket(Bucket=BUCKET)
        for path in sorted((root / "landing").rglob("*.gz")):
            s3.upload_file(str(path), BUCKET, f"cloudfront/{path.relative_to(root / 'landing').as_posix()}")
        client("sesv2", url).create_email_identity(EmailIdentity=SENDER)
        hadoop = spark.sparkContext._jsc.hadoopConfiguration()
        options = {"endpoint": url, "endpoint.region": "us-east-1", "path.style.access": "true",
                   "connection.ssl.enabled": "false",
                   "aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
                   "access.key": FAKE_KEYS["AWS_ACCESS_KEY_ID"],
                   "secret.key": FAKE_KEYS["AWS_SECRET_ACCESS_KEY"]}  # fmt: skip
        for key, value in options.items():
            hadoop.set(f"fs.s3a.bucket.{BUCKET}.{key}", value)
        runner = InProcessRunner(MASTER)
        runner._spark = spark  # the conftest session (a runner would otherwise build one from the settings)
        environment = FAKE_KEYS | {
            "CDNLAKE_SOURCE": f"s3://{BUCKET}/cloudfront", "CDNLAKE_WAREHOUSE": f"s3a://{BUCKET}/warehouse",
            "CDNLAKE_REPORTS": f"s3://{BUCKET}/reports", "CDNLAKE_OUTBOX": str(root / "outbox"),
            "CDNLAKE_S3_ENDPOINT": url, "AWS_ENDPOINT_URL_SESV2": url, "CDNLAKE_SES_ENABLED": "true",
            "CDNLAKE_EMAIL_SENDER": SENDER, "CDNLAKE_EMAIL_TO": "ops@example.com",
            "CDNLAKE_SLACK_WEBHOOK_URL": slack[0], "CDNLAKE_SPARK_MASTER": MASTER,
            "CDNLAKE_ENVIRONMENT": "production", "CDNLAKE_LOCK_WAIT_SECONDS": "0",
        }  # fmt: skip
        for key, value in environment.items():
            mp.setenv(key, value)
        for key in [k for k in os.environ if k.startswith("CDNLAKE_") and k not in environment]:
            mp.delenv(key)
        before = {"cwd": snapshot(cwd), "repo": snapshot(ROOT, recursive=False)}
        mp.chdir(cwd)
        try:  # the session's Prefect server (tests/conftest.py), started before `before` was taken
            yield {"url": url, "root": root, "cwd": cwd, "before": before, "generated": generated,
                   "emails_before": sent_emails(), "posts": slack[1], "runner": runner}  # fmt: skip
        finally:
            for key in options:
                hadoop.unset(f"fs.s3a.bucket.{BUCKET}.{key}")


def count_source_lists(mp: pytest.MonkeyPatch) -> list[str]:
    """Every LIST request (V1 or V2) the moto server answers for a prefix under the source, from
    boto3 (the flow) or s3a (a Spark job): the prefixes asked for, in order."""
    from moto.s3.responses import S3Response

    asked: list[str] = []
    for name in ("list_objects", "list_objects_v2"):
        answer = getattr(S3Response, name)

        def counted(self: Any, answer: Any = answer) -> Any:
            prefix = self._get_querystring(self.request, self.uri).get("prefix", [b""])[0] or b""
            prefix = prefix.decode() if isinstance(prefix, bytes) else str(prefix)
            if self.bucket_name == BUCKET and prefix.startswith("cloudfront"):
                asked.append(prefix)
            return answer(self)

        mp.setattr(S3Response, name, counted)
    return asked


@pytest.fixture(scope="module")
def runs(production: dict[str, Any]) -> dict[str, Any]:
    """The daily flow for D, again, then with resend_email; e-mails counted after each.

    The first run is entirely real (its services built from the environment, the Spark runner on
    the conftest session). The re-runs are the real flow too, but their Spark jobs (ingest ..
    reconcile, already proven by the first run on S3) are a fake runner, as in tests/test_flow.py:
    each real Spark stage on s3a costs minutes on a busy 2-core machine, and what the re-runs test
    is the check, report and e-mail stages against S3 and SES.
    """
    result: dict[str, Any] = {"emails": [], "seconds": [], "summaries": [], "source_lists": []}
    real = build_services(load_settings(), runner=production["runner"])  # CDNLAKE_* of the fixture
    for services, resend in ((real, False), (dataclasses.replace(real, runner=FakeRunner()), False),
                             (dataclasses.replace(real, runner=FakeRunner()), True)):  # fmt: skip
        started = time.monotonic()
        with use_services(services), pytest.MonkeyPatch.context() as mp:
            asked = count_source_lists(mp)
            result["summaries"].append(daily.cdn_daily(date=D, resend_email=resend))
        result["source_lists"].append(asked)
        result["seconds"].append(round(time.monotonic() - started, 1))
        result["emails"].append(sent_emails() - production["emails_before"])
    print(f"production runs took {result['seconds']} s")
    return result


def test_the_source_is_listed_once_per_run_on_s3(production: dict[str, Any], runs: dict[str, Any]) -> None:
    """One listing of the source per run (one LIST page: this day has fewer than 1,000 keys), though
    the first run also ingested with real Spark jobs on s3a: they read the run's listing.

    s3a's status probe of each file Spark reads (a LIST for `<key>/`, is it a folder?) enumerates
    nothing; it is told apart, and counted, so a listing through Hadoop (`cloudfront/`) would show."""
    landing = production["root"] / "landing"
    keys = {f"cloudfront/{p.relative_to(landing).as_posix()}" for p in landing.rglob("*.gz")}
    first, *reruns = runs["source_lists"]
    listings = [prefix for prefix in first if prefix.rstrip("/") not in keys]
    probes = len(first) - len(listings)
    print(f"LIST requests under the source in the first run: {len(listings)} listing(s), {probes} file probe(s)")
    assert listings == ["cloudfront"]
    assert reruns == [["cloudfront"], ["cloudfront"]]  # the fake runner reads nothing


def test_exactly_one_email_per_date_unless_resent(runs: dict[str, Any]) -> None:
    assert runs["emails"] == [1, 1, 2]
    first, second, third = (s["email"] for s in runs["summaries"])
    assert first["sent"] and first["via"] == "ses"
    assert not second["sent"] and "already sent" in second["detail"] and second["message_id"] == first["message_id"]
    assert third["sent"] and third["message_id"] != first["message_id"]


def test_outputs_and_ledger_are_on_s3(production: dict[str, Any], runs: dict[str, Any]) -> None:
    reports = s3_keys(production["url"], "reports/")
    assert reports == sorted([f"reports/_email_ledger/{D}/all.json", f"reports/{D}/cdn_report.pdf",
                              f"reports/{D}/cdn_statistics.csv", f"reports/{D}/summary.json"])  # fmt: skip
    assert runs["summaries"][0]["report"]["csv"] == f"s3://{BUCKET}/reports/{D}/cdn_statistics.csv"
    assert s3_keys(production["url"], "warehouse/cdn_logs/_delta_log/")
    lock = client("s3", production["url"]).get_object(Bucket=BUCKET, Key=f"warehouse/_cdnlake_locks/{D}.lock")
    assert json.loads(lock["Body"].read())["state"] == "released"  # the date lock lived on S3 too


def test_csv_on_s3_equals_duckdb_over_the_raw_files(production: dict[str, Any], runs: dict[str, Any]) -> None:
    body = client("s3", production["url"]).get_object(Bucket=BUCKET, Key=f"reports/{D}/cdn_statistics.csv")
    rows = list(csv.reader(io.StringIO(body["Body"].read().decode("utf-8"))))
    assert ",".join(rows[0]) == CSV_HEADER and len(rows) == 73
    got = {(r[0], int(r[1])): [int(x) for x in r[2:]] for r in rows[1:] if r[0] == D.isoformat()}
    expected = {(str(r[0]), int(r[1])): [int(x) for x in r[2:]]
                for r in hourly_statistics(sorted((production["root"] / "landing").rglob("*.gz")))}  # fmt: skip
    assert got == expected and sum(v[0] for v in got.values()) == production["generated"].valid_lines
    assert all(int(x) == 0 for r in rows[1:] if r[0] != D.isoformat() for x in r[2:])  # D-2, D-1: no logs


def test_nothing_written_outside_the_configured_places(production: dict[str, Any], runs: dict[str, Any]) -> None:
    assert snapshot(production["cwd"]) == production["before"]["cwd"] == set()
    assert snapshot(ROOT, recursive=False) == production["before"]["repo"]
    assert not (production["root"] / "outbox").exists()  # SES is on: no .eml anywhere
    assert any(b"COMPLETE cdn-daily" in post for post in production["posts"])


def test_weekly_cache_miss_flow_writes_its_outputs_to_s3(production: dict[str, Any], runs: dict[str, Any]) -> None:
    from flows.weekly import cdn_weekly_misses

    with use_services(build_services(load_settings(), runner=production["runner"])):  # the shared session
        result = cdn_weekly_misses(end=D)
    prefix = f"reports/misses/{D - dt.timedelta(days=6)}_{D}/"
    names = ("miss_report.pdf", "miss_rules.csv", "top_missed_objects.csv")
    assert s3_keys(production["url"], prefix) == [f"{prefix}{name}" for name in names]
    assert result["outputs"]["miss_rules.csv"] == f"s3://{BUCKET}/{prefix}miss_rules.csv"
    assert snapshot(production["cwd"]) == set()
