"""Running a Spark job: the same `spark_jobs` modules everywhere, submitted by settings.

`local` and `standalone` run the job's `run(spark, params)` in this process (the driver) against
`local[*]` or a `spark://` master, reusing one SparkSession across the stages of a run: the JVM
start-up is paid once. `kubernetes` submits a SparkApplication (cdnlake/runners/kubernetes.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from cdnlake.runners.jobs import JOBS, JobFailedError, JobParams, SparkRunner, summarize_spark_error
from cdnlake.settings import Settings

__all__ = ["JOBS", "InProcessRunner", "JobFailedError", "SparkRunner", "build_runner", "summarize_spark_error"]

log = logging.getLogger(__name__)
def job_module(name: str) -> Any:
    """The registry of job modules by name (imported here: they need PySpark)."""
    from spark_jobs import aggregate, analyze_misses, compact, ingest, reconcile

    modules = {m.__name__.rsplit(".", 1)[-1]: m for m in (aggregate, analyze_misses, compact, ingest, reconcile)}
    if name not in modules or name not in JOBS:
        raise ValueError(f"unknown Spark job {name!r}; known: {', '.join(JOBS)}")
    return modules[name]


def spark_log_file(log_dir: str) -> str:
    """A new file for this process's Spark driver log (one session per process)."""
    folder = Path(log_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"spark-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{os.getpid()}.log")


class InProcessRunner:
    """Runs jobs in this process with a shared SparkSession (`local[*]` or `spark://host:port`)."""

    _lock = threading.Lock()

    def __init__(self, master: str, driver_memory: str = Settings.spark_driver_memory,
                 extra_conf: dict[str, str] | None = None,
                 ip_hash_key: str = "", log_dir: str | None = None) -> None:  # fmt: skip
        self.master = master
        self.conf = {"spark.driver.memory": driver_memory, **(extra_conf or {})}
        self.ip_hash_key = ip_hash_key  # handed to the ingest job in-process: never on a command line
        self.log_dir = log_dir
        self._spark: Any = None

    def session(self) -> Any:
        with self._lock:
            if self._spark is None:
                from spark_jobs.session import build_session

                log_file = spark_log_file(self.log_dir) if self.log_dir else None
                self._spark = build_session(self.master, app_name="cdnlake", extra_conf=self.conf, log_file=log_file)
                if log_file:  # once per process: the console shows Spark's errors only
                    log.info("Spark log: %s", log_file)
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
        log.debug("spark job %s %s on %s", params.job, params, self.master)  # -v shows it
        from py4j.protocol import Py4JJavaError

        try:
            if params.job == "ingest":  # the key goes in-process, never through a command line
                return job.run(self.session(), params, ip_hash_key=self.ip_hash_key)
            return job.run(self.session(), params)
        except Py4JJavaError as exc:  # Python errors (e.g. a failed reconciliation) pass unchanged
            raise JobFailedError(f"{params.job}: {summarize_spark_error(exc)}") from exc

    def application(self, run_id: str = "") -> AbstractContextManager[None]:
        """The jobs of a run already share this process's session: nothing to start or stop."""
        return nullcontext()

    def stop(self) -> None:
        with self._lock:
            if self._spark is not None:
                self._spark.stop()
                self._spark = None


def build_runner(settings: Settings) -> SparkRunner:
    """The runner the settings ask for (built once per run by cdnlake.services.build_services)."""
    if settings.spark_runner == "kubernetes":
        from cdnlake.runners.kubernetes import KubernetesRunner

        return KubernetesRunner.from_settings(settings)
    master = settings.spark_master
    if settings.spark_runner == "standalone" and not master.startswith("spark://"):
        raise ValueError(f"CDNLAKE_SPARK_MASTER must be spark://host:port for standalone, got {master!r}")
    # The IP hash key goes to the ingest job in-process, never through conf or a command line.
    return InProcessRunner(master, settings.spark_driver_memory, settings.spark_conf_pairs(),
                           ip_hash_key=settings.ip_hash_key, log_dir=settings.log_dir)  # fmt: skip


def start_spark_early(runner: SparkRunner) -> threading.Thread | None:
    """Start an in-process runner's SparkSession now, in the background (no-op on Kubernetes)."""
    return runner.start_in_background() if isinstance(runner, InProcessRunner) else None
