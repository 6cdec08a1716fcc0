"""Faults of issue #8: a Spark job killed mid-write, runs at the same time, re-runs.

- The ingest job runs in its own process (`python -m spark_jobs.ingest`, as under spark-submit)
  over a day whose first half is already committed; the test watches the table folder and
  SIGKILLs the whole process tree (driver JVM, Python workers) as soon as new Parquet files of the
  write appear. The table, read with delta-rs, must be exactly as before (same version, same rows),
  and the next run must load the whole day.
- Two ingest processes for different dates write the same warehouse at once: both dates land.
- Two runs of the same date: the per-date lock (cdnlake/locks.py) makes the second wait for the
  first, or fail at once with a message naming the date, the holder and the lock, for a local
  warehouse (flock, the holder in another process) and an S3 one (conditional put, moto); and the
  daily flow uses it (fake stages on a temporary Prefect server).
- Three re-runs of a date (ingest, compact, aggregate) leave every table with the same rows.

The in-process Spark work uses the conftest session; each job process runs `local[1]` with the
jars the conftest session already resolved.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from deltalake import DeltaTable
from moto import mock_aws

from cdnlake import locks
from cdnlake.demo import generate_days
from cdnlake.notify import FanoutNotifier, ProgressEvent
from cdnlake.report_data import Warehouse
from cdnlake.sample_logs import GenerationResult
from cdnlake.services import Services, build_services
from cdnlake.settings import ConfigError, Settings, load_settings
from cdnlake.storage import LocalStore, S3Store
from flows import daily
from spark_jobs import aggregate, compact, ingest
from spark_jobs.jars import cached_jars
from spark_jobs.params import IngestParams
from spark_jobs.session import jar_packages, local_class_path
from spark_jobs.storage import TABLES
from tests.fake_services import FakeRunner, FakeSender, NewestDateSource, Recorder, ingested, one_raw_file
from tests.flow_runs import run_flow
from tests.jvm import SHORT_LIVED_JVM_OPTS

ROOT = Path(__file__).resolve().parents[1]

D = dt.date(2024, 6, 9)
DAYS = [D - dt.timedelta(days=2), D - dt.timedelta(days=1), D]
ROWS = 3_000
INGEST_TABLES = ("cdn_logs", "cdn_logs_rejects", "ingest_files")
PER_RUN_COLUMNS = ("ingest_run", "ingested_at")  # differ by design between two runs of the same input


# ---------------------------------------------------------------- helpers: data, Delta, processes
@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[dt.date, GenerationResult]]:
    landing = tmp_path_factory.mktemp("faults") / "landing"
    return landing, generate_days(landing, DAYS, 2, [ROWS] * 3, seed=23, files_per_hour=1)


def run_ingest(spark: Any, source: Path, warehouse: Path, date: dt.date) -> dict[str, Any]:
    args = ["--date", date.isoformat(), "--source", str(source), "--warehouse", str(warehouse)]
    return ingest.run(spark, IngestParams.from_namespace(ingest.build_parser().parse_args(args)))


def canonical(rows: list[dict[str, Any]], drop: tuple[str, ...] = ()) -> list[str]:
    """Rows as sorted JSON texts (exact: floats and timestamps by their repr), without `drop`."""
    return sorted(json.dumps({k: v for k, v in r.items() if k not in drop}, sort_keys=True, default=repr) for r in rows)


def snapshot(warehouse: Path, table: str, drop: tuple[str, ...] = ()) -> tuple[int, list[str]]:
    """(version, rows) of a table as delta-rs reads it."""
    delta = DeltaTable(str(warehouse / table))
    return delta.version(), canonical(delta.to_pyarrow_table().to_pylist(), drop)


def count_by_date(warehouse: Path, table: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in DeltaTable(str(warehouse / table)).to_pyarrow_table(columns=["dt"]).to_pylist():
        counts[row["dt"]] = counts.get(row["dt"], 0) + 1
    return counts


def part_files(table: Path) -> set[str]:
    found = set()
    for folder, dirs, names in os.walk(table):
        dirs[:] = [d for d in dirs if d != "_delta_log"]
        found |= {os.path.join(folder, n) for n in names if n.startswith("part-") and n.endswith(".parquet")}
    return found


def commits(table: Path) -> list[str]:
    return sorted(p.name for p in (table / "_delta_log").glob("*.json"))


def job_env() -> dict[str, str]:
    """A job process as spark-submit would start it: local[1], quick-starting JVM options, this
    interpreter for the workers, and the jar files the test session resolved on the driver's class
    path (an empty package list skips Ivy; no 700 MB copy of spark.jars per job)."""
    submit = ["--master", "local[1]", "--driver-memory", "1g"]
    submit += ["--driver-java-options", shlex.quote(SHORT_LIVED_JVM_OPTS)]
    jars = cached_jars(jar_packages())
    if jars:
        class_path = local_class_path({}, jars)["spark.driver.extraClassPath"]
        submit += ["--conf", "spark.jars.packages=", "--driver-class-path", class_path]
    return {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable,
            "PYTHONPATH": str(ROOT), "PYSPARK_SUBMIT_ARGS": " ".join(submit + ["pyspark-shell"])}  # fmt: skip


def start_job(job: str, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """`python -m spark_jobs.<job>` in a new session, so that every process it starts (the JVM, the
    PySpark daemon, which makes its own process group, and its workers) can be found and killed."""
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", f"spark_jobs.{job}", *args], cwd=ROOT, env=job_env(),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def session_members(sid: int) -> list[int]:
    """Live (not zombie) processes of session `sid`."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # state, ppid, pgrp, session
            members.append(int(entry))
    return members


def kill_session(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGKILL the job's whole process tree (every process of its session) and wait until it is gone."""
    deadline = time.monotonic() + timeout
    while True:
        members = session_members(proc.pid)
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1)
        if not members and proc.poll() is not None:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"processes of the killed job survive: {members}")
        time.sleep(0.1)


def tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def wait_for_new_parts(proc: subprocess.Popen[bytes], table: Path, before: set[str], log: Path,
                       timeout: float = 600.0) -> set[str]:  # fmt: skip
    """Poll (every 2 ms) until the job has written its first new data file under `table`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = part_files(table) - before
        if new:
            return new
        if proc.poll() is not None:
            raise AssertionError(f"the job ended (exit {proc.returncode}) before it wrote a file:\n{tail(log)}")
        time.sleep(0.002)
    raise AssertionError(f"no data file written within {timeout:.0f} s:\n{tail(log)}")


# ---------------------------------------------------------------- the per-date lock
def lock_settings(warehouse: str, **overrides: Any) -> Settings:
    return load_settings(env={}, warehouse=warehouse, **overrides)


HOLDER = """
import datetime as dt, sys, time
from cdnlake.locks import date_locks
from cdnlake.settings import load_settings
settings = load_settings(env={{}}, warehouse={warehouse!r})
with date_locks(settings, [dt.date.fromisoformat({date!r})], run_id="holder-run"):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin (or kills us)
print("released", time.time(), flush=True)
"""


class Holder:
    """Another process holding the date's lock of a local warehouse until told to let go."""

    def __init__(self, warehouse: Path, date: dt.date) -> None:
        code = HOLDER.format(warehouse=str(warehouse), date=date.isoformat())
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "held", f"the holder did not take the lock: {line!r}"

    def release(self) -> float:
        """Let go; returns when (epoch seconds) the holder released the lock."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        word, at = self.proc.stdout.readline().split()
        assert word == "released"
        self.proc.wait(timeout=30)
        return float(at)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Holder]:
    held = Holder(tmp_path / "warehouse", D)
    try:
        yield held
    finally:
        held.kill()


def test_lock_settings_are_read_and_checked() -> None:
    assert load_settings(env={}).lock_wait_seconds == 600
    assert load_settings(env={"CDNLAKE_LOCK_WAIT_SECONDS": "0"}).lock_wait_seconds == 0
    assert load_settings(env={"CDNLAKE_LOCK_STALE_SECONDS": "90"}).lock_stale_seconds == 90
    with pytest.raises(ConfigError, match="CDNLAKE_LOCK_WAIT_SECONDS"):
        load_settings(env={"CDNLAKE_LOCK_WAIT_SECONDS": "-1"})
    with pytest.raises(ConfigError, match="CDNLAKE_LOCK_STALE_SECONDS"):
        load_settings(env={"CDNLAKE_LOCK_STALE_SECONDS": "soon"})


def test_lock_locations_follow_the_warehouse(tmp_path: Path) -> None:
    local = locks.lock_for(lock_settings(f"file://{tmp_path}/wh/"), "2024-06-09")
    assert isinstance(local, locks.FileLock) and local.path == tmp_path / "wh" / "_cdnlake_locks" / "2024-06-09.lock"
    with mock_aws():
        remote = locks.lock_for(lock_settings("s3a://bucket/lake/wh", s3_endpoint="http://127.0.0.1:9000"), "x")
        assert isinstance(remote, locks.StoreLock) and remote.location == "s3://bucket/lake/wh/_cdnlake_locks/x.lock"
        assert isinstance(remote.store, S3Store)
        assert remote.store.client.meta.endpoint_url == "http://127.0.0.1:9000"  # CDNLAKE_S3_ENDPOINT, as for s3a
        assert locks.lock_for(lock_settings("s3://bucket"), "x").location == "s3://bucket/_cdnlake_locks/x.lock"


def test_local_lock_second_run_fails_fast_naming_date_holder_and_lock(holder: Holder, tmp_path: Path) -> None:
    settings = lock_settings(str(tmp_path / "warehouse"), lock_wait_seconds=0)
    started = time.monotonic()
    with pytest.raises(locks.LockBusyError) as failure, locks.date_locks(settings, [D]):
        pytest.fail("the lock was taken twice")
    assert time.monotonic() - started < 2
    text = str(failure.value)
    assert f"date {D} is locked by run holder-run on host " in text
    assert f"(pid {holder.proc.pid})" in text
    assert f"lock {tmp_path / 'warehouse' / '_cdnlake_locks' / f'{D}.lock'}" in text
    assert "CDNLAKE_LOCK_WAIT_SECONDS=0" in text
    # Another date is not held up.
    with locks.date_locks(settings, [D + dt.timedelta(days=1)]):
        pass


def test_local_lock_second_run_waits_then_goes_on(holder: Holder, tmp_path: Path) -> None:
    settings = lock_settings(str(tmp_path / "warehouse"), lock_wait_seconds=60)
    waiting: list[str] = []
    released: list[float] = []
    timers: list[threading.Timer] = []

    def on_wait(message: str) -> None:  # the first has been seen busy: now let it finish
        waiting.append(message)
        timers.append(threading.Timer(1.0, lambda: released.append(holder.release())))
        timers[-1].start()

    with locks.date_locks(settings, [D], run_id="second-run", on_wait=on_wait) as where:
        acquired = time.time()
        owner = locks.Owner.parse(Path(where[0]).read_bytes())
    for timer in timers:
        timer.join(30)
    assert waiting and f"date {D} is locked by run holder-run" in waiting[0] and "waiting up to" in waiting[0]
    assert released and acquired >= released[0]
    assert owner is not None and owner.run_id == "second-run" and owner.pid == os.getpid()
    assert Path(where[0]).read_bytes() == b""  # released: no owner left behind


def test_local_lock_of_a_killed_run_is_free_at_once(holder: Holder, tmp_path: Path) -> None:
    holder.proc.send_signal(signal.SIGKILL)
    holder.proc.wait(timeout=30)
    with locks.date_locks(lock_settings(str(tmp_path / "warehouse"), lock_wait_seconds=0), [D]):
        pass


@pytest.fixture
def s3_warehouse() -> Iterator[tuple[Any, str]]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="cdnlake-locks")
        yield S3Store(client, "s3://cdnlake-locks/prod/warehouse"), "s3://cdnlake-locks/prod/warehouse"


S3_KEY = f"prod/warehouse/_cdnlake_locks/{D}.lock"


def test_s3_lock_fails_fast_then_waits_for_the_holder(s3_warehouse: tuple[Any, str]) -> None:
    store, warehouse = s3_warehouse
    client = store.client
    let_go, held = threading.Event(), threading.Event()

    def first() -> None:
        with locks.date_locks(lock_settings(warehouse), [D], run_id="first-run", store=store):
            held.set()
            let_go.wait(60)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert held.wait(30)
        stored = json.loads(client.get_object(Bucket="cdnlake-locks", Key=S3_KEY)["Body"].read())
        assert stored["run_id"] == "first-run" and stored["pid"] == os.getpid() and stored["host"]
        at_once = lock_settings(warehouse, lock_wait_seconds=0)
        with pytest.raises(locks.LockBusyError) as failure, locks.date_locks(at_once, [D], store=store):
            pytest.fail("the lock was taken twice")
        text = str(failure.value)
        assert f"date {D} is locked by run first-run on host" in text
        assert f"lock s3://cdnlake-locks/{S3_KEY};" in text and "CDNLAKE_LOCK_WAIT_SECONDS=0" in text

        waiting: list[str] = []

        def on_wait(message: str) -> None:
            waiting.append(message)
            threading.Timer(1.0, let_go.set).start()

        with locks.date_locks(lock_settings(warehouse, lock_wait_seconds=60), [D], run_id="second-run",
                              on_wait=on_wait, store=store):  # fmt: skip
            assert let_go.is_set() and waiting and "first-run" in waiting[0]
            stored = json.loads(client.get_object(Bucket="cdnlake-locks", Key=S3_KEY)["Body"].read())
            assert stored["run_id"] == "second-run"
        released = json.loads(client.get_object(Bucket="cdnlake-locks", Key=S3_KEY)["Body"].read())
        assert released["state"] == "released" and released["run_id"] == "second-run"  # marked, never deleted
    finally:
        let_go.set()
        thread.join(30)


class AgedStore(S3Store):
    """The store's own clock says how old the lock object is (moto's in-process mock sends no Date)."""

    age_s: float = 3600.0

    def age(self, key: str) -> float | None:
        return self.age_s


def test_s3_lock_of_a_dead_run_expires_and_a_live_one_does_not(s3_warehouse: tuple[Any, str]) -> None:
    store, warehouse = s3_warehouse
    client = store.client
    dead = locks.Owner("gone-host", 4242, "dead-run", "2024-06-09T00:00:00Z", "2024-06-09T00:00:00Z")
    client.put_object(Bucket="cdnlake-locks", Key=S3_KEY, Body=dead.to_bytes())
    settings = lock_settings(warehouse, lock_wait_seconds=0, lock_stale_seconds=600)
    aged = AgedStore(client, warehouse)
    with locks.date_locks(settings, [D], run_id="new-run", store=aged):  # taken over: not written for 1 h
        stored = json.loads(client.get_object(Bucket="cdnlake-locks", Key=S3_KEY)["Body"].read())
        assert stored["run_id"] == "new-run"

    # A live holder refreshes its lock (every stale/4 s), so a run that only waits never breaks it.
    live = locks.StoreLock(store, "_cdnlake_locks/2024-06-09.lock", stale_seconds=2)
    assert live.try_acquire(locks.Owner.current("live-run"))
    try:
        time.sleep(3.5)  # longer than the expiry: only the heartbeats keep it fresh
        other = locks.StoreLock(store, "_cdnlake_locks/2024-06-09.lock", stale_seconds=2)
        assert not other.try_acquire(locks.Owner.current("other-run"))
        holder = other.holder()
        assert holder is not None and holder.run_id == "live-run" and holder.heartbeat > holder.started
    finally:
        live.release()


# ---------------------------------------------------------------- the daily flow with the lock
class FlowFakes:
    """Fake services for cdn-daily (runner, notifier, e-mail sender, a source with one good file, an
    empty local warehouse to read): records progress events and when ingest started."""

    def __init__(self, folder: Path) -> None:
        self.recorder = Recorder()
        self.ingest_started: list[float] = []
        self.runner = FakeRunner(ingest=self.ingest)
        self.sender = FakeSender()
        self.folder = folder

    @property
    def events(self) -> list[ProgressEvent]:
        return self.recorder.events

    def ingest(self, params: Any) -> dict[str, Any]:
        self.ingest_started.append(time.time())
        return ingested(params)

    def services(self, settings: Settings) -> Services:
        """`settings`' date locks and lock timing; everything else fake or local to the test."""
        return build_services(settings, runner=self.runner, notifier=FanoutNotifier([self.recorder]),
                              email_sender=self.sender, source=NewestDateSource(one_raw_file(self.folder / "raw")),
                              warehouse=Warehouse(str(self.folder / "empty-warehouse")),
                              reports=LocalStore(self.folder / "reports"))  # fmt: skip


@pytest.fixture
def flow_fakes(prefect_server: None, tmp_path: Path) -> FlowFakes:
    return FlowFakes(tmp_path / "fakes")


def test_daily_run_of_a_locked_date_fails_at_ingest_with_the_holder(flow_fakes: FlowFakes, holder: Holder,
                                                                     tmp_path: Path) -> None:  # fmt: skip
    settings = lock_settings(str(tmp_path / "warehouse"), lock_wait_seconds=0)
    with pytest.raises(locks.LockBusyError, match=f"date {D} is locked by run holder-run"):
        run_flow(daily.cdn_daily, flow_fakes.services(settings), date=D)
    failed = flow_fakes.events[-1]
    assert (failed.kind, failed.stage, failed.step) == ("failed", "ingest", 2)
    assert f"LockBusyError: date {D} is locked by run holder-run" in str(failed.detail)
    assert f"{D}.lock" in str(failed.detail)
    assert flow_fakes.ingest_started == []  # nothing was written


def test_daily_run_of_a_locked_date_waits_for_the_holder(flow_fakes: FlowFakes, holder: Holder,
                                                         tmp_path: Path) -> None:  # fmt: skip
    settings = lock_settings(str(tmp_path / "warehouse"), lock_wait_seconds=120)
    released: list[float] = []

    def let_go_once_waiting() -> None:
        deadline = time.monotonic() + 120
        while not any(e.kind == "warning" for e in flow_fakes.events) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        released.append(holder.release())

    helper = threading.Thread(target=let_go_once_waiting)
    helper.start()
    summary = run_flow(daily.cdn_daily, flow_fakes.services(settings), date=D)
    helper.join(30)
    assert summary["dates_ingested"] == [D.isoformat()]
    warnings = [str(e.detail) for e in flow_fakes.events if e.kind == "warning"]
    assert len(warnings) == 1 and f"date {D} is locked by run holder-run" in warnings[0]
    assert "waiting up to" in warnings[0]
    assert released and flow_fakes.ingest_started[0] >= released[0]  # it really waited for the release
    assert flow_fakes.events[-1].kind == "complete"


# ---------------------------------------------------------------- Spark jobs killed and run at once
def test_spark_job_killed_mid_write_leaves_the_table_unchanged(
    spark: Any, days: tuple[Path, dict[dt.date, GenerationResult]], tmp_path: Path
) -> None:
    landing, generated = days
    # Committed first: the first 12 hours of D (as if the rest had not been delivered yet).
    early = tmp_path / "landing-early"
    for f in generated[D].files:
        if int(f.name.split(".")[1][-2:]) < 12:
            (early / f.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, early / f.parent.name / f.name)
    warehouse = tmp_path / "warehouse"
    run_ingest(spark, early, warehouse, D)
    before = {t: snapshot(warehouse, t) for t in INGEST_TABLES}
    table = warehouse / "cdn_logs"
    parts_before, commits_before = part_files(table), commits(table)

    log = tmp_path / "killed-ingest.log"
    proc = start_job("ingest", ["--date", D.isoformat(), "--source", str(landing), "--warehouse", str(warehouse)], log)
    try:
        written = wait_for_new_parts(proc, table, parts_before, log)
        kill_session(proc)
    finally:
        kill_session(proc)
    assert proc.returncode == -signal.SIGKILL
    assert session_members(proc.pid) == []  # driver, PySpark daemon and workers are all gone

    # The kill landed mid-write: data files were written, the commit was not.
    assert written and commits(table) == commits_before
    after = {t: snapshot(warehouse, t) for t in INGEST_TABLES}
    assert after == before  # same versions, same rows, for delta-rs
    orphans = part_files(table) - parts_before
    referenced = {uri.removeprefix("file://") for uri in DeltaTable(str(table)).file_uris()}
    assert orphans >= written and not orphans & referenced

    # The next run succeeds and has the whole day.
    result = run_ingest(spark, landing, warehouse, D)
    day = generated[D]
    assert (result["lines_read"], result["loaded"], result["rejected"]) == (
        day.lines_written, day.valid_lines, day.malformed_lines)  # fmt: skip
    assert snapshot(warehouse, "cdn_logs")[0] == before["cdn_logs"][0] + 1
    assert count_by_date(warehouse, "cdn_logs") == {D.isoformat(): day.valid_lines}
    rejected = {D.isoformat(): day.malformed_lines} if day.malformed_lines else {}
    assert count_by_date(warehouse, "cdn_logs_rejects") == rejected


def test_two_dates_ingested_at_once_into_one_warehouse(
    spark: Any, days: tuple[Path, dict[dt.date, GenerationResult]], tmp_path: Path
) -> None:
    landing, generated = days
    warehouse = tmp_path / "warehouse"
    run_ingest(spark, landing, warehouse, DAYS[0])  # the warehouse exists, as on any day but the first
    versions = {t: DeltaTable(str(warehouse / t)).version() for t in INGEST_TABLES}

    jobs = {}
    for day in DAYS[1:]:
        log = tmp_path / f"ingest-{day}.log"
        args = ["--date", day.isoformat(), "--source", str(landing), "--warehouse", str(warehouse)]
        jobs[day] = (start_job("ingest", args, log), log)
    try:
        for day, (proc, log) in jobs.items():
            assert proc.wait(timeout=800) == 0, f"ingest of {day} failed:\n{tail(log)}"
    finally:
        for proc, _ in jobs.values():
            kill_session(proc)

    for t in INGEST_TABLES:  # both writes committed, none lost or overwritten
        assert DeltaTable(str(warehouse / t)).version() == versions[t] + 2, t
    assert count_by_date(warehouse, "cdn_logs") == {d.isoformat(): generated[d].valid_lines for d in DAYS}
    rejected = {d.isoformat(): generated[d].malformed_lines for d in DAYS}
    assert count_by_date(warehouse, "cdn_logs_rejects") == {d: n for d, n in rejected.items() if n}
    files = DeltaTable(str(warehouse / "ingest_files")).to_pyarrow_table().to_pylist()
    for d in DAYS:
        mine = [f for f in files if f["dt"] == d.isoformat()]
        assert len(mine) == len(generated[d].files)
        assert sum(f["lines_read"] for f in mine) == generated[d].lines_written
        assert sum(f["loaded"] for f in mine) == generated[d].valid_lines


# ---------------------------------------------------------------- idempotence
def test_three_reruns_give_identical_tables_and_statistics(
    spark: Any, days: tuple[Path, dict[dt.date, GenerationResult]], tmp_path: Path
) -> None:
    landing, generated = days
    warehouse = tmp_path / "warehouse"
    common = ["--date", D.isoformat(), "--warehouse", str(warehouse)]
    runs: list[dict[str, tuple[int, list[str]]]] = []
    run_ids = []
    for _ in range(3):
        run_ids.append(run_ingest(spark, landing, warehouse, D)["run_id"])
        compact.run(spark, compact.build_parser().parse_args(common))
        aggregate.run(spark, aggregate.build_parser().parse_args([*common, "--dates", D.isoformat()]))
        present = [t for t in TABLES if (warehouse / t / "_delta_log").is_dir()]
        runs.append({t: snapshot(warehouse, t, PER_RUN_COLUMNS) for t in present})

    first = runs[0]
    assert set(INGEST_TABLES) < set(first) and any(t.startswith("stats_") for t in first)
    assert len(set(run_ids)) == 3  # three real runs (the per-run columns differ) ...
    for table, (version, rows) in first.items():
        assert rows, f"{table} is empty"
        for later in runs[1:]:
            assert later[table][0] > version, f"{table} was not rewritten"  # ... that rewrote every table
            assert later[table][1] == rows, f"{table} differs between re-runs"
    assert len(first["cdn_logs"][1]) == generated[D].valid_lines


def test_a_run_that_loses_its_lock_stops_before_writing_or_emailing(
    flow_fakes: FlowFakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The S3 lock is taken over while ingest runs (this run paused past the stale time): the
    heartbeat sees it, and the run stops at the next stage instead of writing and e-mailing."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    emails = flow_fakes.sender.dates
    compacted: list[str] = []

    def compact(params: Any) -> dict[str, Any]:
        compacted.append(str(params.date))
        return {}

    flow_fakes.runner.results["compact"] = compact
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="cdnlake-lost")
        key = f"warehouse/_cdnlake_locks/{D}.lock"

        def ingest_while_taken_over(params: Any) -> Any:
            s3.put_object(Bucket="cdnlake-lost", Key=key, Body=json.dumps({"run_id": "other", "state": "held"}))
            time.sleep(4.0)  # more than one heartbeat (stale 10 s / 4)
            return flow_fakes.ingest(params)

        flow_fakes.runner.results["ingest"] = ingest_while_taken_over
        settings = lock_settings("s3://cdnlake-lost/warehouse", lock_stale_seconds=10, lock_wait_seconds=0)
        with pytest.raises(locks.LockLostError, match="another run took it over"):
            run_flow(daily.cdn_daily, flow_fakes.services(settings), date=D)
        assert json.loads(s3.get_object(Bucket="cdnlake-lost", Key=key)["Body"].read())["run_id"] == "other"
    failed = flow_fakes.events[-1]
    assert (failed.kind, failed.stage) == ("failed", "compact")
    assert compacted == [] and emails == []  # nothing written after the loss, no e-mail
