"""One engine step per process, so each step's time and peak memory are its own.

`python -m bench.engines duckdb|duckdb-fast LANDING OUT` / `spark LANDING OUT DATE` print a JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def run_duckdb(landing: Path, out: Path) -> dict[str, float]:
    from bench.duckdb_reference import HOURLY_SQL, ingest_to_parquet

    files = sorted(landing.rglob("*.gz"))
    started = time.perf_counter()
    con = ingest_to_parquet(files, out / "duckdb_parquet")
    ingest_s = time.perf_counter() - started
    started = time.perf_counter()
    con.execute("DROP TABLE logs")
    con.execute(
        f"CREATE VIEW logs AS SELECT * FROM read_parquet('{out}/duckdb_parquet/**/*.parquet', hive_partitioning=true)"
    )
    hourly = con.execute(HOURLY_SQL).fetchall()
    stats_s = time.perf_counter() - started
    return {"ingest_s": ingest_s, "stats_s": stats_s, "hourly": [list(map(str, r)) for r in hourly]}


def run_duckdb_fast(landing: Path, out: Path) -> dict[str, float]:
    from bench.duckdb_fast import hourly_from_parquet, ingest_to_parquet

    files = sorted(landing.rglob("*.gz"))
    started = time.perf_counter()
    con = ingest_to_parquet(files, out / "duckdb_fast_parquet")
    ingest_s = time.perf_counter() - started
    started = time.perf_counter()
    hourly = hourly_from_parquet(con, out / "duckdb_fast_parquet")
    stats_s = time.perf_counter() - started
    return {"ingest_s": ingest_s, "stats_s": stats_s, "hourly": [list(map(str, r)) for r in hourly]}


def run_spark(landing: Path, out: Path, date: str, spark: Any = None) -> dict[str, float]:
    """cdnlake's ingest, compaction and statistics jobs; `spark`: a session to use (the tests')."""
    from spark_jobs import aggregate, compact, ingest
    from spark_jobs.params import PARAMS
    from spark_jobs.session import build_session

    started = time.perf_counter()
    spark = spark or build_session("local[*]", extra_conf={"spark.driver.memory": "3g"})
    startup_s = time.perf_counter() - started
    wh = str(out / "warehouse")
    timings: dict[str, float] = {"startup_s": startup_s}
    steps = [
        ("ingest", ingest, ["--date", date, "--source", str(landing), "--warehouse", wh]),
        ("compact", compact, ["--date", date, "--warehouse", wh]),
        ("stats", aggregate, ["--date", date, "--warehouse", wh]),
    ]
    for name, module, argv in steps:
        started = time.perf_counter()
        # The job's own command line parsed into its typed parameters, as under spark-submit.
        params = PARAMS[name if name != "stats" else "aggregate"].from_namespace(module.build_parser().parse_args(argv))
        result = module.run(spark, params)
        timings[f"{name}_s"] = time.perf_counter() - started
        if name == "ingest":
            timings["loaded"] = result["loaded"]
        if name == "compact":
            timings["files_per_partition"] = result.get("files_per_partition", {})
    hourly = (
        spark.read.format("delta").load(wh + "/stats_hourly").where(f"dt = '{date}'")
        .groupBy("dt", "hour").sum().orderBy("dt", "hour").collect()
    )  # fmt: skip
    measures = ["request_count", "hit_count", "miss_count", "error_count", "incomplete_count", "http2xx_count",
                "http3xx_count", "http4xx_count", "http5xx_count", "bytes_requested", "bytes_missed"]  # fmt: skip
    timings["hourly"] = [[r["dt"], str(r["hour"])] + [str(r[f"sum({m})"]) for m in measures] for r in hourly]
    return timings


if __name__ == "__main__":
    engine, landing, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    if engine == "spark":
        result = run_spark(landing, out, sys.argv[4])
    else:
        result = run_duckdb_fast(landing, out) if engine == "duckdb-fast" else run_duckdb(landing, out)
    print("RESULT " + json.dumps(result, default=str))
