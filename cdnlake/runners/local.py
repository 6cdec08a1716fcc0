"""Running a Spark job: the same `spark_jobs` modules everywhere, submitted by settings.

`local` and `standalone` run the job's `run(spark, params)` in this process (the driver) against
`local[*]` or a `spark://` master, reusing one SparkSession across the stages of a run: the JVM
start-up is paid once. `kubernetes` submits a SparkApplication (cdnlake/runners/kubernetes.py).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from cdnlake.runners.jobs import JOBS, JobFailedError, JobParams, SparkRunner, summarize_spark_error
from cdnlake.settings import Settings

__all__ = ["JOBS", "InProcessRunner", "JobFailedError", "SparkRunner", "runner_for", "summarize_spark_error"]

log = logging.getLogger(__name__)


def job_module(name: str) -> Any:
    """The registry of job modules by name (imported here: they need PySpark)."""
    from spark_jobs import aggregate, analyze_misses, compact, ingest, reconcile

    modules = {m.__name__.rsplit(".", 1)[-1]: m for m in (aggregate, analyze_misses, compact, ingest, reconcile)}
    if name not in modules or name not in JOBS:
        raise ValueError(f"unknown Spark job {name!r}; known: {', '.join(JOBS)}")
    return modules[name]


class InProcessRunner:
    """Runs jobs in this process with a shared SparkSession (`local[*]` or `spark://host:port`)."""

    _lock = threading.Lock()

    def __init__(self, master: str, driver_memory: str = "4g", extra_conf: dict[str, str] | None = None):
        self.master = master
        self.conf = {"spark.driver.memory": driver_memory, **(extra_conf or {})}
        self._spark: Any = None

    def session(self) -> Any:
        with self._lock:
            if self._spark is None:
                from spark_jobs.session import build_session

                self._spark = build_session(self.master, app_name="cdnlake", extra_conf=self.conf)
            return self._spark

    def start_in_background(self) -> threading.Thread:
        """Build the session in a thread while the caller starts Prefect (the JVM takes seconds to start).

        The first job waits on the same lock; a failure here is left for that job to hit and report.
        """

        def build() -> None:
            try:
                self.session()
            except Exception:  # noqa: BLE001 - the first job builds again and raises with context
                log.debug("starting Spark in the background failed", exc_info=True)

        thread = threading.Thread(target=build, name="cdnlake-spark-start", daemon=True)
        thread.start()
        return thread

    def run_job(self, params: JobParams) -> dict[str, Any]:
        """`spark_jobs.<job>.run(spark, params)` in this process: no command line, no re-parsing."""
        job = job_module(params.job)
        log.info("spark job %s %s on %s", params.job, params, self.master)
        from py4j.protocol import Py4JJavaError

        try:
            return job.run(self.session(), params)
        except Py4JJavaError as exc:  # Python errors (e.g. a failed reconciliation) pass unchanged
            raise JobFailedError(f"{params.job}: {summarize_spark_error(exc)}") from exc

    def stop(self) -> None:
        with self._lock:
            if self._spark is not None:
                self._spark.stop()
                self._spark = None


_RUNNERS: dict[tuple[str, str], SparkRunner] = {}


def runner_for(settings: Settings) -> SparkRunner:
    """The runner the settings ask for; in-process runners are shared within the process."""
    if settings.spark_runner == "kubernetes":
        from cdnlake.runners.kubernetes import KubernetesRunner

        return KubernetesRunner.from_settings(settings)
    master = settings.spark_master
    if settings.spark_runner == "standalone" and not master.startswith("spark://"):
        raise ValueError(f"CDNLAKE_SPARK_MASTER must be spark://host:port for standalone, got {master!r}")
    key = (settings.spark_runner, master)
    if key not in _RUNNERS:
        # The hash key travels as Spark conf; Spark redacts "secret" keys in its UI and logs.
        extra = settings.spark_conf_pairs()
        if settings.ip_hash_key:
            extra["spark.cdnlake.ip.hash.secret"] = settings.ip_hash_key
        _RUNNERS[key] = InProcessRunner(master, settings.spark_driver_memory, extra)
    return _RUNNERS[key]


def start_spark_early(settings: Settings) -> threading.Thread | None:
    """Start the in-process runner's SparkSession now, in the background (no-op on Kubernetes)."""
    if settings.spark_runner == "kubernetes":
        return None
    runner = runner_for(settings)
    return runner.start_in_background() if isinstance(runner, InProcessRunner) else None
