"""One SparkApplication per run (cdnlake/runners/k8s_run.py) against a fake Spark Operator.

The fake operator's "driver" answers the run folder's requests in Python (the real loop,
spark_jobs/job_loop.py, is tested against Spark in tests/test_job_loop.py): it acts whenever the
runner sleeps, so every test is deterministic and takes no wall time.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from cdnlake.runners.k8s_run import RunTiming, shared_application
from cdnlake.runners.kubernetes import AppConfig, KubernetesRunner
from cdnlake.runners.local import InProcessRunner, JobFailedError
from cdnlake.storage import LocalStore
from spark_jobs.params import AggregateParams, CompactParams, IngestParams, ReconcileParams

DAY = dt.date(2024, 7, 13)
WH = "s3a://bucket/warehouse"
INGEST = IngestParams(DAY, source="s3a://logs/cf", warehouse=WH, anonymize_ip="hash")
COMPACT = CompactParams(DAY, WH)
AGGREGATE = AggregateParams(DAY, WH, dates=(DAY,))
RECONCILE = ReconcileParams(DAY, WH)
HASH_KEY = "hash-key-value-never-in-files-q9"


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """The fake driver's result: what it was asked, so a test sees each request arrive intact."""
    return {"ok": True, "result": {"job": request["job"], "argv": request["argv"]}}


class FakeOperator:
    """SparkApplications whose driver serves `<run folder>/NNNN.request.json` with `respond`.

    `die_after`: the driver dies (state FAILED) after serving that many requests; `stuck`: it
    never answers; `stops`: it finishes (COMPLETED) when `done` appears in its folder; `idles`:
    the first driver stops for want of requests just before the first one arrives.
    """

    def __init__(self, store: LocalStore, respond: Callable[[dict[str, Any]], dict[str, Any]] = answer,
                 die_after: int | None = None, stuck: bool = False, stops: bool = True, idles: bool = False,
                 ) -> None:  # fmt: skip
        self.store, self.respond, self.idles = store, respond, idles
        self.die_after, self.stuck, self.stops = die_after, stuck, stops
        self.created: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.states: dict[str, str] = {}
        self.polls = 0

    def create_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, body: Any) -> Any:
        self.created.append(body)
        self.states[body["metadata"]["name"]] = "SUBMITTED"
        return body

    def folder(self, name: str) -> str:
        args = next(b for b in self.created if b["metadata"]["name"] == name)["spec"]["arguments"]
        return Path(args[args.index("--run-folder") + 1]).name

    def drive(self) -> None:
        """One step of every live driver: answer the waiting requests, stop on `done`."""
        for name, state in self.states.items():
            if state not in ("SUBMITTED", "RUNNING"):
                continue
            self.states[name] = "RUNNING"
            folder = self.folder(name)
            keys = self.store.list(folder)
            if self.idles:
                self.idles = False
                self.store.write(f"{folder}/exit.json", b'{"reason": "idle for 600s", "served": 0}')
                self.states[name] = "COMPLETED"
                continue
            for key in (k for k in keys if k.endswith(".request.json")):
                result = key.replace(".request.json", ".result.json")
                if self.stuck or result in keys:
                    continue
                if self.die_after is not None and sum(k.endswith(".result.json") for k in keys) >= self.die_after:
                    self.states[name] = "FAILED"
                    break
                self.store.write(result, json.dumps(self.respond(json.loads(self.store.read(key) or b""))).encode())
            if self.stops and f"{folder}/done" in keys:
                self.store.write(f"{folder}/exit.json", b'{"reason": "done", "served": 0}')
                self.states[name] = "COMPLETED"

    def get_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str) -> Any:
        self.polls += 1
        if name in self.deleted:
            raise ApiException(status=404, reason="Not Found")
        status: dict[str, Any] = {"applicationState": {"state": self.states[name]},
                                  "driverInfo": {"podName": f"{name}-driver"}}  # fmt: skip
        if self.states[name] == "FAILED":
            status["applicationState"]["errorMessage"] = "driver container failed with ExitCode: 137, Reason: OOMKilled"
        return {"metadata": {"name": name}, "status": status}

    def delete_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str) -> Any:
        self.deleted.append(name)
        self.states[name] = "DELETED"
        return {}


class FakeCore:
    def read_namespaced_pod_log(self, name: str, namespace: str, tail_lines: int) -> str:
        return "INFO job_loop: request 0001: ingest\njava.lang.OutOfMemoryError: Java heap space\n"


class Clock:
    def __init__(self, operator: FakeOperator) -> None:
        self.now, self.operator = 0.0, operator

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.operator.drive()


def make(tmp_path: Path, timeout_s: float = 600, **operator: Any) -> tuple[KubernetesRunner, FakeOperator, Clock]:
    store = LocalStore(tmp_path / "warehouse" / "_cdnlake_runs")
    api = FakeOperator(store, **operator)
    clock = Clock(api)
    runner = KubernetesRunner(api, FakeCore(), "cdnlake", "registry.example/cdnlake:1.2.3", "cdnlake-spark", 3,
                              timeout_s, poll_s=5, config=AppConfig(hash_key_secret="CDNLAKE_IP_HASH_KEY"),
                              clock=clock, sleep=clock.sleep, runs_store=lambda: store)  # fmt: skip
    return runner, api, clock


def test_one_application_serves_every_job_of_the_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="cdnlake.runners.k8s_run")
    runner, api, _ = make(tmp_path)
    jobs = [INGEST, COMPACT, AGGREGATE, RECONCILE]
    with runner.application("0f3c9a1e-7b2d-4c55-9d7e-2a1b3c4d5e6f") as app:
        results = [runner.run_job(p) for p in jobs]
    assert results == [{"job": p.job, "argv": p.to_argv()} for p in jobs]
    (created,) = api.created  # 4 jobs, 1 SparkApplication
    name = created["metadata"]["name"]
    assert name.startswith("cdnlake-run-0f3c9a1e-") and app.names == [name]
    folder = tmp_path / "warehouse" / "_cdnlake_runs" / name
    assert sorted(p.name for p in folder.iterdir() if p.name.endswith(".json")) == [
        "0001.request.json", "0001.result.json", "0002.request.json", "0002.result.json", "0003.request.json",
        "0003.result.json", "0004.request.json", "0004.result.json", "exit.json"]  # fmt: skip
    assert (folder / "done").exists()  # written on leaving the context ...
    assert api.states[name] == "DELETED" and api.deleted == [name]  # ... then the driver stopped and was deleted
    # What the start cost, in the flow's log: the fake driver runs from the first 0.5 s sleep on, and
    # the next state poll is when the second job starts waiting.
    assert f"SparkApplication {name}: SUBMITTED, 0.0 s after it was created" in caplog.text
    assert f"SparkApplication {name}: RUNNING, 0.5 s after it was created" in caplog.text


def test_the_application_manifest_runs_the_loop_on_the_run_folder(tmp_path: Path) -> None:
    runner, api, _ = make(tmp_path)
    with runner.application("run-1"):
        runner.run_job(INGEST)
    (manifest,) = api.created
    spec = manifest["spec"]
    assert spec["mainApplicationFile"] == "local:///opt/cdnlake/spark_jobs/job_loop.py"
    assert spec["image"] == "registry.example/cdnlake:1.2.3" and spec["executor"]["instances"] == 3
    folder = str(tmp_path / "warehouse" / "_cdnlake_runs" / manifest["metadata"]["name"])
    assert spec["arguments"] == ["--run-folder", folder, "--idle-timeout", "600"]
    # The loop may be asked to ingest with hashed IPs: its driver gets the key by reference.
    ref = {"secretKeyRef": {"name": "cdnlake-secrets", "key": "CDNLAKE_IP_HASH_KEY"}}
    assert {"name": "CDNLAKE_IP_HASH_KEY", "valueFrom": ref} in spec["driver"]["env"]
    assert "CDNLAKE_IP_HASH_KEY" not in json.dumps(spec["executor"])
    request = json.loads(Path(folder, "0001.request.json").read_text())
    assert request == {"job": "ingest", "argv": INGEST.to_argv()}
    files = "".join(p.read_text() for p in Path(folder).iterdir() if p.is_file())
    assert HASH_KEY not in files and "hash_key" not in files.lower()  # requests carry no secret


def test_dynamic_allocation_and_sizes_come_with_the_config(tmp_path: Path) -> None:
    runner, api, _ = make(tmp_path)
    runner.config = AppConfig(executor_instances=2, max_executors=8, loop_idle_s=90)
    with runner.application():
        pass
    spec = api.created[0]["spec"]
    assert spec["dynamicAllocation"]["maxExecutors"] == 8 and spec["arguments"][-2:] == ["--idle-timeout", "90"]
    assert api.created[0]["metadata"]["name"].startswith("cdnlake-run-")


def test_a_driver_that_dies_fails_the_job_at_once_and_the_next_job_gets_a_new_application(tmp_path: Path) -> None:
    runner, api, clock = make(tmp_path, timeout_s=3600, die_after=1)
    with runner.application("r") as app:
        assert runner.run_job(INGEST)["job"] == "ingest"
        started = clock.now
        with pytest.raises(JobFailedError) as info:
            runner.run_job(COMPACT)
        assert clock.now - started <= 10  # two state polls (5 s apart), not the hour of the job timeout
        message = str(info.value)
        assert message.startswith("compact: SparkApplication cdnlake-run-r-") and "FAILED before answering" in message
        assert "OOMKilled" in message and "java.lang.OutOfMemoryError" in message  # reason and log tail
        first = app.names[0]
        assert api.deleted == [first]
        api.die_after = None
        assert runner.run_job(COMPACT)["job"] == "compact"  # e.g. Prefect's retry: a new driver
    assert len(api.created) == 2 and app.names[1] != first
    second = tmp_path / "warehouse" / "_cdnlake_runs" / app.names[1]
    assert (second / "0001.request.json").exists()  # numbering starts again in the new folder
    assert api.deleted == app.names


def test_a_job_error_is_a_job_failure_and_the_application_goes_on(tmp_path: Path) -> None:
    def respond(request: dict[str, Any]) -> dict[str, Any]:
        if request["job"] == "reconcile":
            return {"ok": False, "error_type": "ReconciliationError", "error": "2024-07-13: hit_count differs"}
        return answer(request)

    runner, api, _ = make(tmp_path, respond=respond)
    with runner.application("r"):
        with pytest.raises(JobFailedError, match=r"^reconcile: ReconciliationError: 2024-07-13: hit_count differs"):
            runner.run_job(RECONCILE)
        assert runner.run_job(COMPACT)["job"] == "compact"
    assert len(api.created) == 1


def test_a_job_that_never_answers_times_out_and_its_application_is_deleted(tmp_path: Path) -> None:
    runner, api, clock = make(tmp_path, timeout_s=60, stuck=True)
    timed_out = pytest.raises(JobFailedError, match=r"timed out after 60s \(last state RUNNING\)")
    with runner.application("r") as app, timed_out:
        runner.run_job(AGGREGATE)
    assert 60 <= clock.now <= 62 and api.deleted == app.names and app.dead


def test_leaving_the_context_deletes_a_driver_that_does_not_stop(tmp_path: Path) -> None:
    runner, api, clock = make(tmp_path, stops=False)
    with runner.application("r") as app:
        runner.run_job(COMPACT)
    assert (tmp_path / "warehouse" / "_cdnlake_runs" / app.name / "done").exists()
    assert api.deleted == [app.name] and 120 <= clock.now <= 130  # RunTiming.stop_timeout_s, then deleted


def test_an_error_in_the_run_still_stops_the_application(tmp_path: Path) -> None:
    runner, api, _ = make(tmp_path)
    with pytest.raises(RuntimeError, match="report failed"), runner.application("r") as app:
        runner.run_job(COMPACT)
        raise RuntimeError("report failed")
    assert (tmp_path / "warehouse" / "_cdnlake_runs" / app.name / "done").exists() and api.deleted == [app.name]


def test_outside_the_context_each_job_is_its_own_application_again(tmp_path: Path) -> None:
    runner, api, _ = make(tmp_path)
    with runner.application("r"):
        runner.run_job(COMPACT)
    api.created.clear()
    runner.timeout_s = 0  # the single-job path waits for its own app's COMPLETED: not here
    with pytest.raises(JobFailedError, match="timed out"):
        runner.run_job(COMPACT)
    assert [m["spec"]["mainApplicationFile"] for m in api.created] == ["local:///opt/cdnlake/spark_jobs/compact.py"]


def test_a_runner_with_other_application_settings_does_not_use_the_run_application(tmp_path: Path) -> None:
    runner, api, _ = make(tmp_path)
    other, _, _ = make(tmp_path / "other")
    other.config = AppConfig(image="another:1")
    other.timeout_s = 0
    with runner.application("r"):
        with pytest.raises(JobFailedError):
            other.run_job(COMPACT)
        assert runner.run_job(COMPACT)["job"] == "compact"
    assert len(api.created) == 1


def test_without_a_runs_store_the_application_is_refused(tmp_path: Path) -> None:
    runner, api, _ = make(tmp_path)
    runner.runs_store = None
    with pytest.raises(ValueError, match="runs_store"), runner.application("r"):
        pass
    assert not api.created


def test_run_timing_defaults_poll_results_faster_than_states() -> None:
    timing = RunTiming()
    assert timing.result_poll_s < 5 and timing.stop_timeout_s >= 60


def test_shared_application_is_what_application_returns(tmp_path: Path) -> None:
    runner, api, _ = make(tmp_path)
    with shared_application(runner, "x", RunTiming(result_poll_s=0.5)) as app:
        assert runner.run_job(COMPACT)["job"] == "compact" and app.timing.result_poll_s == 0.5
    assert len(api.created) == 1


def test_the_in_process_runner_has_nothing_to_start() -> None:
    runner = InProcessRunner("local[1]")
    with runner.application("r") as app:
        assert app is None
    assert runner._spark is None  # no session was started for it


def test_a_driver_that_went_idle_before_the_request_is_replaced_without_failing_the_job(tmp_path: Path) -> None:
    runner, api, _ = make(tmp_path, idles=True)
    with runner.application("r") as app:
        assert runner.run_job(COMPACT) == {"job": "compact", "argv": COMPACT.to_argv()}
    assert len(api.created) == 2 and api.deleted == app.names  # the idle one, then the one that answered
    first = tmp_path / "warehouse" / "_cdnlake_runs" / app.names[0]
    assert not (first / "0001.result.json").exists()  # the request was never run twice


def test_a_listed_ingest_sends_its_file_list_as_a_document_to_the_run_application(tmp_path: Path) -> None:
    """The run's one application gets the ingest's listing as --files-from (a document in the run
    folders), not as thousands of request arguments; the driver reads it through Hadoop."""
    from spark_jobs.params import ListedFile, files_from_json

    runner, api, _ = make(tmp_path)
    listed = tuple(ListedFile(f"s3://logs/cf/E1ABC.2024-07-13-{h:02d}.x.gz", 100 + h, 1720828800000) for h in range(24))
    with runner.application("run-1"):
        result = runner.run_job(INGEST.replace(files=listed))
    argv = result["argv"]
    uri = argv[argv.index("--files-from") + 1]
    assert uri.startswith(str(tmp_path / "warehouse" / "_cdnlake_runs" / "file-lists" / "2024-07-13-"))
    assert files_from_json(Path(uri).read_bytes()) == listed
    assert not any("E1ABC" in a for a in argv)
