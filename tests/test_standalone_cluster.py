"""The distributed path for real: a Spark standalone master and two workers, ingest and statistics
on them, and the tables equal to a local-mode run of the same input, row for row.

The cluster runs from the pyspark install (SPARK_HOME = the pyspark package). The jobs' driver
runs in a subprocess because this test process already holds the shared local SparkContext
(tests/conftest.py) and a JVM allows only one; that shared session does the local-mode run the
cluster's tables are compared with. Jars come from the local Ivy cache through
spark.jars.packages; executors fetch them from the driver.
"""

from __future__ import annotations

import datetime as dt
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
from pyspark.sql import functions as F

from bench.duckdb_reference import hourly_statistics
from cdnlake.sample_logs import generate_logs
from spark_jobs import aggregate, ingest
from spark_jobs.params import IngestParams
from spark_jobs.storage import table_path
from tests.jvm import SHORT_LIVED_JVM_OPTS
from tests.samples import build_landing

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[1]
SPARK_HOME = Path(pyspark.__file__).parent
APP_NAME = "cdnlake-cluster-test"
WORKERS = 2
D = dt.date(2024, 5, 1)
SAMPLE_DATES = ["2019-12-04", "2024-07-13"]
# Seven JVMs (master, two workers, driver, two executors, the local session) share the machine.
JAVA_OPTS = SHORT_LIVED_JVM_OPTS

# The jobs as cdnlake/runners/local.py's in-process runner runs them, but against the spark:// master: one
# executor of one core per worker, and no job starts before both have registered. Only the Delta
# package is requested: the data is local, and hadoop-aws would make every executor copy the
# ~600 MB AWS SDK bundle from the driver, which alone takes minutes here.
DRIVER = """
import json, sys
from spark_jobs import aggregate, ingest
from spark_jobs.params import IngestParams
from spark_jobs.session import build_session, jar_packages

master, app_name, java_opts, workers, source, warehouse, report_date, *dates = sys.argv[1:]
delta = [p for p in jar_packages() if p.startswith("io.delta:")]
spark = build_session(master, app_name=app_name, extra_conf={
    "spark.jars.packages": ",".join(delta), "spark.executor.memory": "768m", "spark.executor.cores": "1",
    "spark.cores.max": workers, "spark.driver.memory": "1g", "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2", "spark.ui.enabled": "false",
    "spark.scheduler.minRegisteredResourcesRatio": "1.0",
    "spark.scheduler.maxRegisteredResourcesWaitingTime": "180s",
    "spark.driver.extraJavaOptions": java_opts, "spark.executor.extraJavaOptions": java_opts})
results = {}
for date in dates:
    args = ingest.build_parser().parse_args(["--date", date, "--source", source, "--warehouse", warehouse])
    results[date] = ingest.run(spark, IngestParams.from_namespace(args))
args = aggregate.build_parser().parse_args(["--date", report_date, "--warehouse", warehouse])
stats = aggregate.run(spark, args)
executors = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1  # minus the driver
spark.stop()
print(json.dumps({"results": results, "stats": stats, "executors": executors}, default=str))
"""


@dataclass
class Cluster:
    url: str
    ui: str
    work_dirs: list[Path]
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
        time.sleep(0.25)
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


def session_members(sids: set[int]) -> list[str]:
    """`pid command` of the live processes in the given sessions (a started JVM and its children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Fields after the parenthesised command: state, ppid, pgrp, session, ...
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if stat[0] != "Z" and int(stat[3]) in sids:
                found.append(f"{entry.name} {(entry / 'cmdline').read_bytes()[:200]!r}")
        except (OSError, IndexError, ValueError):  # the process ended while being read
            continue
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    port, ui = free_port(), free_port()
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_LOG_DIR": str(root / "logs"), "PYSPARK_PYTHON": sys.executable, "SPARK_DAEMON_JAVA_OPTS": JAVA_OPTS,
           # Executors' Python workers import spark_jobs (mapInArrow functions) from this checkout.
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    env.pop("SPARK_CONF_DIR", None)
    work_dirs = [root / f"work{i}" for i in range(WORKERS)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        url = f"spark://127.0.0.1:{port}"
        # Started together: workers retry until the master listens, which saves JVM start-ups.
        procs.append(start(env, root / "master.log", "org.apache.spark.deploy.master.Master",
                           "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui)))  # fmt: skip
        for i, work_dir in enumerate(work_dirs):
            procs.append(start(env, root / f"worker{i}.log", "org.apache.spark.deploy.worker.Worker", url,
                               "--host", "127.0.0.1", "--cores", "1", "--memory", "1g",
                               "--webui-port", str(free_port()), "--work-dir", str(work_dir)))  # fmt: skip
        c = Cluster(url, f"http://127.0.0.1:{ui}", work_dirs, env)
        wait_for(lambda: c.state().get("aliveworkers", 0) >= WORKERS, 180, f"{WORKERS} registered workers", procs)
        yield c
    finally:
        for proc in reversed(procs):
            stop(proc)
    # Nothing of the cluster outlives the module: no master, worker or executor JVM.
    leftovers = session_members({p.pid for p in procs})
    assert not leftovers, leftovers


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated day (2 distributions, 48 files) and the real-format samples, side by side."""
    source = tmp_path_factory.mktemp("cluster-data") / "landing"
    generate_logs(D, 2, 1_000, seed=3, out_dir=source, files_per_hour=1)
    build_landing(source)
    return source


def start_on_cluster(cluster: Cluster, source: Path, warehouse: Path, cwd: Path) -> subprocess.Popen[str]:
    """The jobs' driver, started and left running: the local run goes on meanwhile (the cluster's
    run is mostly waiting on executors, RPCs and task launches). Output goes to files, not pipes,
    which would fill up and stop the driver while nobody reads them."""
    cmd = [sys.executable, "-c", DRIVER, cluster.url, APP_NAME, JAVA_OPTS, str(WORKERS), str(source),
           str(warehouse), D.isoformat(), D.isoformat(), *SAMPLE_DATES]  # fmt: skip
    with (cwd / "driver.out").open("w") as out, (cwd / "driver.err").open("w") as err:
        return subprocess.Popen(cmd, env=cluster.env, cwd=cwd, stdout=out, stderr=err, text=True)


def finish_on_cluster(driver: subprocess.Popen[str], cwd: Path) -> dict[str, Any]:
    try:
        # JVM start-ups and many small Spark jobs dominate; the margin is for machines busy with other work.
        returncode = driver.wait(timeout=600)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(timeout=30)
    assert returncode == 0, (cwd / "driver.err").read_text(errors="replace")[-3000:]
    return dict(json.loads((cwd / "driver.out").read_text().strip().splitlines()[-1]))


def run_locally(spark: Any, source: Path, warehouse: Path) -> dict[str, Any]:
    results = {}
    for date in [D.isoformat(), *SAMPLE_DATES]:
        args = ["--date", date, "--source", str(source), "--warehouse", str(warehouse)]
        results[date] = ingest.run(spark, IngestParams.from_namespace(ingest.build_parser().parse_args(args)))
    stats = aggregate.run(spark, aggregate.build_parser().parse_args(["--date", D.isoformat(), "--warehouse",
                                                                      str(warehouse)]))  # fmt: skip
    return {"results": results, "stats": stats}


@pytest.fixture(scope="module")
def runs(cluster: Cluster, landing: Path, spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("cluster-runs")
    started = time.monotonic()
    driver = start_on_cluster(cluster, landing, root / "warehouse-cluster", root)
    try:
        local = run_locally(spark, landing, root / "warehouse-local")  # at the same time, in this process
    finally:
        remote = finish_on_cluster(driver, root)
    remote["seconds"] = time.monotonic() - started
    return {"cluster": remote, "local": local, "root": root}


# Columns that name a run or its moment rather than the data; everything else must be equal.
RUN_COLUMNS = {"cdn_logs": (), "cdn_logs_rejects": ("ingest_run",), "ingest_files": ("ingest_run", "ingested_at"),
               "stats_hourly": (), "stats_minute": (), "stats_top_lists": ()}  # fmt: skip


def differences(spark: Any, root: Path, table: str) -> tuple[int, list[Any], list[Any]]:
    """(rows, rows only in the cluster's table, rows only in the local one): multiset difference.

    One Spark job per table: every distinct row with how often each side has it (two exceptAll and
    a count were three shuffles of the same rows); the tables are small enough to compare here.
    """
    cluster_df, local_df = (
        spark.read.format("delta").load(table_path(str(root / f"warehouse-{kind}"), table)).drop(*RUN_COLUMNS[table])
        for kind in ("cluster", "local")
    )
    sides = cluster_df.withColumn("_side", F.lit(1)).unionByName(local_df.withColumn("_side", F.lit(0)))
    in_cluster, in_local = F.sum("_side").alias("_in_cluster"), F.sum(1 - F.col("_side")).alias("_in_local")
    counted = sides.groupBy(*cluster_df.columns).agg(in_cluster, in_local).collect()
    rows = sum(r["_in_cluster"] for r in counted)
    only_cluster = [r for r in counted if r["_in_cluster"] > r["_in_local"]][:5]
    only_local = [r for r in counted if r["_in_local"] > r["_in_cluster"]][:5]
    return rows, only_cluster, only_local


def test_differences_count_rows_by_multiplicity(spark: Any, tmp_path: Path) -> None:
    """The comparison itself can fail: a row twice on one side and once on the other is a difference."""
    for kind, values in (("cluster", [1, 1, 2, 3]), ("local", [1, 2, 2, 3])):
        spark.createDataFrame([(v, "x") for v in values], "cdn_id INT, ingest_run STRING").write.format(
            "delta").save(table_path(str(tmp_path / f"warehouse-{kind}"), "cdn_logs_rejects"))  # fmt: skip
    rows, only_cluster, only_local = differences(spark, tmp_path, "cdn_logs_rejects")
    assert rows == 4
    assert [r["cdn_id"] for r in only_cluster] == [1] and [r["cdn_id"] for r in only_local] == [2]


def test_both_workers_ran_the_jobs(cluster: Cluster, runs: dict[str, Any]) -> None:
    report = runs["cluster"]
    assert report["executors"] == WORKERS  # the workers' executors, not a local fallback
    results = report["results"]
    assert (results["2019-12-04"]["loaded"], results["2019-12-04"]["rejected"]) == (5, 0)
    assert (results["2024-07-13"]["loaded"], results["2024-07-13"]["rejected"]) == (0, 1)
    assert results[D.isoformat()]["files"] == 48 and results[D.isoformat()]["lines_read"] == 1_000

    # The master saw the application finish with a core of each worker...
    state = cluster.state()
    (app,) = [a for a in state["completedapps"] if a["name"] == APP_NAME]
    assert app["state"] == "FINISHED" and app["cores"] == WORKERS
    # ...and each worker ran an executor that ran tasks: its log is in that worker's work dir.
    for work_dir in cluster.work_dirs:
        logs = list(work_dir.glob(f"{app['id']}/*/stderr"))
        assert len(logs) == 1, sorted(str(p) for p in work_dir.rglob("*"))[:20]
        assert "Running task" in logs[0].read_text(errors="replace"), work_dir


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """An ingest's result without what differs between any two runs (its id, its seconds), also in
    the per-date results it carries."""
    same = {k: v for k, v in result.items() if k not in ("run_id", "seconds")}
    if "per_date" in same:
        same["per_date"] = {d: comparable(r) for d, r in same["per_date"].items()}
    return same


@pytest.mark.parametrize("table", list(RUN_COLUMNS))
def test_cluster_tables_equal_the_local_run(spark: Any, runs: dict[str, Any], table: str) -> None:
    rows, only_cluster, only_local = differences(spark, runs["root"], table)
    assert rows > 0
    assert only_cluster == [] and only_local == []


def test_cluster_results_equal_the_local_run_and_duckdb(runs: dict[str, Any], landing: Path, spark: Any) -> None:
    cluster, local = runs["cluster"], runs["local"]
    for date, result in cluster["results"].items():
        assert comparable(result) == comparable(local["results"][date]), date
    assert cluster["stats"]["rows"] == local["stats"]["rows"]
    # And both are right: the cluster's hourly statistics of D equal DuckDB's over the raw files.
    expected = {(str(r[0]), int(r[1])): [int(x) for x in r[2:]]
                for r in hourly_statistics(sorted(landing.rglob(f"*.{D.isoformat()}-*.gz")))}  # fmt: skip
    measures = ["request_count", "hit_count", "miss_count", "error_count", "incomplete_count", "http2xx_count",
                "http3xx_count", "http4xx_count", "http5xx_count", "bytes_requested", "bytes_missed"]  # fmt: skip
    hourly = spark.read.format("delta").load(table_path(str(runs["root"] / "warehouse-cluster"), "stats_hourly"))
    got = {(r["dt"], r["hour"]): [r[m] for m in measures]
           for r in hourly.groupBy("dt", "hour").sum(*measures).toDF("dt", "hour", *measures).collect()}  # fmt: skip
    assert got == expected
