"""`cdnlake sql` on a tiny warehouse: every docs/queries/*.sql runs, partition pruning, read-only guard.

The warehouse is built once: ingest of the samples' 2018-11-07 (5 rows, 58,304 bytes, plus one
broken line) and aggregate, then a copy of those rows as 2018-11-06 so that pruning has something
to skip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cdnlake import cli
from cdnlake import sql as adhoc
from spark_jobs import aggregate, ingest
from spark_jobs.params import IngestParams
from spark_jobs.storage import table_path
from tests.samples import DISTRO, build_landing, sample_lines, write_gz

DAY = "2018-11-07"
QUERIES = sorted((Path(__file__).resolve().parents[1] / "docs" / "queries").glob("*.sql"))


@pytest.fixture(scope="module")
def warehouse(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    from pyspark.sql import functions as F

    root = tmp_path_factory.mktemp("sqlwh")
    build_landing(root / "landing")
    # One broken line on the date, so the rejects query has something to report.
    header, _ = sample_lines("real-2018-26fields-excerpt")
    write_gz(root / "landing" / f"{DISTRO}.{DAY}-00.broken.gz", [*header, f"{DAY}\t00:14:00\tFRA53\tnot-a-number"])
    wh = str(root / "warehouse")
    date = ["--date", DAY, "--warehouse", wh]
    parsed = ingest.build_parser().parse_args([*date, "--source", str(root / "landing")])
    ingest.run(spark, IngestParams.from_namespace(parsed))
    aggregate.run(spark, aggregate.build_parser().parse_args(date))
    logs = spark.read.format("delta").load(table_path(wh, "cdn_logs"))
    earlier = logs.withColumns({"dt": F.lit("2018-11-06"), "ts": F.col("ts") - F.expr("INTERVAL 1 DAY")})
    earlier.write.format("delta").mode("append").partitionBy("distro", "dt").save(table_path(wh, "cdn_logs"))
    return wh


def run_file(spark: Any, warehouse: str, path: Path, date: str = DAY) -> pd.DataFrame:
    query = adhoc.substitute(path.read_text(encoding="utf-8"), {"date": date})
    return adhoc.run_query(spark, warehouse, query).toPandas()


def test_the_shipped_queries_are_there() -> None:
    names = {p.stem for p in QUERIES}
    assert {"hourly_statistics", "top_missed_objects", "bytes_per_edge_location"} <= names


@pytest.mark.parametrize("path", QUERIES, ids=lambda p: p.stem)
def test_every_shipped_query_runs(spark: Any, warehouse: str, path: Path) -> None:
    assert "${date}" in path.read_text(encoding="utf-8")
    frame = run_file(spark, warehouse, path)
    assert not frame.empty


def test_hourly_query_equals_the_statistics_table(spark: Any, warehouse: str) -> None:
    frame = run_file(spark, warehouse, next(p for p in QUERIES if p.stem == "hourly_statistics"))
    assert list(frame.columns)[:3] == ["DATE", "TIME", "REQUEST_COUNT"]
    assert int(frame["REQUEST_COUNT"].sum()) == 5 and int(frame["BYTES_REQUESTED"].sum()) == 58304
    assert int(frame["HIT_COUNT"].sum()) == 2 and int(frame["MISS_COUNT"].sum()) == 2
    stats = spark.read.format("delta").load(table_path(warehouse, "stats_hourly")).where(f"dt = '{DAY}'").toPandas()
    for column in ("REQUEST_COUNT", "MISS_COUNT", "HTTP3XX_COUNT", "BYTES_REQUESTED", "BYTES_MISSED"):
        assert int(frame[column].sum()) == int(stats[column.lower()].sum()), column


def test_rejects_query(spark: Any, warehouse: str) -> None:
    rejects = run_file(spark, warehouse, next(p for p in QUERIES if p.stem == "rejects_by_reason"))
    assert rejects["rejected"].tolist() == [1] and "column count" in rejects["reason"].iloc[0]
    assert rejects["example_file"].iloc[0].endswith(".broken.gz")


def test_top_missed_objects_and_edge_locations(spark: Any, warehouse: str) -> None:
    missed = run_file(spark, warehouse, next(p for p in QUERIES if p.stem == "top_missed_objects"))
    assert missed["uri"].tolist() == ["/wordpress/"] and int(missed["misses"].iloc[0]) == 2
    assert int(missed["bytes_missed"].iloc[0]) == 55628 + 369
    edges = run_file(spark, warehouse, next(p for p in QUERIES if p.stem == "bytes_per_edge_location"))
    assert edges["edge_location"].tolist() == ["BOM52", "DUB2", "FRA53"]
    assert int(edges["bytes"].sum()) == 58304 and int(edges["requests"].iloc[0]) == 2


def test_a_query_on_one_date_reads_one_date(spark: Any, warehouse: str) -> None:
    everything = adhoc.run_query(spark, warehouse, "SELECT count(*) AS n FROM cdn_logs").collect()[0]["n"]
    assert everything == 10  # both dates are there
    one_day = adhoc.run_query(spark, warehouse, f"SELECT input_file_name() AS f FROM cdn_logs WHERE dt = '{DAY}'")
    files = {r["f"] for r in one_day.collect()}
    assert len(files) >= 1 and all(f"dt={DAY}" in f for f in files)
    plan = one_day._jdf.queryExecution().executedPlan().toString()
    assert "PartitionFilters: [" in plan and DAY in plan.split("PartitionFilters: [", 1)[1].split("]", 1)[0]


REFUSED = [
    "DELETE FROM cdn_logs", "DROP TABLE cdn_logs", "SELECT 1; DROP TABLE cdn_logs",
    "WITH x AS (SELECT 1) INSERT INTO cdn_logs SELECT * FROM x", "OPTIMIZE cdn_logs", "SET spark.x=1",
    "UPDATE cdn_logs SET sc_bytes = 0",
    "MERGE INTO cdn_logs t USING ingest_files s ON t.dt = s.dt WHEN MATCHED THEN DELETE",
    "CREATE TABLE t (a INT)", "CREATE TEMP VIEW v AS SELECT 1", "ALTER TABLE cdn_logs ADD COLUMNS (x INT)",
    "ADD JAR /tmp/x.jar", "CALL system.rollback('cdn_logs', 1)", "CACHE TABLE cdn_logs",
    "SELECT reflect('java.lang.Runtime', 'getRuntime')", "SELECT java_method('java.lang.System', 'exit', 1)",
    "SELECT * FROM cdn_logs WHERE sc_bytes IN (SELECT reflect('java.lang.System', 'gc'))",
    "SELECT '--' AS a; DROP TABLE cdn_logs", "SELECT '/*' AS a; DELETE FROM cdn_logs -- */",
    "EXPLAIN DELETE FROM cdn_logs", "",
]  # fmt: skip


@pytest.mark.parametrize("query", REFUSED)
def test_only_read_only_queries(spark: Any, query: str) -> None:
    with pytest.raises(adhoc.QueryError) as info:
        adhoc.check_read_only(spark, query)
    assert "read-only" in str(info.value) or "parse" in str(info.value) or "empty" in str(info.value)


def test_a_refused_statement_changes_nothing(spark: Any, warehouse: str) -> None:
    before = adhoc.run_query(spark, warehouse, "SELECT count(*) AS n FROM cdn_logs").collect()[0]["n"]
    for query in ("DELETE FROM cdn_logs", "SELECT '--'; DELETE FROM cdn_logs"):
        with pytest.raises(adhoc.QueryError):
            adhoc.run_query(spark, warehouse, query)
    assert adhoc.run_query(spark, warehouse, "SELECT count(*) AS n FROM cdn_logs").collect()[0]["n"] == before > 0


def test_literals_and_comments_do_not_trip_the_guard(spark: Any) -> None:
    sql = "-- delete old rows? no\nSELECT 'drop; insert' AS x, `update` FROM cdn_logs /* merge */;"
    assert adhoc.check_read_only(spark, sql).endswith("/* merge */")
    for query in ("SHOW TABLES", "DESCRIBE cdn_logs", "EXPLAIN SELECT 1",
                  "WITH x AS (SELECT 1 AS a) SELECT * FROM x WHERE a IN (SELECT 1)"):  # fmt: skip
        assert adhoc.check_read_only(spark, query) == query


def test_control_characters_are_escaped_before_the_terminal(spark: Any) -> None:
    frame = spark.createDataFrame([("\x1b]0;pwned\x07\x1b[2Jok\u009b",)], "v string")
    text = adhoc.render(frame)
    assert "\x1b" not in text and "\x07" not in text and "\u009b" not in text
    assert "\\x1b]0;pwned\\x07\\x1b[2Jok\\x9b" in text


def test_placeholders() -> None:
    assert adhoc.substitute("dt = '${date}'", {"date": "2024-05-01"}) == "dt = '2024-05-01'"
    with pytest.raises(adhoc.QueryError, match="--date"):
        adhoc.substitute("dt = '${date}'", {})
    with pytest.raises(adhoc.QueryError, match="only letters"):
        adhoc.substitute("x = '${v}'", {"v": "a' OR '1'='1"})
    assert adhoc.parse_params(["top=5", "d=x"]) == {"top": "5", "d": "x"}
    with pytest.raises(adhoc.QueryError):
        adhoc.parse_params(["no-equals"])


def test_cli_prints_a_table_and_writes_files(
    spark: Any, warehouse: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(adhoc, "session_for", lambda settings: spark)
    edges = str(next(p for p in QUERIES if p.stem == "bytes_per_edge_location"))
    assert cli.main(["sql", "-f", edges, "--date", DAY, "--warehouse", warehouse, "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "BOM52" in out and "FRA53" not in out and "first 2 rows" in out
    csv, parquet = tmp_path / "edges.csv", tmp_path / "edges.parquet"
    for target in (csv, parquet):
        assert cli.main(["sql", "-f", edges, "--date", DAY, "--warehouse", warehouse, "--out", str(target)]) == 0
    assert "wrote 3 rows" in capsys.readouterr().out
    assert pd.read_csv(csv)["bytes"].sum() == 58304 and len(pd.read_parquet(parquet)) == 3
    assert cli.main(["sql", "SELECT * FROM cdn_logs WHERE dt = '${date}'", "--warehouse", warehouse]) == 1
    assert "--date" in capsys.readouterr().err


def test_empty_warehouse_says_what_to_do(spark: Any, tmp_path: Path) -> None:
    with pytest.raises(adhoc.QueryError, match="no tables"):
        adhoc.run_query(spark, str(tmp_path / "none"), "SELECT 1")


def test_an_older_warehouses_per_list_top_table_is_still_a_view(spark: Any, tmp_path: Path) -> None:
    """Top lists written before stats_top_lists (a table per list) stay queryable while they exist."""
    wh = str(tmp_path / "older")
    old = spark.createDataFrame([("os", 1, "iOS", 5, "2024-04-30", "UTC")],
                                "dimension string, rank int, value string, requests bigint, report_date string, "
                                "report_tz string")  # fmt: skip
    old.write.format("delta").partitionBy("report_date").save(table_path(wh, "stats_viewers"))
    assert adhoc.register_views(spark, wh) == ["stats_viewers"]
    rows = adhoc.run_query(spark, wh, "SELECT value, requests FROM stats_viewers").collect()
    assert [(r["value"], r["requests"]) for r in rows] == [("iOS", 5)]
