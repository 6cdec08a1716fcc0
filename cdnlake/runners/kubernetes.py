"""Spark jobs as SparkApplications of the Kubeflow Spark Operator (`sparkoperator.k8s.io/v1beta2`).

The job is the same `spark_jobs/<job>.py` module as in local mode, started by the operator from
the image (`local:///opt/cdnlake/spark_jobs/<job>.py`) with the same arguments: one
SparkApplication per job. Inside `application(run_id)` the jobs go instead to one
SparkApplication for the whole run (cdnlake/runners/k8s_run.py, spark_jobs/job_loop.py).

How the result comes back: `spark_jobs.args.run_main` prints the job's JSON result on stdout as
its last act, so the runner reads the driver pod's log (`status.driverInfo.podName`) once the
application is COMPLETED and takes the last JSON object that starts a line. `--result-file` is
not used: it is a path inside the driver pod, which disappears with the application, and jobs
write it with plain `open()`, so it cannot point at the warehouse on S3.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

from kubernetes.client.exceptions import ApiException

from cdnlake.runners import k8s_run
from cdnlake.runners.jobs import JOBS, JobFailedError, JobParams
from cdnlake.runners.k8s_manifest import (
    APP_ROOT,
    DONE,
    FAILED,
    GROUP,
    HASH_KEY_ENV,
    IVY_SETTINGS,
    LOOP_JOB,
    MAX_NAME,
    PLURAL,
    VERSION,
    AppConfig,
    PodResources,
    app_label,
    run_name,
    runs_location,
    spark_application,
    spark_conf,
)
from cdnlake.settings import Settings
from cdnlake.storage import Store
from spark_jobs.params import IngestParams, files_to_json

log = logging.getLogger(__name__)
FILE_LISTS = "file-lists"  # under the run folders (<warehouse>/_cdnlake_runs): ingest file lists

# What callers and tests import from here (the manifests themselves are built in k8s_manifest).
__all__ = ["APP_ROOT", "IVY_SETTINGS", "MAX_NAME", "AppConfig", "KubernetesRunner", "PodResources", "app_label",
           "parse_result", "run_name", "spark_application", "spark_conf"]  # fmt: skip


def parse_result(log_text: str) -> dict[str, Any] | None:
    """The last JSON object in the log that starts at the beginning of a line (Spark logs follow it)."""
    decoder = json.JSONDecoder()
    for match in reversed(list(re.finditer(r"(?m)^\{", log_text))):
        try:
            value, _ = decoder.raw_decode(log_text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


class KubernetesRunner:
    """Runs each job as a SparkApplication, waits for it, returns its result and deletes it."""

    def __init__(
        self, api: Any, core: Any, namespace: str, image: str, service_account: str, executor_instances: int,
        timeout_s: float, poll_s: float = 5.0, *, config: AppConfig | None = None, log_tail_lines: int = 60,
        result_tail_lines: int = 2000, clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep, runs_store: Callable[[], Store] | None = None,
    ) -> None:  # fmt: skip
        self.api, self.core = api, core
        # Where a run's one application takes its requests (`<warehouse>/_cdnlake_runs`), made on first use.
        self.runs_store = runs_store
        self.config = replace(config or AppConfig(), namespace=namespace, image=image,
                              service_account=service_account, executor_instances=executor_instances)  # fmt: skip
        self.timeout_s, self.poll_s = timeout_s, poll_s
        self.log_tail_lines, self.result_tail_lines = log_tail_lines, result_tail_lines
        self.clock, self.sleep = clock, sleep

    @classmethod
    def from_settings(cls, settings: Settings) -> KubernetesRunner:
        """In-cluster credentials (the flow-run pod's service account), else the local kubeconfig."""
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        # The pod sizes' defaults are the settings' (one set of defaults: cdnlake/settings.py).
        app = AppConfig(
            driver=PodResources(settings.k8s_driver_cores, settings.k8s_driver_memory),
            executor=PodResources(settings.k8s_executor_cores, settings.k8s_executor_memory),
            max_executors=settings.k8s_max_executors,
            aws_region=settings.aws_region,
            extra_conf=settings.spark_conf_pairs(),
            hash_key_secret=HASH_KEY_ENV if settings.anonymize_ip == "hash" else "",
        )
        from cdnlake.integrations import aws

        runs = runs_location(settings.warehouse)
        return cls(client.CustomObjectsApi(), client.CoreV1Api(), settings.k8s_namespace, settings.k8s_image,
                   settings.k8s_service_account, settings.k8s_executor_instances, settings.k8s_timeout_s,
                   config=app, runs_store=lambda: aws.store(settings, runs))  # fmt: skip

    def application(self, run_id: str = "") -> AbstractContextManager[Any]:
        """Every run_job inside this context goes to one SparkApplication (cdnlake/runners/k8s_run.py)."""
        return k8s_run.shared_application(self, run_id)

    def create_app(self, job: str, args: Sequence[str], name: str) -> None:
        manifest = spark_application(job, args, name, self.config)
        try:
            self.api.create_namespaced_custom_object(GROUP, VERSION, self.config.namespace, PLURAL, manifest)
        except ApiException as exc:
            raise JobFailedError(f"{job}: could not create SparkApplication {name}: {exc.status} {exc.reason}") from exc

    def with_file_list(self, params: JobParams) -> JobParams:
        """An ingest's listed files as a JSON document in the warehouse's run folders, named by
        --files-from: thousands of files do not fit a command line (nor a request), and the driver
        reads the document through Hadoop like the tables."""
        if not isinstance(params, IngestParams) or params.files is None:
            return params
        if self.runs_store is None:
            raise JobFailedError("ingest: a file list needs the warehouse's run folders (runs_store=...)")
        store = self.runs_store()
        key = f"{FILE_LISTS}/{params.date.isoformat()}-{secrets.token_hex(6)}.json"
        store.write(key, files_to_json(params.files))
        return replace(params, files=None, files_from=store.uri(key))

    def run_job(self, params: JobParams) -> dict[str, Any]:
        """Submit `params` as a SparkApplication (the driver gets them as its command line), or
        hand them to the run's application when called inside `application()`."""
        params = self.with_file_list(params)
        shared = k8s_run.active_application(self)
        if shared is not None:
            return shared.run_job(params)
        job, args = params.job, params.to_argv()
        name = run_name(job, args)
        self.create_app(job, args, name)
        log.info("spark job %s %s submitted as SparkApplication %s", job, " ".join(args), name)
        try:
            status = self._wait(job, name)
            state = status["applicationState"]["state"]
            if state != DONE:
                raise JobFailedError(self.failure_message(job, name, state, status))
            text = self.driver_log(name, status, self.result_tail_lines)
            result = parse_result(text)
            if result is None:
                raise JobFailedError(
                    f"{job}: SparkApplication {name} COMPLETED but its driver log has no JSON result; "
                    f"log tail:\n{_tail(text, self.log_tail_lines)}"
                )
            return result
        finally:
            self.delete_app(name)

    def _wait(self, job: str, name: str) -> dict[str, Any]:
        """Poll until a terminal state; raise JobFailedError on timeout or when the app vanishes."""
        deadline = self.clock() + self.timeout_s
        state, errors = "", 0
        status: dict[str, Any] = {}
        while True:
            status, errors = self.poll_status(job, name, status, errors)
            new_state = (status.get("applicationState") or {}).get("state", "")
            if new_state != state:
                log.info("SparkApplication %s: %s", name, new_state)
                state = new_state
            if state == DONE or state in FAILED:
                return status
            if self.clock() >= deadline:
                message = f"timed out after {self.timeout_s:g}s (last state {state or 'NEW'})"
                raise JobFailedError(self.failure_message(job, name, message, status))
            self.sleep(self.poll_s)

    def poll_status(self, job: str, name: str, last: dict[str, Any], errors: int) -> tuple[dict[str, Any], int]:
        """The application's status (the last one seen while the API errs) and the errors in a row."""
        try:
            app = self.api.get_namespaced_custom_object(GROUP, VERSION, self.config.namespace, PLURAL, name)
            return app.get("status") or {}, 0
        except ApiException as exc:
            # A restarting API server must not fail a long job; a deleted app must.
            if exc.status == 404 or errors >= 5:
                raise JobFailedError(f"{job}: SparkApplication {name} unreadable: {exc.status} {exc.reason}") from exc
            return last, errors + 1

    def failure_message(self, job: str, name: str, state: str, status: Mapping[str, Any]) -> str:
        reason = (status.get("applicationState") or {}).get("errorMessage") or "no error message"
        tail = _tail(self.driver_log(name, status, self.log_tail_lines), self.log_tail_lines)
        return f"{job}: SparkApplication {name} {state}: {reason}\ndriver log tail:\n{tail}"

    def driver_log(self, name: str, status: Mapping[str, Any], lines: int) -> str:
        pod = (status.get("driverInfo") or {}).get("podName") or f"{name}-driver"
        try:
            return str(self.core.read_namespaced_pod_log(name=pod, namespace=self.config.namespace, tail_lines=lines))
        except ApiException as exc:  # SUBMISSION_FAILED has no driver pod at all
            return f"(driver log of {pod} unavailable: {exc.status} {exc.reason})"

    def delete_app(self, name: str) -> None:
        """Best effort: a failed delete is logged, never allowed to hide the job's own outcome."""
        try:
            self.api.delete_namespaced_custom_object(GROUP, VERSION, self.config.namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status != 404:
                log.warning("could not delete SparkApplication %s: %s %s", name, exc.status, exc.reason)
        except Exception as exc:  # network errors: the operator's TTL deletes the app later
            log.warning("could not delete SparkApplication %s: %s", name, exc)


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def main(argv: Sequence[str] | None = None) -> None:
    """Print the SparkApplication a run would create: `python -m cdnlake.runners.kubernetes ingest --date ...`."""
    import yaml  # a dependency of the kubernetes client

    from cdnlake.settings import load_settings

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*JOBS, LOOP_JOB):
        raise SystemExit(f"usage: python -m cdnlake.runners.kubernetes {{{','.join((*JOBS, LOOP_JOB))}}} "
                         "[job arguments...]")  # fmt: skip
    s = load_settings()
    config = AppConfig(s.k8s_namespace, s.k8s_image, s.k8s_service_account, s.k8s_executor_instances,
                       aws_region=s.aws_region, extra_conf=s.spark_conf_pairs())  # fmt: skip
    manifest = spark_application(argv[0], argv[1:], run_name(argv[0], argv[1:]), config)
    sys.stdout.write(yaml.safe_dump(manifest, sort_keys=False))


if __name__ == "__main__":
    main()
