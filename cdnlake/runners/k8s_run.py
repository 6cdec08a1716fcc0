"""One SparkApplication per run on Kubernetes: every job of the run in one driver.

Without it each job is a SparkApplication of its own (cdnlake/runners/kubernetes.py): a daily run
pays a driver pod, executor pods, a JVM and a SparkSession for every ingest, compact, aggregate and
reconcile. Inside `KubernetesRunner.application(run_id)` the runner submits one application whose
driver runs spark_jobs/job_loop.py, and each `run_job(params)` becomes a request in the run folder
`<warehouse>/_cdnlake_runs/<application name>/` (written here through the warehouse's Store, read
by the driver through Hadoop's FileSystem); the result file comes back the same way.

While it waits for a result, the runner watches the application: a driver that died (FAILED, or
finished without being told to) fails the job at once with the operator's reason and the
driver's log tail, not after the job timeout. The next job of the context (e.g. Prefect's retry)
then starts a new application. On leaving the context the runner writes `done`, waits for the
driver to finish (bounded) and deletes the application; the driver also stops by itself after
`loop_idle_s` without a request, so a crashed flow leaves nothing running.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from cdnlake.runners.jobs import JobFailedError, JobParams
from cdnlake.runners.k8s_manifest import DONE, FAILED, LOOP_JOB, app_label
from cdnlake.storage import Store
from spark_jobs.job_loop import DONE as DONE_MARKER
from spark_jobs.job_loop import EXIT, request_name, result_name

log = logging.getLogger(__name__)
# `runner` below is a KubernetesRunner, typed Any: cdnlake/runners/kubernetes.py imports this module.

# States in which the driver can serve no more requests (restartPolicy Never: no rerun comes).
ENDED = (DONE, "SUCCEEDING", "FAILING", *FAILED)

# The application of the current run. A ContextVar, not a runner attribute: the flow builds a
# runner per run (cdnlake/services.py), and concurrent backfill dates each have their own run.
_ACTIVE: ContextVar[RunApplication | None] = ContextVar("cdnlake_run_application", default=None)


@dataclass(frozen=True)
class RunTiming:
    result_poll_s: float = 0.5  # how often the result file is looked for (state: the runner's poll_s)
    stop_timeout_s: float = 120.0  # how long to wait for the driver to finish after `done`


class DriverWentIdle(JobFailedError):
    """The driver stopped for want of requests before it read this one: sending it again is safe."""


def active_application(runner: Any) -> RunApplication | None:
    """The current run's application, if it was started with the same application settings."""
    app = _ACTIVE.get()
    return app if app is not None and app.runner.config == runner.config else None


@contextmanager
def shared_application(runner: Any, run_id: str = "", timing: RunTiming | None = None
                       ) -> Iterator[RunApplication]:  # fmt: skip
    if runner.runs_store is None:
        raise ValueError("KubernetesRunner needs runs_store (the warehouse's run folders) for one application per run")
    app = RunApplication(runner, runner.runs_store(), run_id, timing or RunTiming())
    app.start()
    token = _ACTIVE.set(app)
    try:
        yield app
    finally:
        _ACTIVE.reset(token)
        app.stop()


class RunApplication:
    """The SparkApplication running spark_jobs/job_loop.py for one run, and its run folder."""

    def __init__(self, runner: Any, store: Store, run_id: str, timing: RunTiming) -> None:
        self.runner, self.store, self.run_id, self.timing = runner, store, run_id, timing
        self.names: list[str] = []  # every application started for the run (more than one after a death)
        self.requests = 0
        self.dead = ""  # why the current application takes no more requests
        self.state, self.created_at = "", 0.0  # the operator's last state; for the log of what a start costs
        self._lock = threading.Lock()  # one request at a time: the driver serves them in order

    @property
    def name(self) -> str:
        return self.names[-1]

    def start(self) -> None:
        name = app_label(f"cdnlake-run-{self.run_id[:8]}" if self.run_id else "cdnlake-run")
        args = ["--run-folder", self.store.uri(name), "--idle-timeout", str(self.runner.config.loop_idle_s)]
        self.runner.create_app(LOOP_JOB, args, name)
        self.names.append(name)
        self.requests, self.dead, self.state, self.created_at = 0, "", "", self.runner.clock()
        log.info("Spark jobs of run %s go to SparkApplication %s (run folder %s)", self.run_id, name, args[1])

    def run_job(self, params: JobParams) -> dict[str, Any]:
        with self._lock:
            try:
                return self._request(params)
            except DriverWentIdle as exc:  # e.g. a long wait between stages: it never saw the request
                log.warning("%s; sending the request to a new SparkApplication", str(exc).splitlines()[0])
                return self._request(params)

    def _request(self, params: JobParams) -> dict[str, Any]:
        if self.dead:
            log.warning("SparkApplication %s ended (%s): starting a new one", self.name, self.dead)
            self.start()
        self.requests += 1
        number, request = self.requests, {"job": params.job, "argv": params.to_argv()}
        self.store.create(f"{self.name}/{request_name(number)}", json.dumps(request, indent=2).encode())
        log.info("spark job %s %s: request %04d of %s", params.job, " ".join(request["argv"]), number, self.name)
        return self._await(params.job, number)

    def _read_result(self, number: int) -> dict[str, Any] | None:
        data = self.store.read(f"{self.name}/{result_name(number)}")
        return None if data is None else dict(json.loads(data))

    def _await(self, job: str, number: int) -> dict[str, Any]:
        runner, name = self.runner, self.name
        deadline = runner.clock() + runner.timeout_s
        next_state, errors, state = runner.clock(), 0, ""
        status: dict[str, Any] = {}
        while True:
            found = self._read_result(number)
            if found is not None:
                return _job_result(job, name, number, found)
            if runner.clock() >= next_state:
                status, errors = runner.poll_status(job, name, status, errors)
                state = (status.get("applicationState") or {}).get("state", "")
                if state != self.state:
                    self.state = state
                    log.info("SparkApplication %s: %s, %.1f s after it was created", name, state or "NEW",
                             runner.clock() - self.created_at)  # fmt: skip
                if state in ENDED:
                    found = self._read_result(number)  # written just before the driver stopped?
                    if found is not None:
                        return _job_result(job, name, number, found)
                    raise self._ended(job, number, state, status)
                next_state = runner.clock() + runner.poll_s
            if runner.clock() >= deadline:
                why = f"timed out after {runner.timeout_s:g}s (last state {state or 'NEW'})"
                self.dead = why
                runner.delete_app(name)  # the driver is still busy with it: a retry needs a new one
                raise JobFailedError(runner.failure_message(job, name, why, status))
            runner.sleep(self.timing.result_poll_s)

    def _ended(self, job: str, number: int, state: str, status: dict[str, Any]) -> JobFailedError:
        found = self.store.read(f"{self.name}/{EXIT}")
        exit_note = dict(json.loads(found)) if found else {}
        why = f"{state} before answering" + (f" (driver: {exit_note['reason']})" if exit_note else "")
        self.dead = why
        message = self.runner.failure_message(job, self.name, why, status)
        self.runner.delete_app(self.name)
        idle = str(exit_note.get("reason", "")).startswith("idle") and int(exit_note.get("served", 0)) < number
        return DriverWentIdle(message) if idle else JobFailedError(message)

    def stop(self) -> None:
        """`done`, a bounded wait for the driver to finish, then the application is deleted."""
        if self.dead:
            return  # already deleted when it ended
        try:
            self.store.write(f"{self.name}/{DONE_MARKER}", b"")
            self._wait_until_ended()
        except Exception as exc:  # noqa: BLE001 - never hide the run's own outcome; the delete stops it anyway
            log.warning("SparkApplication %s did not stop cleanly: %s", self.name, exc)
        finally:
            self.runner.delete_app(self.name)

    def _wait_until_ended(self) -> None:
        runner = self.runner
        deadline, errors = runner.clock() + self.timing.stop_timeout_s, 0
        status: dict[str, Any] = {}
        while True:
            status, errors = runner.poll_status(LOOP_JOB, self.name, status, errors)
            state = (status.get("applicationState") or {}).get("state", "")
            if state in ENDED:
                if state != DONE:
                    log.warning("SparkApplication %s ended %s after its last job", self.name, state)
                return
            if runner.clock() >= deadline:
                log.warning("SparkApplication %s still %s %gs after `done`: deleting it", self.name, state,
                            self.timing.stop_timeout_s)  # fmt: skip
                return
            runner.sleep(runner.poll_s)


def _job_result(job: str, name: str, number: int, found: dict[str, Any]) -> dict[str, Any]:
    if found.get("ok"):
        return dict(found["result"])
    raise JobFailedError(f"{job}: {found.get('error_type', 'Error')}: {found.get('error', '')} "
                         f"(request {number:04d} of {name})")  # fmt: skip


__all__ = ["RunApplication", "RunTiming", "active_application", "shared_application"]
