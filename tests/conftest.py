"""One Delta-enabled SparkSession for the whole test session (JVM start-up is the slow part)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.jvm import SHORT_LIVED_JVM_OPTS

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    from spark_jobs.session import build_session

    session = build_session(
        "local[2]",
        app_name="cdnlake-tests",
        # The quick C1 compiler and the serial collector: the session's tiny jobs never repay C2's
        # warm-up on 2 shared cores (the same options as the tests' short-lived JVMs).
        extra_conf={"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2",
                    "spark.driver.extraJavaOptions": SHORT_LIVED_JVM_OPTS},  # fmt: skip
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One temporary Prefect server (a throwaway SQLite database) for every module that runs a flow:
    its subprocess takes ~15 s to start on an idle machine and ~50 s on a busy one, once, not per module.
    Tests that add server-wide objects (a global concurrency limit, automations) remove them again."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
