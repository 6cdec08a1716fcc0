"""The distributed path for real: a Spark standalone master and worker, the ingest job on them.

The cluster runs from the pyspark install (SPARK_HOME = the pyspark package). The job's driver
runs in a subprocess because this test process already holds the shared local SparkContext
(tests/conftest.py) and a JVM allows only one. Jars come from the local Ivy cache through
spark.jars.packages; executors fetch them from the driver.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyspark
import pytest

from tests.samples import build_landing

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[1]
SPARK_HOME = Path(pyspark.__file__).parent
APP_NAME = "cdnlake-cluster-test"
# Four short-lived JVMs share a small machine: the quick C1 compiler and the serial collector
# cut the CPU they burn warming up (this tests the wiring, not JIT throughput).
JAVA_OPTS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"

# The job as flows/runner.py's in-process runner runs it, but against the spark:// master. Only the
# Delta package is requested: the data is local, and hadoop-aws would make every executor copy the
# ~600 MB AWS SDK bundle from the driver, which alone takes minutes here.
DRIVER = """
import json, sys
from spark_jobs import ingest
from spark_jobs.session import build_session, jar_packages

master, app_name, java_opts, source, warehouse, *dates = sys.argv[1:]
delta = [p for p in jar_packages() if p.startswith("io.delta:")]
spark = build_session(master, app_name=app_name, extra_conf={
    "spark.jars.packages": ",".join(delta), "spark.executor.memory": "768m", "spark.executor.cores": "1",
    "spark.cores.max": "1", "spark.driver.memory": "1g", "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2", "spark.ui.enabled": "false",
    "spark.driver.extraJavaOptions": java_opts, "spark.executor.extraJavaOptions": java_opts})
results = {}
for date in dates:
    args = ingest.build_parser().parse_args(["--date", date, "--source", source, "--warehouse", warehouse])
    results[date] = ingest.run(spark, args)
executors = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1  # minus the driver
spark.stop()
print(json.dumps({"results": results, "executors": executors}, default=str))
"""


@dataclass
class Cluster:
    url: str
    ui: str
    work_dir: Path
    env: dict[str, str]

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.ui}/json/", timeout=5) as response:
            return dict(json.load(response))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            assert proc.poll() is None, f"{proc.args[1]} exited with {proc.returncode} while waiting for {what}"
        try:
            if check():
                return
        except OSError:  # the UI is not listening yet
            pass
        time.sleep(1)
    raise TimeoutError(f"no {what} after {timeout:.0f}s")


def start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    # A session of its own, so the finalizer can stop the JVM and whatever it started, and only that.
    with log.open("wb") as out:
        return subprocess.Popen([str(SPARK_HOME / "bin" / "spark-class"), *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    port, ui, worker_ui = free_port(), free_port(), free_port()
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_LOG_DIR": str(root / "logs"), "PYSPARK_PYTHON": sys.executable, "SPARK_DAEMON_JAVA_OPTS": JAVA_OPTS,
           # Executors' Python workers import spark_jobs (mapInArrow functions) from this checkout.
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    env.pop("SPARK_CONF_DIR", None)
    work_dir = root / "work"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        url = f"spark://127.0.0.1:{port}"
        # Started together: the worker retries until the master listens, which saves a JVM start-up.
        procs.append(start(env, root / "master.log", "org.apache.spark.deploy.master.Master",
                           "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui)))  # fmt: skip
        procs.append(start(env, root / "worker.log", "org.apache.spark.deploy.worker.Worker", url,
                           "--host", "127.0.0.1", "--cores", "1", "--memory", "1g",
                           "--webui-port", str(worker_ui), "--work-dir", str(work_dir)))  # fmt: skip
        c = Cluster(url, f"http://127.0.0.1:{ui}", work_dir, env)
        wait_for(lambda: c.state().get("aliveworkers", 0) >= 1, 120, "registered worker", procs)
        yield c
    finally:
        for proc in reversed(procs):
            stop(proc)


def test_ingest_runs_on_the_standalone_cluster(cluster: Cluster, tmp_path: Path) -> None:
    source, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    build_landing(source)
    dates = ["2019-12-04", "2024-07-13"]
    cmd = [sys.executable, "-c", DRIVER, cluster.url, APP_NAME, JAVA_OPTS, str(source), str(warehouse), *dates]
    # JVM start-ups and many small Spark jobs dominate; the margin is for machines busy with other work.
    out = subprocess.run(cmd, env=cluster.env, cwd=tmp_path, capture_output=True, text=True, timeout=480, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    results = report["results"]
    assert (results["2019-12-04"]["loaded"], results["2019-12-04"]["rejected"]) == (5, 0)
    assert (results["2024-07-13"]["loaded"], results["2024-07-13"]["rejected"]) == (0, 1)
    assert report["executors"] == 1  # the worker's executor, not a local fallback

    # The master saw the application finish, with the worker's core granted to it...
    state = cluster.state()
    (app,) = [a for a in state["completedapps"] if a["name"] == APP_NAME]
    assert app["state"] == "FINISHED" and app["cores"] == 1
    # ...and the executor ran on the worker: its directory and log exist in the worker's work dir.
    executor_logs = list(cluster.work_dir.glob(f"{app['id']}/*/stderr"))
    assert executor_logs, sorted(str(p) for p in cluster.work_dir.rglob("*"))[:20]
    assert "Running task" in executor_logs[0].read_text(errors="replace")
    # The Delta tables are where the driver said, written by the executor.
    assert (warehouse / "cdn_logs" / "_delta_log").is_dir() and (warehouse / "cdn_logs_rejects").is_dir()
