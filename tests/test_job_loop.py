"""spark_jobs/job_loop.py against real Spark: the run folder's requests served by one session.

The loop runs in a thread of this process on the tests' SparkSession (its driver), the
orchestrator's side is a Store (local folder, or moto's S3 server while the loop reads it through
s3a), as on Kubernetes where the flow's pod and the driver pod share only the warehouse.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F

from cdnlake.runners.k8s_run import RunTiming, shared_application
from cdnlake.runners.kubernetes import KubernetesRunner
from cdnlake.storage import LocalStore, S3Store, Store
from spark_jobs import compact
from spark_jobs.job_loop import LoopTiming, serve
from spark_jobs.params import CompactParams
from tests.moto_endpoint import FAKE_KEYS, client, moto_endpoint

DAY = dt.date(2024, 5, 1)
FAST = LoopTiming(idle_timeout_s=120, poll_s=0.05)


def crowded_warehouse(spark: Any, root: Path) -> str:
    """cdn_logs with 3 files in distro e1 of DAY: compact (max 2 files) rewrites them into 1."""
    rows = spark.range(30).select(F.lit("e1").alias("distro"), F.lit(DAY.isoformat()).alias("dt"), F.col("id"))
    rows.repartition(3).write.format("delta").partitionBy("distro", "dt").save(str(root / "cdn_logs"))
    return str(root)


class Loop:
    """serve() in a thread; `ask` writes a request as the orchestrator does and waits for its result."""

    def __init__(self, spark: Any, store: Store, folder: str, timing: LoopTiming = FAST) -> None:
        self.store, self.folder, self.summary = store, folder, None
        self.thread = threading.Thread(target=self._serve, args=(spark, store.uri(folder), timing), daemon=True)
        self.thread.start()

    def _serve(self, spark: Any, uri: str, timing: LoopTiming) -> None:
        self.summary = serve(spark, uri, timing)

    def ask(self, number: int, request: dict[str, Any], timeout_s: float = 180) -> dict[str, Any]:
        self.store.create(f"{self.folder}/{number:04d}.request.json", json.dumps(request).encode())
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.store.read(f"{self.folder}/{number:04d}.result.json")
            if found is not None:
                return dict(json.loads(found))
            time.sleep(0.05)
        raise AssertionError(f"no result for request {number}")

    def finish(self, timeout_s: float = 60) -> dict[str, Any]:
        self.store.write(f"{self.folder}/done", b"")
        self.thread.join(timeout_s)
        assert not self.thread.is_alive() and self.summary is not None
        return self.summary


def without_seconds(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "seconds"}


def test_the_loop_serves_requests_in_order_goes_on_after_errors_and_stops_on_done(spark: Any, tmp_path: Path) -> None:
    warehouse = crowded_warehouse(spark, tmp_path / "wh")
    store = LocalStore(tmp_path / "wh" / "_cdnlake_runs")
    loop = Loop(spark, store, "cdnlake-run-t1")
    argv = CompactParams(DAY, warehouse, max_files=2).to_argv()
    first = loop.ask(1, {"job": "compact", "argv": argv})
    assert first["ok"] is True
    assert first["result"]["tables"]["cdn_logs"] == {"files_added": 1, "files_removed": 3}
    assert first["result"]["files_per_partition"] == {"e1": 1}
    unknown = loop.ask(2, {"job": "drop_everything", "argv": []})
    assert (unknown["ok"], unknown["error_type"]) == (False, "ValueError") and "drop_everything" in unknown["error"]
    invalid = loop.ask(3, {"job": "compact", "argv": ["--date", "2024-13-01", "--warehouse", warehouse]})
    assert (invalid["ok"], invalid["error_type"]) == (False, "ValueError") and "invalid arguments" in invalid["error"]
    second = loop.ask(4, {"job": "compact", "argv": argv})  # the loop is still serving
    assert second["ok"] is True and second["result"]["tables"]["cdn_logs"] == {"files_added": 0, "files_removed": 0}
    assert loop.finish() == {"reason": "done", "served": 4}
    # The same job in-process (what InProcessRunner.run_job calls) returns the same result.
    expected = compact.run(spark, CompactParams(DAY, warehouse, max_files=2))
    assert without_seconds(second["result"]) == without_seconds(expected)
    folder = tmp_path / "wh" / "_cdnlake_runs" / "cdnlake-run-t1"
    assert json.loads((folder / "exit.json").read_text()) == {"reason": "done", "served": 4}
    assert json.loads((folder / "started.json").read_text())["spark"] == spark.version
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]  # results written via a rename


def test_a_spark_error_comes_back_as_one_line(spark: Any, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "runs")
    (tmp_path / "wh" / "cdn_logs" / "_delta_log").mkdir(parents=True)
    (tmp_path / "wh" / "cdn_logs" / "_delta_log" / "00000000000000000000.json").write_text("not a delta log\n")
    loop = Loop(spark, store, "r")
    failed = loop.ask(1, {"job": "compact", "argv": CompactParams(DAY, str(tmp_path / "wh")).to_argv()})
    assert (failed["ok"], failed["error_type"]) == (False, "Py4JJavaError")
    # The JVM's stack trace (hundreds of lines) comes back as the outer error and its root cause.
    assert "\n" not in failed["error"] and "(cause: com.fasterxml.jackson.core.JsonParseException" in failed["error"]
    assert loop.finish()["served"] == 1


def test_the_loop_stops_by_itself_when_no_request_comes(spark: Any, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "runs")
    started = time.monotonic()
    summary = serve(spark, store.uri("idle"), LoopTiming(idle_timeout_s=0.3, poll_s=0.05))
    assert summary == {"reason": "idle for 0.3s", "served": 0} and time.monotonic() - started < 30
    assert json.loads(store.read("idle/exit.json") or b"") == summary


@pytest.fixture
def s3_runs(spark: Any) -> Iterator[S3Store]:
    """A bucket on moto's S3 server: s3a settings for it on the tests' Spark, a boto3 Store for the other side."""
    bucket = "loop-runs"
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    options = {"endpoint": "", "endpoint.region": "us-east-1", "path.style.access": "true",
               "connection.ssl.enabled": "false", "access.key": FAKE_KEYS["AWS_ACCESS_KEY_ID"],
               "secret.key": FAKE_KEYS["AWS_SECRET_ACCESS_KEY"],
               "aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"}  # fmt: skip
    with moto_endpoint(bucket) as url:
        for key, value in (options | {"endpoint": url}).items():
            conf.set(f"fs.s3a.bucket.{bucket}.{key}", value)
        try:
            yield S3Store(client("s3", url), f"s3a://{bucket}/warehouse/_cdnlake_runs")
        finally:
            jvm = spark.sparkContext._jvm
            jvm.org.apache.hadoop.fs.FileSystem.get(jvm.java.net.URI(f"s3a://{bucket}/"), conf).close()
            for key in options:
                conf.unset(f"fs.s3a.bucket.{bucket}.{key}")


def test_the_run_folder_on_s3_through_s3a(spark: Any, tmp_path: Path, s3_runs: S3Store) -> None:
    loop = Loop(spark, s3_runs, "cdnlake-run-s3")
    # What travels is the point here: a job with nothing to do (an empty warehouse) keeps it quick.
    result = loop.ask(1, {"job": "compact", "argv": CompactParams(DAY, str(tmp_path / "empty")).to_argv()})
    assert result["ok"] and result["result"]["date"] == "2024-05-01" and result["result"]["tables"] == {}
    assert loop.finish() == {"reason": "done", "served": 1}
    keys = s3_runs.list("cdnlake-run-s3")
    assert "cdnlake-run-s3/exit.json" in keys and not [k for k in keys if k.endswith(".tmp")]


class LoopOperator:
    """A Spark Operator whose driver is serve() in a thread of this process: the real loop behind the runner."""

    def __init__(self, spark: Any) -> None:
        self.spark = spark
        self.created: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.threads: dict[str, threading.Thread] = {}

    def create_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, body: Any) -> Any:
        self.created.append(body)
        args = body["spec"]["arguments"]
        thread = threading.Thread(target=serve, args=(self.spark, args[args.index("--run-folder") + 1], FAST),
                                  daemon=True)  # fmt: skip
        self.threads[body["metadata"]["name"]] = thread
        thread.start()
        return body

    def get_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str) -> Any:
        state = "RUNNING" if self.threads[name].is_alive() else "COMPLETED"
        return {"status": {"applicationState": {"state": state}, "driverInfo": {"podName": f"{name}-driver"}}}

    def delete_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str) -> Any:
        self.deleted.append(name)


def test_the_kubernetes_runner_and_the_loop_together(spark: Any, tmp_path: Path) -> None:
    api = LoopOperator(spark)
    store = LocalStore(tmp_path / "wh" / "_cdnlake_runs")
    runner = KubernetesRunner(api, None, "cdnlake", "img:1", "cdnlake-spark", 1, 300, poll_s=0.2,
                              runs_store=lambda: store)  # fmt: skip
    # Jobs with nothing to do (no tables yet): the real work is test_the_loop_serves_requests_..., this is the wiring.
    dates = [DAY, DAY + dt.timedelta(days=1)]
    with shared_application(runner, "e2e", RunTiming(result_poll_s=0.05, stop_timeout_s=30)) as app:
        results = [runner.run_job(CompactParams(d, str(tmp_path / "wh"))) for d in dates]
    assert len(api.created) == 1 and api.deleted == [app.name]
    assert [without_seconds(r) for r in results] == [
        {"date": "2024-05-01", "tables": {}},
        {"date": "2024-05-02", "tables": {}},
    ]
    assert not api.threads[app.name].is_alive()  # `done` ended the driver before the delete
    assert json.loads(store.read(f"{app.name}/exit.json") or b"") == {"reason": "done", "served": 2}


def test_the_entry_point_as_spark_submit_starts_it(tmp_path: Path) -> None:
    """`python -m spark_jobs.job_loop` in its own local[1] driver: a queued request, then `done`."""
    from tests.test_faults import ROOT, job_env

    store = LocalStore(tmp_path / "runs")
    request = {"job": "compact", "argv": CompactParams(DAY, str(tmp_path / "empty")).to_argv()}
    store.create("app/0001.request.json", json.dumps(request).encode())
    store.write("app/done", b"")  # queued requests are served before `done` is honoured
    done = subprocess.run([sys.executable, "-m", "spark_jobs.job_loop", "--run-folder", store.uri("app")], cwd=ROOT,
                          env=job_env(), capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"reason": "done", "served": 1}
    result = json.loads(store.read("app/0001.result.json") or b"")
    assert result["ok"] and result["result"]["tables"] == {}
    assert "spark_jobs.job_loop: request 0001: compact --date 2024-05-01" in done.stderr  # the driver log's line
