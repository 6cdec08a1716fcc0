"""`make bench` keeps working: its Spark step runs the real jobs and agrees with DuckDB on a tiny day.

The bench is not part of `make test` (minutes at 2M lines); this runs its two engine functions
on 1,200 generated lines, so an interface change in the jobs breaks a test, not the next
benchmark run.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from bench.engines import run_duckdb, run_spark
from cdnlake.demo import generate_days

D = dt.date(2024, 5, 1)


def test_bench_spark_step_agrees_with_the_duckdb_reference(spark: Any, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    generated = generate_days(landing, [D], 2, [1_200], seed=3, files_per_hour=1)[D]
    cdnlake = run_spark(landing, tmp_path, D.isoformat(), spark=spark)
    duck = run_duckdb(landing, tmp_path)
    assert cdnlake["loaded"] == generated.valid_lines
    assert cdnlake["hourly"] == duck["hourly"] and len(duck["hourly"]) == 24
    assert sum(int(row[2]) for row in duck["hourly"]) == generated.valid_lines  # REQUEST_COUNT per hour
