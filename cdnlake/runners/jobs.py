"""What every Spark runner shares: the jobs it may run, the runner interface and its error.

The in-process runner (cdnlake/runners/local.py) and the Kubernetes runner (cdnlake/runners/kubernetes.py) both
import this module and not each other.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from spark_jobs.errors import summarize_spark_error

# The job registry is spark_jobs/params.py (Spark-free): a job is known by its parameter class.
from spark_jobs.params import JOBS, JobParams

__all__ = ["JOBS", "JobFailedError", "JobParams", "SparkRunner", "summarize_spark_error"]


class JobFailedError(RuntimeError):
    """A Spark job failed; the message carries the job name and the cause."""


class SparkRunner(Protocol):
    def run_job(self, params: JobParams) -> dict[str, Any]: ...

    def application(self, run_id: str = "") -> AbstractContextManager[Any]:
        """The jobs run inside this context share one Spark application (one driver start).

        In-process runners already share their session: a no-op there. On Kubernetes one
        SparkApplication serves every job of the context (cdnlake/runners/k8s_run.py)."""
        ...
