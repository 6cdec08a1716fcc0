"""Which earlier dates a run re-ingests: the source listing vs ingest_files, on hand-made inputs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from cdnlake.late_files import IngestPlan, compare_date, describe, lines_added, plan_ingest

D = dt.date(2024, 6, 9)
MTIME = 1_717_900_000.0


@dataclass(frozen=True)
class Listed:
    uri: str
    size: int
    date: str
    modified: float | None = MTIME


def name(date: str, n: int) -> str:
    return f"E1.{date}-0{n}.abc{n}.gz"


def ingested(rows: list[tuple[str, str, int, int]]) -> pd.DataFrame:
    """ingest_files rows (dt, file_name, size, loaded) with the modification time delta-rs returns."""
    return pd.DataFrame(
        [{"dt": d, "file_name": f, "size_bytes": s, "loaded": n, "distro": "e1",
          "modified": pd.Timestamp(MTIME, unit="s")} for d, f, s, n in rows]  # fmt: skip
    )


def test_an_unchanged_date_is_not_re_ingested() -> None:
    d1, d2 = "2024-06-08", "2024-06-07"
    listed = [Listed(f"/src/{name(d, 1)}", 100, d) for d in (d1, d2)]
    plan = plan_ingest(D, 2, listed, ingested([(d1, name(d1, 1), 100, 7), (d2, name(d2, 1), 100, 5)]))
    assert plan.dates == [D]
    assert plan.changes == {} and plan.refreshed() == []


def test_a_late_file_for_d_minus_1_re_ingests_it_and_counts_the_lines_it_added() -> None:
    d1, d2 = "2024-06-08", "2024-06-07"
    listed = [Listed(f"s3://b/x/{name(d1, 1)}", 100, d1), Listed(f"s3://b/x/{name(d1, 2)}", 50, d1),
              Listed(f"s3://b/x/{name(d2, 1)}", 100, d2)]  # fmt: skip
    plan = plan_ingest(D, 2, listed, ingested([(d1, name(d1, 1), 100, 7), (d2, name(d2, 1), 100, 5)]))
    assert plan.dates == [dt.date(2024, 6, 8), D]
    assert plan.refreshed() == [d1]
    assert plan.changes[d1].new == [name(d1, 2)] and plan.changes[d1].loaded_before == 7
    added = lines_added(plan, {d1: {"loaded": 11}, D.isoformat(): {"loaded": 99}})
    assert added == {d1: 4}
    assert describe(plan, added) == [f"{d1} refreshed: 1 late or changed file(s), +4 lines"]


@pytest.mark.parametrize(("size", "modified", "changed"), [
    (101, MTIME, True),  # rewritten with other content
    (100, MTIME + 60, True),  # re-delivered: same size, later mtime
    (100, MTIME + 1, False),  # sub-second clock differences between listing and Spark are not changes
    (100, None, False),  # a listing without mtimes compares sizes only
])  # fmt: skip
def test_changed_files_by_size_or_modification_time(size: int, modified: float | None, changed: bool) -> None:
    d1 = "2024-06-08"
    found = compare_date(d1, [Listed(name(d1, 1), size, d1, modified)], ingested([(d1, name(d1, 1), 100, 7)]))
    assert found.changed == ([name(d1, 1)] if changed else [])
    assert found.has_late_files is changed


def test_removed_files_are_reported_without_re_ingesting() -> None:
    d1 = "2024-06-08"
    listed = [Listed(name(d1, 1), 100, d1)]
    plan = plan_ingest(D, 2, listed, ingested([(d1, name(d1, 1), 100, 7), (d1, name(d1, 2), 80, 3)]))
    assert plan.dates == [D]
    assert plan.changes[d1].removed == [name(d1, 2)]
    assert describe(plan, {}) == [f"{d1}: 1 file(s) ingested before are gone from the source: {name(d1, 2)}"]


def test_late_days_sets_how_far_back_and_zero_turns_change_detection_off() -> None:
    d3, d1 = "2024-06-06", "2024-06-08"
    listed = [Listed(name(d3, 1), 100, d3), Listed(name(d3, 2), 100, d3), Listed(name(d1, 1), 120, d1)]
    loaded = ingested([(d3, name(d3, 1), 100, 7), (d1, name(d1, 1), 100, 7)])
    assert plan_ingest(D, 3, listed, loaded).dates == [dt.date(2024, 6, 6), dt.date(2024, 6, 8), D]
    assert plan_ingest(D, 2, listed, loaded).dates == [dt.date(2024, 6, 8), D]
    off = plan_ingest(D, 0, listed, loaded)
    assert off.dates == [D] and off.changes == {}


def test_window_dates_with_files_but_nothing_loaded_are_ingested_even_when_off() -> None:
    """The first run on a fresh warehouse reports 72 hours (SPEC section 4), CDNLAKE_LATE_DAYS=0 or not."""
    d2, d1 = "2024-06-07", "2024-06-08"
    listed = [Listed(name(d2, 1), 100, d2), Listed(name(d1, 1), 100, d1)]
    plan = plan_ingest(D, 0, listed, pd.DataFrame())
    assert plan.dates == [dt.date(2024, 6, 7), dt.date(2024, 6, 8), D]
    assert plan.refreshed() == []  # a first load is not a late-file refresh


def test_negative_late_days_is_an_error() -> None:
    with pytest.raises(ValueError, match="late_days"):
        plan_ingest(D, -1, [], pd.DataFrame())


def test_plan_as_dict_is_json_friendly() -> None:
    plan = IngestPlan("2024-06-09", [D], 2)
    assert plan.as_dict() == {"date": "2024-06-09", "dates": ["2024-06-09"], "late_days": 2, "changes": {}}


def test_the_source_listing_gives_modification_times_locally_and_on_s3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import boto3
    from moto import mock_aws

    from cdnlake.sources import list_source

    local = tmp_path / "E1.2024-06-08-01.abc.gz"
    local.write_bytes(b"x" * 7)
    os.utime(local, (MTIME, MTIME))
    (found,) = list_source(str(tmp_path), {dt.date(2024, 6, 8)})
    assert (found.size, found.modified) == (7, MTIME)
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)  # a proxy's bundle makes moto's in-process mock answer 404
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="cdnlake-raw")
        s3.put_object(Bucket="cdnlake-raw", Key="cf/E1.2024-06-08-01.abc.gz", Body=b"x" * 5)
        stored = s3.head_object(Bucket="cdnlake-raw", Key="cf/E1.2024-06-08-01.abc.gz")["LastModified"]
        (remote,) = list_source("s3://cdnlake-raw/cf", {dt.date(2024, 6, 8)}, None, s3)
    assert (remote.uri, remote.size, remote.modified) == ("s3://cdnlake-raw/cf/E1.2024-06-08-01.abc.gz", 5,
                                                          stored.timestamp())  # fmt: skip
