"""Spark jobs as SparkApplications of the Kubeflow Spark Operator (`sparkoperator.k8s.io/v1beta2`).

The job is the same `spark_jobs/<job>.py` module as in local mode, started by the operator from
the image (`local:///opt/cdnlake/spark_jobs/<job>.py`) with the same arguments.

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
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from typing import Any

from kubernetes.client.exceptions import ApiException

from cdnlake.runners.jobs import JOBS, JobFailedError, JobParams
from cdnlake.settings import Settings
from cdnlake.storage import Store
from spark_jobs.params import IngestParams, files_to_json

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "sparkoperator.k8s.io", "v1beta2", "sparkapplications"
API_VERSION = f"{GROUP}/{VERSION}"
APP_ROOT = "/opt/cdnlake"  # where the Dockerfile puts the project
IVY_SETTINGS = f"{APP_ROOT}/conf/ivysettings.xml"
# hadoop 3.4 uses the AWS SDK v2 (the v1 com.amazonaws.auth.WebIdentityTokenCredentialsProvider is gone).
# The driver's session builder (spark_jobs.session) overrides it with DefaultCredentialsProvider, whose
# chain tries this provider right after env/system-property keys (which pods never get): IRSA either way.
WEB_IDENTITY_PROVIDER = "software.amazon.awssdk.auth.credentials.WebIdentityTokenFileCredentialsProvider"
DONE, FAILED = "COMPLETED", ("FAILED", "SUBMISSION_FAILED")
# The driver pod is "<app>-driver": a 56-character app name keeps it a valid 63-character DNS label.
MAX_NAME = 63 - len("-driver")
APP_UID = 185  # the image's non-root user (Spark images' convention)


@dataclass(frozen=True)
class PodResources:
    cores: int
    memory: str  # Spark notation: 512m, 4g


_DEFAULTS = Settings()


@dataclass(frozen=True)
class AppConfig:
    """Everything in a SparkApplication that does not change from run to run."""

    # Defaults: the settings' (cdnlake/settings.py holds the one set of defaults).
    namespace: str = _DEFAULTS.k8s_namespace
    image: str = _DEFAULTS.k8s_image
    service_account: str = _DEFAULTS.k8s_service_account
    executor_instances: int = _DEFAULTS.k8s_executor_instances
    max_executors: int = _DEFAULTS.k8s_max_executors  # > 0: dynamic allocation from executor_instances up to this
    driver: PodResources = PodResources(_DEFAULTS.k8s_driver_cores, _DEFAULTS.k8s_driver_memory)
    executor: PodResources = PodResources(_DEFAULTS.k8s_executor_cores, _DEFAULTS.k8s_executor_memory)
    aws_region: str = _DEFAULTS.aws_region
    ttl_s: int = 3600  # the operator deletes a finished app even if this process died first
    extra_conf: Mapping[str, str] = field(default_factory=dict)
    # The Secret key the IP hash key comes from ("" = not needed): the driver gets it as an env
    # variable by reference (secretKeyRef), so its value is never in the SparkApplication.
    hash_key_secret: str = ""


def _arg_value(args: Sequence[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def run_name(job: str, args: Sequence[str], suffix: str | None = None) -> str:
    """`cdnlake-<job>-<date>-<random>` as a DNS-1123 label the driver pod name can extend."""
    suffix = suffix or secrets.token_hex(4)
    date = _arg_value(args, "--date") or _arg_value(args, "--start") or ""
    base = re.sub(r"[^a-z0-9]+", "-", f"cdnlake-{job}-{date}".lower()).strip("-")
    return f"{base[: MAX_NAME - len(suffix) - 1].rstrip('-')}-{suffix}"


def spark_conf(config: AppConfig) -> dict[str, str]:
    """Delta, s3a with IRSA (no keys anywhere) and jars that never leave the image."""
    return {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.hadoop.fs.s3a.aws.credentials.provider": WEB_IDENTITY_PROVIDER,
        # A fixed region spares s3a a bucket-location probe (and the IAM permission it needs).
        "spark.hadoop.fs.s3a.endpoint.region": config.aws_region,
        "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        # The jars are in $SPARK_HOME/jars; if anything asks Ivy for packages, it resolves there.
        "spark.jars.ivySettings": IVY_SETTINGS,
        "spark.jars.ivy": "/tmp/ivy",
        "spark.ui.showConsoleProgress": "false",
        **config.extra_conf,
    }


def _pod(resources: PodResources, config: AppConfig, job: str) -> dict[str, Any]:
    return {
        "cores": resources.cores,
        "memory": resources.memory,
        # Executors read S3 too, so they need the IRSA service account as much as the driver.
        "serviceAccount": config.service_account,
        "labels": {"app.kubernetes.io/name": "cdnlake", "app.kubernetes.io/component": "spark", "cdnlake.io/job": job},
        "env": [{"name": "AWS_REGION", "value": config.aws_region}],
        # fsGroup lets the non-root user read the projected IRSA token file.
        "podSecurityContext": {"runAsNonRoot": True, "runAsUser": APP_UID, "runAsGroup": APP_UID, "fsGroup": APP_UID},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


SECRET_NAME = "cdnlake-secrets"
HASH_KEY_ENV = "CDNLAKE_IP_HASH_KEY"  # what spark_jobs/ingest.py reads in the driver
FILE_LISTS = "_cdnlake_file_lists"  # under the warehouse: the ingest file lists of submitted jobs


def _driver(config: AppConfig, job: str) -> dict[str, Any]:
    pod = _pod(config.driver, config, job)
    if config.hash_key_secret and job == "ingest":
        ref = {"secretKeyRef": {"name": SECRET_NAME, "key": config.hash_key_secret}}
        pod["env"] = [*pod["env"], {"name": HASH_KEY_ENV, "valueFrom": ref}]
    return pod


def spark_application(job: str, args: Sequence[str], name: str, config: AppConfig) -> dict[str, Any]:
    """The SparkApplication manifest for one run of `spark_jobs.<job>` with `args`."""
    executor = _pod(config.executor, config, job) | {
        "instances": config.executor_instances,
        "deleteOnTermination": True,
    }
    spec: dict[str, Any] = {
        "type": "Python",
        "mode": "cluster",
        "sparkVersion": version("pyspark"),
        "image": config.image,
        "imagePullPolicy": "IfNotPresent",
        "mainApplicationFile": f"local://{APP_ROOT}/spark_jobs/{job}.py",
        "arguments": list(args),
        "sparkConf": spark_conf(config),
        "restartPolicy": {"type": "Never"},  # Prefect's task retries decide about re-running
        "timeToLiveSeconds": config.ttl_s,
        "driver": _driver(config, job),
        "executor": executor,
    }
    if config.max_executors > 0:
        spec["dynamicAllocation"] = {
            "enabled": True,
            "initialExecutors": config.executor_instances,
            "minExecutors": 1,
            "maxExecutors": max(config.max_executors, config.executor_instances),
        }
    metadata = {"name": name, "namespace": config.namespace, "labels": {"app.kubernetes.io/name": "cdnlake"}}
    return {"apiVersion": API_VERSION, "kind": "SparkApplication", "metadata": metadata, "spec": spec}


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
        sleep: Callable[[float], None] = time.sleep, file_lists: Store | None = None,
    ) -> None:  # fmt: skip
        self.api, self.core = api, core
        self.config = replace(config or AppConfig(), namespace=namespace, image=image,
                              service_account=service_account, executor_instances=executor_instances)  # fmt: skip
        self.timeout_s, self.poll_s = timeout_s, poll_s
        self.log_tail_lines, self.result_tail_lines = log_tail_lines, result_tail_lines
        self.clock, self.sleep = clock, sleep
        self.file_lists = file_lists  # the warehouse's store: where an ingest's file list is written

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

        return cls(client.CustomObjectsApi(), client.CoreV1Api(), settings.k8s_namespace, settings.k8s_image,
                   settings.k8s_service_account, settings.k8s_executor_instances, settings.k8s_timeout_s,
                   config=app, file_lists=aws.store(settings, settings.warehouse))  # fmt: skip

    def with_file_list(self, params: JobParams) -> JobParams:
        """An ingest's listed files as a JSON document next to the warehouse, named by --files-from:
        thousands of files do not fit a command line, and the driver reads the list through Hadoop."""
        if not isinstance(params, IngestParams) or params.files is None:
            return params
        if self.file_lists is None:
            raise JobFailedError("ingest: a file list needs a store to write it to (KubernetesRunner(file_lists=...))")
        key = f"{FILE_LISTS}/{params.date.isoformat()}-{secrets.token_hex(6)}.json"
        self.file_lists.write(key, files_to_json(params.files))
        return replace(params, files=None, files_from=self.file_lists.uri(key))

    def run_job(self, params: JobParams) -> dict[str, Any]:
        """Submit `params` as a SparkApplication; the driver gets them as its command line."""
        params = self.with_file_list(params)
        job, args = params.job, params.to_argv()
        name = run_name(job, args)
        manifest = spark_application(job, args, name, self.config)
        try:
            self.api.create_namespaced_custom_object(GROUP, VERSION, self.config.namespace, PLURAL, manifest)
        except ApiException as exc:
            raise JobFailedError(f"{job}: could not create SparkApplication {name}: {exc.status} {exc.reason}") from exc
        log.info("spark job %s %s submitted as SparkApplication %s", job, " ".join(args), name)
        try:
            status = self._wait(job, name)
            state = status["applicationState"]["state"]
            if state != DONE:
                raise JobFailedError(self._failure(job, name, state, status))
            text = self._driver_log(name, status, self.result_tail_lines)
            result = parse_result(text)
            if result is None:
                raise JobFailedError(
                    f"{job}: SparkApplication {name} COMPLETED but its driver log has no JSON result; "
                    f"log tail:\n{_tail(text, self.log_tail_lines)}"
                )
            return result
        finally:
            self._delete(name)

    def _wait(self, job: str, name: str) -> dict[str, Any]:
        """Poll until a terminal state; raise JobFailedError on timeout or when the app vanishes."""
        deadline = self.clock() + self.timeout_s
        state, errors = "", 0
        status: dict[str, Any] = {}
        while True:
            try:
                app = self.api.get_namespaced_custom_object(GROUP, VERSION, self.config.namespace, PLURAL, name)
                status, errors = app.get("status") or {}, 0
            except ApiException as exc:
                # A restarting API server must not fail a long job; a deleted app must.
                errors += 1
                if exc.status == 404 or errors > 5:
                    message = f"{job}: SparkApplication {name} unreadable: {exc.status} {exc.reason}"
                    raise JobFailedError(message) from exc
            new_state = (status.get("applicationState") or {}).get("state", "")
            if new_state != state:
                log.info("SparkApplication %s: %s", name, new_state)
                state = new_state
            if state == DONE or state in FAILED:
                return status
            if self.clock() >= deadline:
                message = f"timed out after {self.timeout_s:g}s (last state {state or 'NEW'})"
                raise JobFailedError(self._failure(job, name, message, status))
            self.sleep(self.poll_s)

    def _failure(self, job: str, name: str, state: str, status: Mapping[str, Any]) -> str:
        reason = (status.get("applicationState") or {}).get("errorMessage") or "no error message"
        tail = _tail(self._driver_log(name, status, self.log_tail_lines), self.log_tail_lines)
        return f"{job}: SparkApplication {name} {state}: {reason}\ndriver log tail:\n{tail}"

    def _driver_log(self, name: str, status: Mapping[str, Any], lines: int) -> str:
        pod = (status.get("driverInfo") or {}).get("podName") or f"{name}-driver"
        try:
            return str(self.core.read_namespaced_pod_log(name=pod, namespace=self.config.namespace, tail_lines=lines))
        except ApiException as exc:  # SUBMISSION_FAILED has no driver pod at all
            return f"(driver log of {pod} unavailable: {exc.status} {exc.reason})"

    def _delete(self, name: str) -> None:
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
    if not argv or argv[0] not in JOBS:
        raise SystemExit(f"usage: python -m cdnlake.runners.kubernetes {{{','.join(JOBS)}}} [job arguments...]")
    s = load_settings()
    config = AppConfig(s.k8s_namespace, s.k8s_image, s.k8s_service_account, s.k8s_executor_instances,
                       aws_region=s.aws_region, extra_conf=s.spark_conf_pairs())  # fmt: skip
    manifest = spark_application(argv[0], argv[1:], run_name(argv[0], argv[1:]), config)
    sys.stdout.write(yaml.safe_dump(manifest, sort_keys=False))


if __name__ == "__main__":
    main()
