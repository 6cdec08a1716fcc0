"""Tests of spark_jobs.aggregate on hand-written cdn_logs rows; every expected number is by hand."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from deltalake import DeltaTable

from cdnlake.report_data import top_lists as report_top_lists
from spark_jobs import aggregate, top_lists
from spark_jobs.schema import CDN_LOGS_SCHEMA
from spark_jobs.storage import table_path

D = dt.date(2024, 5, 1)
UTC = dt.UTC


def log_row(
    when: str, distro: str = "e1", response: str = "Hit", status: int = 200, size: int | None = 100,
    uri: str = "/a", edge_result: str | None = None, referer: str | None = None,
    location: str = "NRT57-C1", device: str = "mobile", os: str = "iOS", browser: str = "Mobile Safari",
) -> tuple[Any, ...]:  # fmt: skip
    """One cdn_logs row; derived columns follow ingest's rules (status_class NULL outside 1xx-5xx)."""
    ts = dt.datetime.fromisoformat(when).replace(tzinfo=UTC)
    values = dict.fromkeys(CDN_LOGS_SCHEMA.fieldNames())
    values |= {
        "ts": ts, "hour": ts.hour, "x_edge_location": location, "sc_bytes": size, "cs_uri_stem": uri,
        "sc_status": status, "cs_referer": referer, "x_edge_result_type": edge_result or response,
        "x_edge_response_result_type": response,
        "status_class": status // 100 if 100 <= status < 600 else None,
        "device_type": device, "os": os, "browser": browser, "source_file": f"{distro}.gz",
        "line_no": 1, "distro": distro, "dt": ts.date().isoformat(),
    }  # fmt: skip
    return tuple(values.values())


def write_logs(spark: Any, warehouse: str, rows: list[tuple[Any, ...]], mode: str = "append") -> None:
    df = spark.createDataFrame(rows, CDN_LOGS_SCHEMA)
    df.write.format("delta").mode(mode).partitionBy("distro", "dt").save(table_path(warehouse, "cdn_logs"))


def run_aggregate(spark: Any, warehouse: str, *extra: str) -> dict[str, Any]:
    args = aggregate.build_parser().parse_args(["--date", D.isoformat(), "--warehouse", warehouse, *extra])
    return aggregate.run(spark, args)


def read(spark: Any, warehouse: str, table: str) -> Any:
    return spark.read.format("delta").load(table_path(warehouse, table))


ROWS = [
    # Report day D, distribution e1.
    log_row("2024-05-01 10:00:05", size=400, referer="https://www.Example.com/page?x=1",
            device="desktop", os="Windows", browser="Chrome"),
    # 206 cut short by the viewer: edge result Error, response Miss -> incomplete AND miss.
    log_row("2024-05-01 10:00:10", response="Miss", edge_result="Error", status=206, size=500,
            referer="https://www.example.com/other"),
    log_row("2024-05-01 10:01:00", response="RefreshHit", size=300, uri="/b",
            referer="http://user@cdn.test:8080/x"),
    # Status 000 (viewer closed the connection): an error, in no status class, NULL bytes.
    log_row("2024-05-01 10:02:00", response="Error", status=0, size=None, uri="/b", referer="-"),
    log_row("2024-05-01 11:00:00", response="LimitExceeded", status=503, size=50, uri="/c",
            referer="not a url"),
    log_row("2024-05-01 11:00:00", response="CapacityExceeded", status=503, size=60, uri="/c"),
    # The edge says Miss but the response type is Error: not a miss, its bytes are not missed.
    log_row("2024-05-01 11:30:00", response="Error", edge_result="Miss", status=502, size=70, uri="/c"),
    log_row("2024-05-01 12:00:00", status=304, size=0),
    log_row("2024-05-01 13:37:10", size=600),
    # Distribution e2: 13:37 with e1 makes 1200 bytes, more than e2's 1000 at 14:00.
    log_row("2024-05-01 13:37:20", distro="e2", response="Miss", size=600, location="SFO5-C3"),
    log_row("2024-05-01 14:00:00", distro="e2", size=1000, uri="/big", location="SFO5-C3",
            device="tv", os="Tizen"),
    log_row("2024-05-01 15:00:00", distro="e2", response="Error", status=404, size=10, uri="/missing"),
    log_row("2024-05-01 23:00:00", distro="e2", size=5, uri="/late-utc"),
    # D-1: only the second row is inside the Asia/Tokyo day D (which starts at 15:00 UTC on D-1).
    log_row("2024-04-30 14:59:59", size=7, uri="/before"),
    log_row("2024-04-30 15:00:00", size=8, uri="/tokyo", referer="https://jp.example.jp/"),
    # D-3: outside the D-2..D window.
    log_row("2024-04-28 09:00:00", size=9),
]  # fmt: skip

# (distro, dt, hour) -> MEASURES: request, hit, miss, refresh_hit, error, incomplete,
# 2xx, 3xx, 4xx, 5xx, bytes_requested, bytes_missed, bytes_hit.
EXPECTED_HOURLY = {
    ("e1", "2024-05-01", 10): (4, 1, 1, 1, 1, 1, 3, 0, 0, 0, 1200, 500, 400),
    ("e1", "2024-05-01", 11): (3, 0, 0, 0, 3, 0, 0, 0, 0, 3, 180, 0, 0),
    ("e1", "2024-05-01", 12): (1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0),
    ("e1", "2024-05-01", 13): (1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 600, 0, 600),
    ("e2", "2024-05-01", 13): (1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 600, 600, 0),
    ("e2", "2024-05-01", 14): (1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1000, 0, 1000),
    ("e2", "2024-05-01", 15): (1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 10, 0, 0),
    ("e2", "2024-05-01", 23): (1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 5, 0, 5),
    ("e1", "2024-04-30", 14): (1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 7, 0, 7),
    ("e1", "2024-04-30", 15): (1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 8, 0, 8),
}


@pytest.fixture(scope="module")
def warehouse(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = str(tmp_path_factory.mktemp("aggregate") / "warehouse")
    write_logs(spark, path, ROWS)
    utc = run_aggregate(spark, path)
    tokyo = run_aggregate(spark, path, "--report-tz", "Asia/Tokyo")
    return {"path": path, "utc": utc, "tokyo": tokyo}


def hourly_rows(spark: Any, warehouse: str) -> dict[tuple[str, str, int], tuple[int, ...]]:
    rows = read(spark, warehouse, "stats_hourly").collect()
    by_key = {(r["distro"], r["dt"], r["hour"]): tuple(r[m] for m in aggregate.MEASURES) for r in rows}
    assert len(by_key) == len(rows), "duplicate (distro, dt, hour) rows"
    return by_key


def test_hourly_statistics_follow_every_rule(spark: Any, warehouse: dict[str, Any]) -> None:
    # The fixture aggregated twice (UTC, then Tokyo): the second run replaced, never duplicated.
    assert hourly_rows(spark, warehouse["path"]) == EXPECTED_HOURLY  # D-3 is not rebuilt
    assert warehouse["utc"]["dates"] == ["2024-04-30", "2024-05-01"]
    assert warehouse["utc"]["rows"]["stats_hourly"] == len(EXPECTED_HOURLY)
    types = dict(read(spark, warehouse["path"], "stats_hourly").dtypes)
    assert {types[m] for m in aggregate.MEASURES} == {"bigint"}


def test_peak_minute_spans_distributions(spark: Any, warehouse: dict[str, Any]) -> None:
    from pyspark.sql import functions as F

    minute = read(spark, warehouse["path"], "stats_minute").where("dt = '2024-05-01'")
    per_distro = minute.orderBy(F.desc("bytes")).first()
    assert (per_distro["distro"], per_distro["minute"], per_distro["bytes"]) == ("e2", 14 * 60, 1000)
    peak = minute.groupBy("minute").agg(F.sum("bytes").alias("bytes")).orderBy(F.desc("bytes")).first()
    assert (peak["minute"], peak["bytes"]) == (13 * 60 + 37, 1200)
    assert warehouse["utc"]["rows"]["stats_minute"] == 13  # distinct (distro, dt, minute) of D-1, D
    assert read(spark, warehouse["path"], "stats_minute").count() == 13  # no duplicates after two runs


def test_late_rows_are_picked_up_and_extra_dates_rebuilt(spark: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "warehouse")
    write_logs(spark, path, [log_row("2024-05-01 08:00:00", size=10), log_row("2024-04-26 08:00:00")])
    assert run_aggregate(spark, path)["dates"] == ["2024-05-01"]
    write_logs(spark, path, [log_row("2024-05-01 08:30:00", response="Miss", size=5),
                             log_row("2024-04-26 09:00:00")])  # fmt: skip
    result = run_aggregate(spark, path, "--dates", "2024-04-26")
    assert result["dates"] == ["2024-04-26", "2024-05-01"]
    hourly = hourly_rows(spark, path)
    assert hourly[("e1", "2024-05-01", 8)][:3] == (2, 1, 1)
    assert hourly[("e1", "2024-05-01", 8)][10:12] == (15, 5)
    assert sorted(hourly) == [("e1", "2024-04-26", 8), ("e1", "2024-04-26", 9), ("e1", "2024-05-01", 8)]
    top = read(spark, path, "stats_top_lists").where("list = 'top_objects'").collect()  # replaced, not added to
    assert [(r["uri"], r["requests"], r["misses"]) for r in top] == [("/a", 2, 1)]


def top_rows(spark: Any, warehouse: str, name: str, tz: str, columns: list[str]) -> list[tuple[Any, ...]]:
    """List `name` of stats_top_lists (read with Spark), in rank order."""
    where = f"list = '{name}' AND report_date = '{D}' AND report_tz = '{tz}'"
    rows = read(spark, warehouse, "stats_top_lists").where(where).collect()
    return [tuple(r[c] for c in columns) for r in sorted(rows, key=lambda r: r["rank"])]


def test_top_lists_of_the_utc_day(spark: Any, warehouse: dict[str, Any]) -> None:
    path = warehouse["path"]
    objects = top_rows(spark, path, "top_objects", "UTC", ["rank", "distro", "uri", "requests"])
    assert objects == [(1, "e1", "/a", 4), (2, "e1", "/c", 3), (3, "e1", "/b", 2), (4, "e2", "/a", 1),
                       (5, "e2", "/big", 1), (6, "e2", "/late-utc", 1), (7, "e2", "/missing", 1)]  # fmt: skip
    columns = ["hits", "misses", "hit_ratio", "bytes", "bytes_missed", "incomplete",
               "http2xx", "http3xx", "http4xx", "http5xx"]  # fmt: skip
    first = top_rows(spark, path, "top_objects", "UTC", columns)[0]
    assert first == (3, 1, 0.75, 1500, 500, 1, 3, 1, 0, 0)
    referrers = top_rows(spark, path, "top_referrers", "UTC", ["referrer_domain", "requests", "bytes"])
    assert referrers == [("www.example.com", 2, 900), ("cdn.test", 1, 300)]
    edges = top_rows(spark, path, "edge_locations", "UTC",
                     ["edge_location", "requests", "bytes", "hit_ratio"])  # fmt: skip
    assert edges == [("NRT57-C1", 11, 1995, 4 / 11), ("SFO5-C3", 2, 1600, 0.5)]
    viewers = top_rows(spark, path, "viewers", "UTC", ["dimension", "value", "requests"])
    assert sorted(viewers) == sorted([
        ("device_type", "mobile", 11), ("device_type", "desktop", 1), ("device_type", "tv", 1),
        ("os", "iOS", 11), ("os", "Tizen", 1), ("os", "Windows", 1),
        ("browser", "Mobile Safari", 12), ("browser", "Chrome", 1),
    ])  # fmt: skip


def test_tokyo_day_reads_two_utc_dates(spark: Any, warehouse: dict[str, Any]) -> None:
    path = warehouse["path"]
    objects = top_rows(spark, path, "top_objects", "Asia/Tokyo", ["distro", "uri", "requests"])
    # /tokyo (D-1 15:00 UTC) is in; /before (14:59:59), /missing (D 15:00) and /late-utc are out.
    assert objects == [("e1", "/a", 4), ("e1", "/c", 3), ("e1", "/b", 2), ("e1", "/tokyo", 1),
                       ("e2", "/a", 1), ("e2", "/big", 1)]  # fmt: skip
    referrers = top_rows(spark, path, "top_referrers", "Asia/Tokyo", ["referrer_domain", "requests"])
    assert referrers == [("www.example.com", 2), ("cdn.test", 1), ("jp.example.jp", 1)]
    # Both time zones' lists of day D live side by side.
    assert len(top_rows(spark, path, "top_objects", "UTC", ["uri"])) == 7


def test_referrer_domain_extraction(spark: Any) -> None:
    referers = ["https://WWW.Example.COM/a?b=c", "http://user:pw@cdn.test:8080/x", "https://[2001:db8::1]:443/",
                "android-app://com.example.app/", "-", "not a url", "", None]  # fmt: skip
    df = spark.createDataFrame([(r,) for r in referers], "cs_referer string")
    domains = [r["referrer_domain"] for r in df.transform(aggregate.with_referrer_domain).collect()]
    assert domains == ["www.example.com", "cdn.test", "[2001:db8::1]", "com.example.app", None, None, None, None]


def test_viewers_keep_all_devices_and_top_ten_os_and_browsers(spark: Any) -> None:
    rows = [log_row("2024-05-01 10:00:00", device=f"d{i:02}", os=f"os{i:02}", browser=f"b{i:02}")
            for i in range(12) for _ in range(12 - i)]  # fmt: skip
    viewers = top_lists.top_list_rows(spark.createDataFrame(rows, CDN_LOGS_SCHEMA))["viewers"]
    assert viewers.groupby("dimension").size().to_dict() == {"device_type": 12, "os": 10, "browser": 10}
    os_rows = viewers[viewers["dimension"] == "os"]
    assert list(os_rows["rank"]) == list(range(1, 11))
    assert min(zip(os_rows["requests"], os_rows["value"], strict=True)) == (3, "os09")


def test_ranking_breaks_ties_by_value_with_nulls_last() -> None:
    rows = pd.DataFrame({"value": ["b", None, "a", "c", "é"], "request_count": [5, 5, 5, 7, 5]})
    ranked = top_lists.ranked(rows, limit=4)
    # 7 first; the 5s by value, code point order ("é" after ASCII, as Spark's UTF-8 byte order), NULL last.
    assert list(zip(ranked["rank"], ranked["value"], strict=True)) == [(1, "c"), (2, "a"), (3, "b"), (4, "é")]
    assert len(top_lists.ranked(rows, limit=None)) == 5


def test_minutes_roll_up_to_hours_exactly() -> None:
    big = 2**40  # far beyond float32, exact in int64
    minutes = pd.DataFrame(
        {"distro": ["e1", "e1", "e1", "e2"], "dt": ["2024-05-01"] * 4, "minute": [59, 60, 119, 60]}
        | {m: [1, 2, 3, 4] for m in aggregate.MEASURES}
    )
    minutes["bytes_requested"] = [big, big + 1, 1, 5]
    hours = aggregate.hourly_rows(minutes)
    assert hours[["distro", "hour", "request_count", "bytes_requested"]].values.tolist() == [
        ["e1", 0, 1, big], ["e1", 1, 5, big + 2], ["e2", 1, 4, 5]
    ]  # fmt: skip


def test_a_failing_table_write_fails_the_run(spark: Any, tmp_path: Path) -> None:
    def hourly(date: str) -> pd.DataFrame:
        return pd.DataFrame([["e1", date, 0, *[1] * len(aggregate.MEASURES)]],
                            columns=["distro", "dt", "hour", *aggregate.MEASURES])  # fmt: skip

    def write(date: str) -> aggregate.TableWrite:
        return aggregate.TableWrite("stats_hourly", hourly(date), aggregate.HOURLY_SCHEMA, "dt IN ('2024-05-01')", "dt")

    aggregate.write_tables(spark, str(tmp_path), [write("2024-05-01")])
    minute = pd.DataFrame({"distro": ["e1"], "dt": ["2024-05-01"], "minute": [1], "request_count": [1], "bytes": [1]})
    good = aggregate.TableWrite("stats_minute", minute, aggregate.MINUTE_SCHEMA, "dt IN ('2024-05-01')", "dt")
    # Rows outside their replaceWhere predicate: Delta refuses them in the writer's thread; the run fails.
    with pytest.raises(Exception, match="(?i)replaceWhere|conform|REPLACE_WHERE"):
        aggregate.write_tables(spark, str(tmp_path), [good, write("2024-04-01")])
    assert read(spark, str(tmp_path), "stats_hourly").count() == 1  # the table keeps its rows


def test_report_day_bounds() -> None:
    start, end, dates = aggregate.report_day_bounds(D, "Asia/Tokyo")
    assert (start, end) == (dt.datetime(2024, 4, 30, 15, tzinfo=UTC), dt.datetime(2024, 5, 1, 15, tzinfo=UTC))
    assert dates == [dt.date(2024, 4, 30), D]
    start, end, dates = aggregate.report_day_bounds(dt.date(2024, 3, 10), "America/New_York")  # 23 h day
    assert end - start == dt.timedelta(hours=23)
    assert dates == [dt.date(2024, 3, 10), dt.date(2024, 3, 11)]
    assert aggregate.report_day_bounds(D, "UTC")[2] == [D]


def test_arguments_are_validated() -> None:
    parser = aggregate.build_parser()
    args = parser.parse_args(["--date", "2024-05-01", "--warehouse", "/w", "--dates", "2024-04-01,2024-04-02"])
    assert (args.report_tz, args.dates) == ("UTC", [dt.date(2024, 4, 1), dt.date(2024, 4, 2)])
    for bad in ("Mars/Base", "UTC' OR '1'='1", "../etc"):
        with pytest.raises(argparse.ArgumentTypeError):
            aggregate.time_zone(bad)
    with pytest.raises(ValueError):
        aggregate.dates_predicate([D], ["E1'--"])


def test_top_lists_rank_without_unpartitioned_windows(spark: Any) -> None:
    """The lists are ranked on the driver: no Spark window in what runs (a window keyed by a constant
    made Spark warn "No Partition Defined"); ties go by distro, then name."""
    counts = [("d1", "/b", "LAX1", 9), ("d2", "/c", "NRT57", 9), ("d1", "/a", "NRT57", 5)]
    rows = [log_row("2024-05-01 10:00:00", distro=d, uri=u, location=loc) for d, u, loc, n in counts for _ in range(n)]
    day = spark.createDataFrame(rows, CDN_LOGS_SCHEMA).transform(aggregate.with_referrer_domain)
    combinations = day.transform(aggregate.agg_combinations)
    for frame in (combinations, combinations.transform(aggregate.agg_small_dimensions)):
        plan = frame._jdf.queryExecution().executedPlan().toString()
        assert "Window" not in plan, plan
    tables = top_lists.top_list_rows(day)
    objects = tables["top_objects"]
    assert list(zip(objects["rank"], objects["distro"], objects["uri"], strict=True)) == [
        (1, "d1", "/b"), (2, "d2", "/c"), (3, "d1", "/a")]  # fmt: skip
    edges = tables["edge_locations"]
    assert list(zip(edges["rank"], edges["edge_location"], edges["requests"], strict=True)) == [
        (1, "NRT57", 14), (2, "LAX1", 9)]  # fmt: skip


def test_top_lists_are_one_table_partitioned_by_zone_and_read_by_delta_rs(spark: Any,
                                                                        warehouse: dict[str, Any]) -> None:  # fmt: skip
    """One table, one commit a run (the fixture ran twice: create + one replaceWhere); report_tz is a
    partition column (replaceWhere without a rewrite); both zones' lists of D stay side by side, and
    the report's reader (delta-rs) gets each list with its own columns and integer types."""
    path = warehouse["path"]
    table = DeltaTable(table_path(path, "stats_top_lists"))
    assert table.metadata().partition_columns == ["report_date", "report_tz"]
    assert table.version() == 1
    assert not any((Path(path) / legacy).exists() for legacy in ("stats_top_objects", "stats_viewers"))
    utc, tokyo = (report_top_lists(path, D, tz) for tz in ("UTC", "Asia/Tokyo"))
    objects = utc["top_objects"]
    assert len(objects) == 7 and set(objects["report_tz"]) == {"UTC"}
    first = ["rank", "distro", "uri", "requests", "hits", "bytes"]
    assert objects.iloc[0][first].tolist() == [1, "e1", "/a", 4, 3, 1500]
    assert str(objects["requests"].dtype) == "int64" and "dimension" not in objects.columns
    assert utc["top_referrers"][["referrer_domain", "requests"]].values.tolist() == [["www.example.com", 2],
                                                                                    ["cdn.test", 1]]  # fmt: skip
    assert utc["edge_locations"]["edge_location"].tolist() == ["NRT57-C1", "SFO5-C3"]
    assert set(utc["viewers"]["dimension"]) == {"device_type", "os", "browser"}
    assert len(tokyo["top_objects"]) == 6 and set(tokyo["top_objects"]["report_tz"]) == {"Asia/Tokyo"}
    # Each list's columns only: NULL elsewhere (spark sees the table as delta-rs does).
    nulls = read(spark, path, "stats_top_lists").where("list = 'viewers' AND uri IS NOT NULL").count()
    assert nulls == 0


def test_a_day_of_an_older_warehouse_is_read_from_its_table_per_list(spark: Any, tmp_path: Path) -> None:
    """Top lists written before stats_top_lists (a table per list) are still reported; a date
    aggregated again is read from stats_top_lists, and the older table is left as it was."""
    path = str(tmp_path / "warehouse")
    old = spark.createDataFrame([(1, "old.example", 5, 50, D.isoformat(), "UTC")],
                                "rank INT, referrer_domain STRING, requests BIGINT, bytes BIGINT, "
                                "report_date STRING, report_tz STRING")  # fmt: skip
    old.write.format("delta").partitionBy("report_date").save(table_path(path, "stats_top_referrers"))
    before = report_top_lists(path, D, "UTC")
    assert before["top_referrers"][["referrer_domain", "requests"]].values.tolist() == [["old.example", 5]]
    assert before["top_objects"].empty and before["viewers"].empty
    assert report_top_lists(path, D, "Asia/Tokyo")["top_referrers"].empty  # no list of that zone
    write_logs(spark, path, [log_row("2024-05-01 10:00:00", referer="https://new.example/")])
    run_aggregate(spark, path)
    after = report_top_lists(path, D, "UTC")
    assert after["top_referrers"][["referrer_domain", "requests"]].values.tolist() == [["new.example", 1]]
    assert after["top_objects"]["uri"].tolist() == ["/a"]
    assert read(spark, path, "stats_top_referrers").count() == 1  # not written any more


def test_small_table_settings_stay_in_the_statistics_writes(spark: Any) -> None:
    """The statistics commits get one snapshot partition and no adaptive execution; the session the
    jobs were handed (cdn_logs' reads, the ingest) keeps its own values."""
    from spark_jobs.session import SMALL_TABLE_CONF, small_table_session

    before = {key: spark.conf.get(key) for key in SMALL_TABLE_CONF}
    spark.conf.set("spark.sql.files.maxRecordsPerFile", "12345")  # set at run time, as jobs do
    try:
        small = small_table_session(spark)
    finally:
        spark.conf.unset("spark.sql.files.maxRecordsPerFile")
    assert {key: small.conf.get(key) for key in SMALL_TABLE_CONF} == {
        "spark.databricks.delta.snapshotPartitions": "1", "spark.sql.adaptive.enabled": "false"}  # fmt: skip
    assert {key: spark.conf.get(key) for key in SMALL_TABLE_CONF} == before
    assert before["spark.sql.adaptive.enabled"] == "true"
    # A copy, not a fresh session: the caller's settings, also those set at run time, come along.
    assert small.conf.get("spark.sql.files.maxRecordsPerFile") == "12345"
    assert small.conf.get("spark.sql.extensions") == spark.conf.get("spark.sql.extensions")
