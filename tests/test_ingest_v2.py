"""A day delivered partly by legacy logging and partly by standard logging v2 (w3c, JSON, Parquet;
plain and Hive keys), with overlapping hours, into a warehouse made by the previous version.

The expected figures come from DuckDB over the generator's raw files (a second engine), never
from cdnlake's own code.
"""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from cdnlake.sample_logs import generate_logs
from spark_jobs import ingest
from spark_jobs.params import IngestParams
from spark_jobs.schema import CDN_LOGS_SCHEMA, V2_FIELDS, snake

DAY = dt.date(2025, 2, 16)
SEED, ROWS = 11, 3000
# (format, hive, hours kept): hours 8-11, 14-15 and 18-19 arrive twice, by two generations.
PLAN = (("legacy", False, range(0, 12)), ("json", True, range(8, 16)),
        ("parquet", False, range(14, 20)), ("w3c", False, range(18, 24)))  # fmt: skip


def _hour_of(path: Path, fmt: str) -> int:
    if fmt == "legacy":
        return int(path.name.split(".")[1][-2:])
    return int(path.parent.name.split("=")[-1])


def _generate(root: Path, fmt: str, hive: bool, hours: range | None) -> Path:
    out = root / fmt
    generate_logs(DAY, 2, ROWS, SEED, out, files_per_hour=1, fmt=fmt, hive=hive)
    for path in [p for p in out.rglob("*") if p.is_file()]:
        if hours is not None and _hour_of(path, fmt) not in hours:
            path.unlink()
    return out


def _legacy_reference(folder: Path) -> dict[int, tuple[int, int, int]]:
    """Per UTC hour (requests, bytes, hits) of the valid lines, by DuckDB over the raw text."""
    rows = []
    for path in folder.rglob("*.gz"):
        declared = 33
        for line in gzip.decompress(path.read_bytes()).decode().split("\n"):
            if line.startswith("#Fields:"):
                declared = len(line.split()) - 1
            elif line and not line.startswith("#"):
                rows.append((line, declared))
    con = duckdb.connect()
    con.execute("CREATE TABLE lines (line VARCHAR, declared INT)")
    con.executemany("INSERT INTO lines VALUES (?, ?)", rows)
    result = con.execute(r"""
        WITH f AS (SELECT string_split(line, chr(9)) AS f, declared FROM lines)
        SELECT CAST(substr(f[2], 1, 2) AS INT), count(*), sum(CAST(f[4] AS BIGINT)),
               count(*) FILTER (WHERE f[23] = 'Hit')
        FROM f
        WHERE len(f) = declared AND regexp_full_match(f[4], '[0-9]+')
          AND regexp_full_match(f[2], '[0-2][0-9]:[0-5][0-9]:[0-5][0-9]')
        GROUP BY 1""").fetchall()
    return {h: (n, b, hits) for h, n, b, hits in result}


def _country_reference(folder: Path) -> dict[str, tuple[int, int]]:
    """Requests and bytes by c-country of the valid JSON records from 08:00, by DuckDB's JSON reader."""
    result = duckdb.sql(f"""
        SELECT "c-country", count(*), sum(CAST("sc-bytes" AS BIGINT))
        FROM read_json('{folder}/**/*.gz', format = 'newline_delimited', ignore_errors = true,
                       columns = {{"time": 'VARCHAR', "sc-bytes": 'VARCHAR', "c-country": 'VARCHAR'}})
        WHERE regexp_full_match("sc-bytes", '[0-9]+') AND time >= '08'
          AND regexp_full_match(time, '[0-2][0-9]:[0-5][0-9]:[0-5][0-9]')
        GROUP BY 1""").fetchall()
    return {c: (n, b) for c, n, b in result}


def _old_warehouse(spark: Any, warehouse: Path) -> None:
    """cdn_logs as the previous version created it (no v2 columns), with one row of another day."""
    old = [f for f in CDN_LOGS_SCHEMA.fields if f.name not in {snake(v) for v in V2_FIELDS}]
    row = {f.name: None for f in old} | {"distro": "eold", "dt": "2025-02-15", "sc_bytes": 7, "line_no": 1}
    frame = spark.createDataFrame([tuple(row[f.name] for f in old)], StructType(old))
    frame.write.format("delta").partitionBy("distro", "dt").save(str(warehouse / "cdn_logs"))


@pytest.fixture(scope="module")
def mixed(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("v2")
    source, warehouse = root / "landing", root / "warehouse"
    for fmt, hive, hours in PLAN:
        _generate(source, fmt, hive, hours)
    # A legacy file whose name Hadoop would read as a glob pattern.
    victim = sorted((source / "legacy").rglob("*.gz"))[0]
    victim.rename(victim.with_name(victim.name.replace(".gz", ".[a]*?.gz")))
    _old_warehouse(spark, warehouse)
    args = ingest.build_parser().parse_args(["--date", DAY.isoformat(), "--source", str(source),
                                             "--warehouse", str(warehouse)])  # fmt: skip
    result = ingest.run(spark, IngestParams.from_namespace(args))
    reference = root / "reference"
    return {
        "result": result,
        "logs": spark.read.format("delta").load(str(warehouse / "cdn_logs")),
        "files": spark.read.format("delta").load(str(warehouse / "ingest_files")).collect(),
        "legacy": _legacy_reference(_generate(reference, "legacy", False, None)),
        "countries": _country_reference(_generate(reference, "json", False, None)),
    }


def test_mixed_day_statistics_equal_the_legacy_files_alone(mixed: dict[str, Any]) -> None:
    day = mixed["logs"].where(f"dt = '{DAY}'")
    hits = F.count_if(F.col("x_edge_response_result_type") == "Hit")
    got = {r[0]: tuple(r[1:]) for r in day.groupBy("hour").agg(F.count("*"), F.sum("sc_bytes"), hits).collect()}
    assert got == mixed["legacy"]
    ids = [r[0] for r in day.select("x_edge_request_id").collect()]
    assert len(ids) == len(set(ids))  # every request once


def test_countries_from_the_v2_copy_of_a_twice_delivered_request(mixed: dict[str, Any]) -> None:
    late = mixed["logs"].where(f"dt = '{DAY}' AND hour >= 8")
    got = {r[0]: (r[1], r[2]) for r in late.groupBy("c_country").agg(F.count("*"), F.sum("sc_bytes")).collect()}
    assert got == mixed["countries"] and None not in got
    early = mixed["logs"].where(f"dt = '{DAY}' AND hour < 8 AND c_country IS NOT NULL").count()
    assert early == 0  # only legacy logging covered those hours


def test_accounting_per_file_of_every_format(mixed: dict[str, Any]) -> None:
    files = mixed["files"]
    assert all(f.lines_read == f.loaded + f.rejected for f in files)
    kinds = {("parquet" if f.file_name.endswith(".parquet") else f.source_file.split("/landing/")[1].split("/")[0])
             for f in files}  # fmt: skip
    assert kinds == {"legacy", "json", "parquet", "w3c"}
    assert {f.distro for f in files} == set(mixed["result"]["per_distro"]) and not any(f.damaged for f in files)
    assert any("[a]*?" in f.file_name and f.loaded > 0 for f in files)  # the glob-like name was read
    hive = [f for f in files if "DistributionId=" in f.source_file]
    assert hive and all(f.distro == f.source_file.split("DistributionId=")[1][:14].lower() for f in hive)


def test_previous_versions_table_gained_the_v2_columns(mixed: dict[str, Any]) -> None:
    logs = mixed["logs"]
    assert {"c_country", "asn", "timestamp_ms", "connection_id"} <= set(logs.columns)
    (old,) = logs.where("dt = '2025-02-15'").collect()
    assert old.sc_bytes == 7 and old.c_country is None and old.asn is None


def test_generator_refuses_an_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format"):
        generate_logs(DAY, 1, 10, 1, tmp_path, fmt="csv")
    shutil.rmtree(tmp_path, ignore_errors=True)
