"""The Spark jobs against S3 for real: moto's S3 server on 127.0.0.1, reached through s3a.

A generated day is uploaded under `landing/`, ingested and aggregated with `s3://` and `s3a://`
locations, and read back from S3 with delta-rs (a reader independent of Spark); the expected
figures are DuckDB's, computed from the local copies of the same gz files. Then S3 goes away in
the middle of a re-run: the ingest must fail with an error naming the location, and the tables
must be exactly as before (no new Delta version, no stray objects).

The tests share the conftest's SparkSession, so nothing is set in its environment: every s3a
setting (endpoint, path style, plain HTTP, static fake keys, short retries) is a per-bucket
Hadoop option (`fs.s3a.bucket.<name>.*`) on the running context, for the test buckets only.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from deltalake import DeltaTable
from moto.server import ThreadedMotoServer

from bench.duckdb_reference import hourly_statistics
from cdnlake import locks
from cdnlake.runners.local import summarize_spark_error
from cdnlake.sample_logs import GenerationResult, generate_logs
from cdnlake.services import build_services
from cdnlake.settings import load_settings
from spark_jobs import aggregate, ingest
from spark_jobs.params import IngestParams
from tests.samples import build_landing

D = dt.date(2024, 5, 1)
ROWS = 2_000
KEYS = {"access.key": "testing-key", "secret.key": "testing-secret"}
# The 11 measures of the CSV (SPEC section 3), in bench/duckdb_reference.py's order.
CSV_MEASURES = (
    "request_count", "hit_count", "miss_count", "error_count", "incomplete_count", "http2xx_count",
    "http3xx_count", "http4xx_count", "http5xx_count", "bytes_requested", "bytes_missed",
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Endpoint:
    """A moto S3 server that can go down and come back on the same port (moto's state lives in
    this process, so the buckets survive a restart)."""

    port: int = field(default_factory=free_port)
    server: ThreadedMotoServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            # stop() only leaves the accept loop; closing the socket makes new connections fail
            # at once (refused), as with an endpoint that is really gone.
            self.server._server.server_close()  # type: ignore[union-attr]
            self.server = None

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id=KEYS["access.key"], aws_secret_access_key=KEYS["secret.key"])  # fmt: skip


class S3:
    """Two endpoints over the same moto state, and per-bucket s3a settings on the Spark context."""

    def __init__(self, spark: Any) -> None:
        self.spark = spark
        self.up, self.flaky = Endpoint(), Endpoint()
        self.buckets: list[str] = []

    def bucket(self, name: str, endpoint: Endpoint, **extra: str) -> str:
        endpoint.client().create_bucket(Bucket=name)
        conf = self.spark.sparkContext._jsc.hadoopConfiguration()
        options = {"endpoint": endpoint.url, "endpoint.region": "us-east-1", "path.style.access": "true",
                   "connection.ssl.enabled": "false",
                   "aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
                   **KEYS, **extra}  # fmt: skip
        for key, value in options.items():
            conf.set(f"fs.s3a.bucket.{name}.{key}", value)
        self.buckets.append(name)
        return name

    def forget_connections(self, bucket: str) -> None:
        """Close the bucket's cached S3AFileSystem (and its pooled connections); the next use
        opens a new one. Kept-alive connections would otherwise outlive a stopped server."""
        jvm = self.spark.sparkContext._jvm
        conf = self.spark.sparkContext._jsc.hadoopConfiguration()
        jvm.org.apache.hadoop.fs.FileSystem.get(jvm.java.net.URI(f"s3a://{bucket}/"), conf).close()

    def close(self) -> None:
        conf = self.spark.sparkContext._jsc.hadoopConfiguration()
        for bucket in self.buckets:
            self.forget_connections(bucket)
            for entry in list(conf.getPropsWithPrefix(f"fs.s3a.bucket.{bucket}.").keySet().toArray()):
                conf.unset(f"fs.s3a.bucket.{bucket}.{entry}")


def delta(endpoint: Endpoint, uri: str) -> DeltaTable:
    """A Delta table on the moto endpoint, read by delta-rs (no Spark, no Hadoop)."""
    return DeltaTable(uri.replace("s3a://", "s3://", 1), storage_options={
        "AWS_ENDPOINT_URL": endpoint.url, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": KEYS["access.key"], "AWS_SECRET_ACCESS_KEY": KEYS["secret.key"]})  # fmt: skip


def upload(endpoint: Endpoint, bucket: str, local: Path, prefix: str) -> list[str]:
    client = endpoint.client()
    keys = []
    for path in sorted(local.rglob("*.gz")):
        keys.append(f"{prefix}/{path.relative_to(local).as_posix()}")
        client.upload_file(str(path), bucket, keys[-1])
    return keys


def objects(endpoint: Endpoint, bucket: str, prefix: str) -> dict[str, str]:
    """{key: etag} of every object under prefix."""
    found = {}
    for page in endpoint.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found |= {o["Key"]: o["ETag"] for o in page.get("Contents", [])}
    return found


def run_ingest(spark: Any, date: dt.date | str, source: str, warehouse: str) -> dict[str, Any]:
    args = ["--date", str(date), "--source", source, "--warehouse", warehouse]
    return ingest.run(spark, IngestParams.from_namespace(ingest.build_parser().parse_args(args)))


@pytest.fixture(scope="module")
def s3(spark: Any) -> Iterator[S3]:
    store = S3(spark)
    store.up.start()
    store.flaky.start()
    try:
        yield store
    finally:
        store.close()
        store.up.stop()
        store.flaky.stop()


@pytest.fixture(scope="module")
def day(s3: S3, spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One generated day (2 distributions, one file per distribution and hour) ingested from S3
    and aggregated, with the locations written both ways."""
    local = tmp_path_factory.mktemp("s3-day") / "landing"
    generated = generate_logs(D, 2, ROWS, seed=7, out_dir=local, files_per_hour=1)
    bucket = s3.bucket("cdnlake-e2e", s3.up)
    keys = upload(s3.up, bucket, local, "cloudfront/landing")
    # s3:// for the source, s3a:// for the warehouse; aggregate is given s3:// for the same tables.
    ingested = run_ingest(spark, D, f"s3://{bucket}/cloudfront/landing", f"s3a://{bucket}/warehouse")
    args = aggregate.build_parser().parse_args(["--date", D.isoformat(), "--warehouse", f"s3://{bucket}/warehouse"])
    stats = aggregate.run(spark, args)
    return {"bucket": bucket, "local": local, "generated": generated, "keys": keys, "ingest": ingested,
            "stats": stats}  # fmt: skip


def test_ingest_from_s3_accounts_for_every_line(s3: S3, day: dict[str, Any]) -> None:
    generated: GenerationResult = day["generated"]
    result, bucket = day["ingest"], day["bucket"]
    assert result["files"] == len(day["keys"]) == 48
    assert (result["lines_read"], result["loaded"], result["rejected"]) == (
        generated.lines_written, generated.valid_lines, generated.malformed_lines)  # fmt: skip
    assert generated.malformed_lines > 0  # the reject path ran too

    # Read back from S3 by delta-rs: one row per valid line, each naming its S3 object.
    logs = delta(s3.up, f"s3://{bucket}/warehouse/cdn_logs").to_pandas(columns=["source_file", "distro", "dt"])
    assert len(logs) == generated.valid_lines
    assert set(logs["dt"]) == {D.isoformat()}
    assert set(logs["distro"]) == {d.lower() for d in generated.distribution_ids}
    assert set(logs["source_file"]) <= {f"s3a://{bucket}/{k}" for k in day["keys"]}
    files = delta(s3.up, f"s3a://{bucket}/warehouse/ingest_files").to_pandas()
    assert len(files) == 48 and int(files["lines_read"].sum()) == generated.lines_written
    assert (files["lines_read"] == files["loaded"] + files["rejected"]).all()
    rejects = delta(s3.up, f"s3://{bucket}/warehouse/cdn_logs_rejects").to_pandas(columns=["reason"])
    assert len(rejects) == generated.malformed_lines


def test_hourly_statistics_on_s3_equal_duckdb_over_the_raw_files(s3: S3, day: dict[str, Any]) -> None:
    expected = {(str(r[0]), int(r[1])): [int(x) for x in r[2:]]
                for r in hourly_statistics(sorted(day["local"].rglob("*.gz")))}  # fmt: skip
    assert len(expected) == 24
    hourly = delta(s3.up, f"s3://{day['bucket']}/warehouse/stats_hourly").to_pandas()
    summed = hourly.groupby(["dt", "hour"])[list(CSV_MEASURES)].sum()
    got = {(str(k[0]), int(k[1])): [int(v) for v in row] for k, row in zip(summed.index, summed.values, strict=True)}
    assert got == expected
    assert sum(v[0] for v in got.values()) == day["generated"].valid_lines
    assert day["stats"]["dates"] == [D.isoformat()] and day["stats"]["rows"]["stats_hourly"] == 48


def test_the_next_day_reads_the_statistics_digests_back_from_s3(s3: S3, spark: Any, day: dict[str, Any]) -> None:
    """The statistics commits remember their cdn_logs files (spark_jobs/stats_sources.py): the next
    day's run reads that back through s3a (written through s3://) and leaves D unscanned."""
    nxt = (D + dt.timedelta(days=1)).isoformat()
    args = aggregate.build_parser().parse_args(["--date", nxt, "--warehouse", f"s3a://{day['bucket']}/warehouse"])
    result = aggregate.run(spark, args)
    assert (result["dates"], result["unchanged"], sorted(result["raw_totals"])) == ([], [D.isoformat()], [nxt])
    hourly = delta(s3.up, f"s3://{day['bucket']}/warehouse/stats_hourly").to_pandas()
    assert len(hourly) == 48 and int(hourly["request_count"].sum()) == day["generated"].valid_lines


def test_spark_reads_the_s3_tables_through_the_s3_scheme(spark: Any, day: dict[str, Any]) -> None:
    """fs.s3.impl maps s3:// to S3A (session.py), so plain s3:// paths work in Spark too."""
    logs = spark.read.format("delta").load(f"s3://{day['bucket']}/warehouse/cdn_logs")
    per_distro = {r["distro"]: r["count"] for r in logs.groupBy("distro").count().collect()}
    assert per_distro == {d: v["loaded"] for d, v in day["ingest"]["per_distro"].items()}
    assert sum(per_distro.values()) == day["generated"].valid_lines


@pytest.mark.parametrize("down", ["source and warehouse", "warehouse only"])
def test_s3_outage_fails_clearly_and_leaves_the_tables_unchanged(s3: S3, spark: Any, tmp_path: Path, down: str) -> None:
    """The flaky endpoint stops before a re-run of a loaded date. With everything on it the
    listing fails; with the source still reachable, the files are read and parsed and the
    failure comes when the tables are written. Either way nothing changes in the warehouse."""
    short = {"attempts.maximum": "1", "retry.limit": "1", "retry.interval": "10ms",
             "retry.throttle.limit": "1", "connection.establish.timeout": "2s", "connection.timeout": "5s"}  # fmt: skip
    tag = "all" if down == "source and warehouse" else "wh"
    warehouse_bucket = s3.bucket(f"cdnlake-outage-{tag}", s3.flaky, **short)
    source_bucket = warehouse_bucket if tag == "all" else s3.bucket(f"cdnlake-outage-{tag}-src", s3.up, **short)
    build_landing(tmp_path / "landing")
    upload(s3.up, source_bucket, tmp_path / "landing", "landing")
    source, warehouse = f"s3a://{source_bucket}/landing", f"s3a://{warehouse_bucket}/warehouse"
    first = run_ingest(spark, "2019-12-04", source, warehouse)
    assert (first["loaded"], first["rejected"]) == (5, 0)
    before = objects(s3.flaky, warehouse_bucket, "warehouse/")
    version = delta(s3.flaky, f"{warehouse}/cdn_logs").version()

    s3.flaky.stop()
    s3.forget_connections(warehouse_bucket)
    try:
        started = time.monotonic()
        with pytest.raises(Exception) as failure:  # noqa: B017 - py4j wraps the Java exception
            run_ingest(spark, "2019-12-04", source, warehouse)
        elapsed = time.monotonic() - started
    finally:
        s3.flaky.start()
    message = str(failure.value)
    # The error names what could not be reached and why, and comes quickly with short retries.
    assert f"s3a://{warehouse_bucket}/" in message, message[:2000]
    assert "Connection refused" in message or "Unable to execute HTTP request" in message, message[:2000]
    assert elapsed < 60
    # What the operator sees (the runner's JobFailedError, Slack, the flow's failure): one line.
    summary = summarize_spark_error(failure.value)
    assert "\n" not in summary and f"s3a://{warehouse_bucket}/" in summary, summary
    assert "Connection refused" in summary or "Unable to execute HTTP request" in summary, summary

    # Back up: the same objects (no new log entry, no orphan data file) and the same version.
    assert objects(s3.flaky, warehouse_bucket, "warehouse/") == before
    table = delta(s3.flaky, f"{warehouse}/cdn_logs")
    assert table.version() == version
    assert len(table.to_pandas(columns=["line_no"])) == 5


def test_the_flow_lists_and_publishes_through_the_s3_endpoint(
    s3: S3, day: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flow's own S3 calls (source listing, report upload, date lock) go to CDNLAKE_S3_ENDPOINT
    as the Spark jobs do; without it they would ask AWS for a bucket that exists only here."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEYS["access.key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEYS["secret.key"])
    bucket = day["bucket"]
    settings = load_settings(env={"CDNLAKE_SOURCE": f"s3://{bucket}/cloudfront/landing",
                                  "CDNLAKE_WAREHOUSE": f"s3a://{bucket}/warehouse",
                                  "CDNLAKE_REPORTS": f"s3://{bucket}/reports",
                                  "CDNLAKE_S3_ENDPOINT": s3.up.url})  # fmt: skip

    services = build_services(settings)
    listed = services.source.list({D})
    assert sorted(f.uri for f in listed) == sorted(f"s3://{bucket}/{key}" for key in day["keys"])

    store = services.reports
    store.write(f"{D}/cdn_statistics.csv", b"DATE,TIME\n")
    assert store.uri(f"{D}/cdn_statistics.csv") == f"s3://{bucket}/reports/{D}/cdn_statistics.csv"
    assert f"reports/{D}/cdn_statistics.csv" in objects(s3.up, bucket, "reports/")

    with locks.date_locks(settings, [D], run_id="endpoint-test"):
        assert f"warehouse/_cdnlake_locks/{D}.lock" in objects(s3.up, bucket, "warehouse/_cdnlake_locks/")
    released = s3.up.client().get_object(Bucket=bucket, Key=f"warehouse/_cdnlake_locks/{D}.lock")["Body"].read()
    assert b'"state": "released"' in released  # released by a conditional write, never deleted
