"""Only the window's dates whose cdn_logs files changed are rescanned (spark_jobs/stats_sources.py).

Every expected count is by hand from the rows written here."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from spark_jobs import aggregate, stats_sources
from spark_jobs.commit_files import latest_commit_lines
from spark_jobs.storage import table_path
from tests.test_aggregate import log_row, write_logs

D = dt.date(2024, 5, 1)
NEXT = D + dt.timedelta(days=1)


def run(spark: Any, warehouse: str, date: dt.date, *extra: str) -> dict[str, Any]:
    args = aggregate.build_parser().parse_args(["--date", date.isoformat(), "--warehouse", warehouse, *extra])
    return aggregate.run(spark, args)


def requests_per_hour(spark: Any, warehouse: str) -> dict[tuple[str, str, int], int]:
    rows = spark.read.format("delta").load(table_path(warehouse, "stats_hourly")).collect()
    return {(r["distro"], r["dt"], r["hour"]): r["request_count"] for r in rows}


@pytest.fixture
def two_days(spark: Any, tmp_path: Path) -> str:
    """e1 and e2 on D-1 and D, aggregated once for D (both dates built)."""
    path = str(tmp_path / "warehouse")
    write_logs(spark, path, [
        log_row("2024-04-30 10:00:00"), log_row("2024-04-30 10:30:00", distro="e2"),
        log_row("2024-05-01 08:00:00"), log_row("2024-05-01 08:10:00"), log_row("2024-05-01 09:00:00", distro="e2"),
    ])  # fmt: skip
    result = run(spark, path, D)
    assert (result["dates"], result["unchanged"]) == (["2024-04-30", "2024-05-01"], [])
    return path


BUILT = {("e1", "2024-04-30", 10): 1, ("e2", "2024-04-30", 10): 1, ("e1", "2024-05-01", 8): 2,
         ("e2", "2024-05-01", 9): 1}  # fmt: skip


def test_the_next_day_leaves_unchanged_dates_unscanned(spark: Any, two_days: str) -> None:
    result = run(spark, two_days, NEXT)
    assert (result["dates"], result["unchanged"]) == ([], ["2024-04-30", "2024-05-01"])
    assert set(result["raw_totals"]) == {"2024-05-02"}  # only what was scanned
    assert requests_per_hour(spark, two_days) == BUILT


def test_a_date_whose_files_changed_is_rebuilt(spark: Any, two_days: str) -> None:
    write_logs(spark, two_days, [log_row("2024-05-01 08:20:00", distro="e2")])  # a new file in (e2, D)
    result = run(spark, two_days, NEXT)
    assert (result["dates"], result["unchanged"]) == (["2024-05-01"], ["2024-04-30"])
    assert requests_per_hour(spark, two_days) == BUILT | {("e2", "2024-05-01", 8): 1}
    assert result["raw_totals"]["2024-05-01"]["request_count"] == 4


def test_the_written_commits_remember_the_window(spark: Any, two_days: str) -> None:
    for table in stats_sources.TIME_SERIES_TABLES:
        lines = latest_commit_lines(spark, table_path(two_days, table))
        info = next(json.loads(line)["commitInfo"] for line in lines if "commitInfo" in line)
        remembered = json.loads(info["userMetadata"])["cdnlake_sources"]
        assert sorted(remembered) == ["e1/2024-04-30", "e1/2024-05-01", "e2/2024-04-30", "e2/2024-05-01"]


def test_another_writers_commit_or_a_new_stats_version_rebuilds(spark: Any, two_days: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    spark.sql(f"ALTER TABLE delta.`{table_path(two_days, 'stats_hourly')}` SET TBLPROPERTIES ('x.note' = 'a')")
    assert run(spark, two_days, NEXT)["dates"] == ["2024-04-30", "2024-05-01"]  # no digests in that commit
    assert run(spark, two_days, NEXT)["dates"] == []  # remembered again
    monkeypatch.setattr(stats_sources, "STATS_VERSION", "2")
    assert run(spark, two_days, NEXT)["dates"] == ["2024-04-30", "2024-05-01"]
    assert requests_per_hour(spark, two_days) == BUILT


def test_a_run_for_some_distributions_keeps_the_others_remembered(spark: Any, two_days: str) -> None:
    write_logs(spark, two_days, [log_row("2024-04-30 11:00:00")])  # (e1, D-1) changes
    only_e1 = run(spark, two_days, NEXT, "--distributions", "e1")
    assert (only_e1["dates"], only_e1["unchanged"]) == (["2024-04-30"], ["2024-05-01"])
    everything = run(spark, two_days, NEXT)
    assert (everything["dates"], everything["unchanged"]) == ([], ["2024-04-30", "2024-05-01"])
    assert requests_per_hour(spark, two_days) == BUILT | {("e1", "2024-04-30", 11): 1}


def test_digests_name_the_file_set_of_each_partition() -> None:
    files = [("e1", "2024-05-01", "a.parquet", ""), ("e1", "2024-05-01", "b.parquet", ""),
             ("e2", "2024-05-01", "c.parquet", "")]  # fmt: skip
    digests = stats_sources.digests_of(files)
    assert sorted(digests) == ["e1/2024-05-01", "e2/2024-05-01"]
    assert stats_sources.digests_of(reversed(files)) == digests  # order does not matter
    other = stats_sources.digests_of([files[0], files[2]])
    assert other["e2/2024-05-01"] == digests["e2/2024-05-01"] and other["e1/2024-05-01"] != digests["e1/2024-05-01"]
    deleted_rows = stats_sources.digests_of([files[0], (*files[1][:3], '{"cardinality":2}'), files[2]])
    assert deleted_rows["e1/2024-05-01"] != digests["e1/2024-05-01"]  # a deletion vector is a change


def test_unchanged_dates_need_every_partition_remembered_alike() -> None:
    day1, day2, day3 = (dt.date(2024, 4, d) for d in (28, 29, 30))
    now = {"e1/2024-04-28": "x", "e2/2024-04-28": "y", "e1/2024-04-29": "z"}
    remembered = {"e1/2024-04-28": "x", "e2/2024-04-28": "y", "e1/2024-04-29": "old"}
    assert stats_sources.unchanged_dates([day1, day2, day3], now, remembered) == [day1]
    assert stats_sources.unchanged_dates([day1], now, {"e1/2024-04-28": "x"}) == []  # e2 not remembered
    assert stats_sources.dates_with_partitions([day1, day2, day3], now) == [day1, day2]


def test_metadata_of_another_writer_is_no_digest() -> None:
    def commit(user_metadata: str | None) -> list[str]:
        return [json.dumps({"commitInfo": {"operation": "WRITE", "userMetadata": user_metadata}})]

    ours = stats_sources.commit_metadata({"e1/2024-05-01": "abc"})
    assert stats_sources._from_commit(commit(ours)) == {"e1/2024-05-01": "abc"}
    for foreign in (None, "", "free text", "[1, 2]", '{"cdnlake_sources": 3}'):
        assert stats_sources._from_commit(commit(foreign)) == {}


def test_a_rescanned_date_without_rows_loses_its_statistics(spark: Any, two_days: str) -> None:
    """A re-ingest of D-1 that loaded nothing (its partitions replaced by none): D-1's statistics
    go with its rows instead of outliving them."""
    empty = spark.createDataFrame([], spark.read.format("delta").load(table_path(two_days, "cdn_logs")).schema)
    empty.write.format("delta").mode("overwrite").option("replaceWhere", "dt = '2024-04-30'").save(
        table_path(two_days, "cdn_logs"))  # fmt: skip
    result = run(spark, two_days, D, "--dates", "2024-04-30")
    assert (result["dates"], result["unchanged"]) == (["2024-05-01"], [])
    assert result["raw_totals"]["2024-04-30"]["request_count"] == 0
    assert requests_per_hour(spark, two_days) == {k: v for k, v in BUILT.items() if k[1] == "2024-05-01"}
