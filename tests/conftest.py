"""One Delta-enabled SparkSession for the whole test session (JVM start-up is the slow part)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    from spark_jobs.session import build_session

    session = build_session(
        "local[2]",
        app_name="cdnlake-tests",
        extra_conf={"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2"},
    )
    yield session
    session.stop()
