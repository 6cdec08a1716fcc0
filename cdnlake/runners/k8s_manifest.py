"""The SparkApplication manifests of cdnlake's Spark jobs (Kubeflow Spark Operator, `sparkoperator.k8s.io/v1beta2`).

Pure data: no Kubernetes client here. cdnlake/runners/kubernetes.py submits them (one per job, or
one per run: cdnlake/runners/k8s_run.py); k8s/spark-apps/*.yaml are these manifests for one set
of arguments (tests/test_k8s_manifests.py keeps them equal).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

from cdnlake.settings import Settings

GROUP, VERSION, PLURAL = "sparkoperator.k8s.io", "v1beta2", "sparkapplications"
API_VERSION = f"{GROUP}/{VERSION}"
APP_ROOT = "/opt/cdnlake"  # where the Dockerfile puts the project
IVY_SETTINGS = f"{APP_ROOT}/conf/ivysettings.xml"
# hadoop 3.4 uses the AWS SDK v2 (the v1 com.amazonaws.auth.WebIdentityTokenCredentialsProvider is gone).
# The driver's session builder (spark_jobs.session) overrides it with DefaultCredentialsProvider, whose
# chain tries this provider right after env/system-property keys (which pods never get): IRSA either way.
WEB_IDENTITY_PROVIDER = "software.amazon.awssdk.auth.credentials.WebIdentityTokenFileCredentialsProvider"
DONE, FAILED = "COMPLETED", ("FAILED", "SUBMISSION_FAILED")
RUNS_DIR = "_cdnlake_runs"  # under the warehouse: one folder per run's application (spark_jobs/job_loop.py)
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
    # A run's one application (cdnlake/runners/k8s_run.py) stops after this long without a request.
    loop_idle_s: int = 600


def runs_location(warehouse: str) -> str:
    return f"{warehouse.rstrip('/')}/{RUNS_DIR}"


def _arg_value(args: Sequence[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def app_label(base: str, suffix: str | None = None) -> str:
    """`<base>-<random>` as a DNS-1123 label the driver pod name can extend."""
    suffix = suffix or secrets.token_hex(4)
    base = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")
    return f"{base[: MAX_NAME - len(suffix) - 1].rstrip('-')}-{suffix}"


def run_name(job: str, args: Sequence[str], suffix: str | None = None) -> str:
    """`cdnlake-<job>-<date>-<random>` as a DNS-1123 label the driver pod name can extend."""
    date = _arg_value(args, "--date") or _arg_value(args, "--start") or ""
    return app_label(f"cdnlake-{job}-{date}", suffix)


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
HASH_KEY_ENV = "CDNLAKE_IP_HASH_KEY"  # what spark_jobs/ingest_reader.py reads in the driver
LOOP_JOB = "job_loop"  # spark_jobs/job_loop.py: one driver serving every job of a run


def _driver(config: AppConfig, job: str) -> dict[str, Any]:
    pod = _pod(config.driver, config, job)
    if config.hash_key_secret and job in ("ingest", LOOP_JOB):  # the loop may be asked to ingest
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
