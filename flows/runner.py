"""Running a Spark job: the same `spark_jobs` modules everywhere, submitted by settings.

`local` and `standalone` run the job's `run(spark, args)` in this process (the driver) against
`local[*]` or a `spark://` master, reusing one SparkSession across the stages of a run: the JVM
start-up is paid once. `kubernetes` submits a SparkApplication (flows/k8s_runner.py).
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import Any, Protocol

from flows.settings import Settings

log = logging.getLogger(__name__)
JOBS = ("ingest", "compact", "aggregate", "reconcile", "analyze_misses")


class JobFailedError(RuntimeError):
    """A Spark job failed; the message carries the job name and the cause."""


def summarize_spark_error(exc: BaseException, limit: int = 400) -> str:
    """One line for an operator from a JVM failure: the outermost Java error and its root cause.

    Py4J's text is the JVM's whole stack trace (hundreds of lines); what matters is e.g.
    `java.net.ConnectException: getFileStatus on s3a://bucket/x: ... Connection refused`.
    """
    java = getattr(exc, "java_exception", None)
    if java is None:
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]
    chain: list[str] = []
    while java is not None and len(chain) < 20:
        message = str(java.getMessage() or "").strip().splitlines()
        chain.append(f"{java.getClass().getName()}: {message[0] if message else ''}".strip())
        java = java.getCause()
    text = chain[0] if len(chain) == 1 or chain[-1] in chain[0] else f"{chain[0]} (cause: {chain[-1]})"
    return text[:limit]


class SparkRunner(Protocol):
    def run_job(self, job: str, args: list[str]) -> dict[str, Any]: ...


class InProcessRunner:
    """Runs jobs in this process with a shared SparkSession (`local[*]` or `spark://host:port`)."""

    _lock = threading.Lock()

    def __init__(self, master: str, driver_memory: str = "4g", extra_conf: dict[str, str] | None = None,
                 ip_hash_key: str = "") -> None:  # fmt: skip
        self.master = master
        self.conf = {"spark.driver.memory": driver_memory, **(extra_conf or {})}
        self.ip_hash_key = ip_hash_key  # handed to the ingest job in-process: never on a command line
        self._spark: Any = None

    def session(self) -> Any:
        with self._lock:
            if self._spark is None:
                from spark_jobs.session import build_session

                self._spark = build_session(self.master, app_name="cdnlake", extra_conf=self.conf)
            return self._spark

    def run_job(self, job: str, args: list[str]) -> dict[str, Any]:
        if job not in JOBS:
            raise ValueError(f"unknown Spark job {job!r}; known: {', '.join(JOBS)}")
        module = importlib.import_module(f"spark_jobs.{job}")
        parsed = module.build_parser().parse_args(args)
        if job == "ingest":
            parsed.ip_hash_key = self.ip_hash_key
        log.info("spark job %s %s on %s", job, " ".join(args), self.master)
        from py4j.protocol import Py4JJavaError

        try:
            return module.run(self.session(), parsed)
        except Py4JJavaError as exc:  # Python errors (e.g. a failed reconciliation) pass unchanged
            raise JobFailedError(f"{job}: {summarize_spark_error(exc)}") from exc

    def stop(self) -> None:
        with self._lock:
            if self._spark is not None:
                self._spark.stop()
                self._spark = None


_RUNNERS: dict[tuple[str, str], SparkRunner] = {}


def runner_for(settings: Settings) -> SparkRunner:
    """The runner the settings ask for; in-process runners are shared within the process."""
    if settings.spark_runner == "kubernetes":
        from flows.k8s_runner import KubernetesRunner

        return KubernetesRunner.from_settings(settings)
    master = settings.spark_master
    if settings.spark_runner == "standalone" and not master.startswith("spark://"):
        raise ValueError(f"CDNLAKE_SPARK_MASTER must be spark://host:port for standalone, got {master!r}")
    key = (settings.spark_runner, master)
    if key not in _RUNNERS:
        _RUNNERS[key] = InProcessRunner(master, settings.spark_driver_memory, settings.spark_conf_pairs())
    runner = _RUNNERS[key]
    if isinstance(runner, InProcessRunner):
        runner.ip_hash_key = settings.ip_hash_key  # the caller's key (the session is shared, the key is not conf)
    return runner
