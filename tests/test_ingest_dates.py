"""Several dates in one ingest job: the same tables and the same per-date accounting as one job per
date, values checked by hand on tiny files."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from spark_jobs import ingest
from spark_jobs.contract import partitions_predicate
from spark_jobs.params import IngestParams
from tests.samples import DISTRO, sample_lines, write_gz

D1, D2, D3 = dt.date(2018, 11, 5), dt.date(2018, 11, 6), dt.date(2018, 11, 7)
A, Z = DISTRO.lower(), "ezsecond"
HEADER, LINES = sample_lines("real-2018-26fields-excerpt")


def line(i: int, date: dt.date, request_id: str) -> str:
    """Sample line i moved to `date`, with its own request id."""
    fields = LINES[i].split("\t")
    fields[0], fields[14] = date.isoformat(), request_id
    return "\t".join(fields)


def build_landing(root: Path) -> None:
    """D1: a (3 good, 1 broken), d of a second distribution repeating a's R1 (a's name sorts first);
    D2: b (its SHARED id is also on D1), bcopy (b's bytes), c (repeats b's R4). D3: none."""
    write_gz(root / f"{DISTRO}.2018-11-05-00.a.gz",
             HEADER + [line(0, D1, "R1"), line(1, D1, "R2"), line(2, D1, "SHARED"), "2018-11-05\tbroken"])  # fmt: skip
    write_gz(root / "EZSECOND.2018-11-05-03.d.gz", HEADER + [line(3, D1, "R1")])
    b = write_gz(root / f"{DISTRO}.2018-11-06-00.b.gz", HEADER + [line(3, D2, "SHARED"), line(4, D2, "R4"),
                                                                    line(0, D2, "R5")])  # fmt: skip
    shutil.copy(b, root / f"{DISTRO}.2018-11-06-00.bcopy.gz")
    write_gz(root / f"{DISTRO}.2018-11-06-01.c.gz", HEADER + [line(1, D2, "R4"), line(2, D2, "R6")])


def run_ingest(spark: Any, source: Path, warehouse: Path, date: dt.date, *dates: dt.date) -> dict[str, Any]:
    argv = ["--date", date.isoformat(), "--source", str(source), "--warehouse", str(warehouse)]
    if dates:
        argv += ["--dates", ",".join(d.isoformat() for d in dates)]
    return ingest.run(spark, IngestParams.from_namespace(ingest.build_parser().parse_args(argv)))


def versions(warehouse: Path) -> dict[str, int]:
    return {t: DeltaTable(str(warehouse / t)).version() for t in ("cdn_logs", "cdn_logs_rejects", "ingest_files")}


@pytest.fixture(scope="module")
def ingested(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Warehouse `one`: D3 loaded earlier, then D1, D2 and D3 (no files any more) in one job;
    warehouse `each`: the same with one job per date."""
    root = tmp_path_factory.mktemp("dates")
    d3_only, source = root / "d3", root / "landing"
    write_gz(d3_only / f"{DISTRO}.2018-11-07-05.old.gz", HEADER + [line(4, D3, "OLD")])
    build_landing(source)
    for warehouse in (root / "one", root / "each"):
        run_ingest(spark, d3_only, warehouse, D3)
    before = versions(root / "one")
    one = run_ingest(spark, source, root / "one", D3, D1, D2)
    after = versions(root / "one")
    each = {d.isoformat(): run_ingest(spark, source, root / "each", d) for d in (D1, D2, D3)}
    return {"root": root, "one": one, "each": each, "before": before, "after": after}


def table(spark: Any, warehouse: Path, name: str, drop: tuple[str, ...] = ()) -> list[Any]:
    frame = spark.read.format("delta").load(str(warehouse / name)).drop(*drop)
    return sorted(tuple(r) for r in frame.collect())


def test_per_date_accounting_by_hand(ingested: dict[str, Any]) -> None:
    per_date = ingested["one"]["per_date"]
    assert sorted(per_date) == [D1.isoformat(), D2.isoformat(), D3.isoformat()]
    first, second, third = (per_date[d.isoformat()] for d in (D1, D2, D3))
    assert (first["files"], first["lines_read"], first["loaded"], first["rejected"]) == (2, 5, 3, 2)
    assert first["per_distro"] == {A: {"files": 1, "lines_read": 4, "loaded": 3, "rejected": 1},
                                   Z: {"files": 1, "lines_read": 1, "loaded": 0, "rejected": 1}}  # fmt: skip
    assert (second["files"], second["lines_read"], second["loaded"], second["rejected"]) == (3, 8, 4, 4)
    assert (second["duplicate_files"], second["damaged_files"]) == (1, 0)
    # D3 had files once, none now: nothing loaded, its partitions left as they were.
    assert third == {"date": D3.isoformat(), "run_id": third["run_id"], "files": 0, "lines_read": 0, "loaded": 0,
                     "rejected": 0, "per_distro": {}}  # fmt: skip
    # The top level is the job's own date's (D3), as a job of one date returns.
    assert {k: v for k, v in ingested["one"].items() if k not in ("per_date", "seconds")} == third


def test_same_tables_as_one_job_per_date(spark: Any, ingested: dict[str, Any]) -> None:
    one, each = ingested["root"] / "one", ingested["root"] / "each"
    assert table(spark, one, "cdn_logs") == table(spark, each, "cdn_logs")
    assert table(spark, one, "cdn_logs_rejects", ("ingest_run",)) == table(spark, each, "cdn_logs_rejects",
                                                                           ("ingest_run",))  # fmt: skip
    run_columns = ("ingest_run", "ingested_at")
    assert table(spark, one, "ingest_files", run_columns) == table(spark, each, "ingest_files", run_columns)
    for d in (D1, D2):
        expected = {k: v for k, v in ingested["each"][d.isoformat()].items() if k not in ("run_id", "seconds")}
        got = {k: v for k, v in ingested["one"]["per_date"][d.isoformat()].items() if k != "run_id"}
        assert {k: v for k, v in got.items() if k != "files_written"} == {
            k: v for k, v in expected.items() if k not in ("files_written", "per_date")}


def test_repeats_are_found_within_a_date_only(spark: Any, ingested: dict[str, Any]) -> None:
    logs = spark.read.format("delta").load(str(ingested["root"] / "one" / "cdn_logs"))
    ids = sorted((r.dt, r.distro, r.x_edge_request_id) for r in logs.collect())
    # SHARED is on both dates (each date keeps its request, as one job per date did); R1 on D1 and
    # R4 on D2 are kept once; bcopy's lines and D3's earlier row OLD stay out / in as they were.
    assert ids == [(D1.isoformat(), A, "R1"), (D1.isoformat(), A, "R2"), (D1.isoformat(), A, "SHARED"),
                   (D2.isoformat(), A, "R4"), (D2.isoformat(), A, "R5"), (D2.isoformat(), A, "R6"),
                   (D2.isoformat(), A, "SHARED"), (D3.isoformat(), A, "OLD")]  # fmt: skip
    rejects = spark.read.format("delta").load(str(ingested["root"] / "one" / "cdn_logs_rejects")).collect()
    reasons = sorted((r.dt, r.source_file.rsplit(".", 2)[-2], r.reason.split(":")[0]) for r in rejects)
    first, second = D1.isoformat(), D2.isoformat()
    assert reasons == [(first, "a", "column count check"), (first, "d", "duplicate request id"),
                       *[(second, "bcopy", "duplicate file")] * 3, (second, "c", "duplicate request id")]  # fmt: skip


def test_one_commit_per_table_for_all_dates(ingested: dict[str, Any]) -> None:
    before, after = ingested["before"], ingested["after"]
    # cdn_logs: the write, then the MERGE that moved the repeats out; the others one write each.
    assert {t: after[t] - before[t] for t in after} == {"cdn_logs": 2, "cdn_logs_rejects": 1, "ingest_files": 1}
    written = {d: r.get("files_written") for d, r in ingested["one"]["per_date"].items()}
    assert written[D3.isoformat()] is None  # nothing written: the compact job decides, as before
    # cdn_logs' latest commit is the MERGE: left to the compact job; the other two from their write.
    assert sorted(written[D1.isoformat()]) == ["cdn_logs_rejects", "ingest_files"]
    assert sorted(written[D1.isoformat()]["ingest_files"]) == [A, Z]
    assert sorted(written[D2.isoformat()]["ingest_files"]) == [A]


def test_partitions_predicate() -> None:
    assert partitions_predicate({D1: None, D2: None}) == "dt IN ('2018-11-05', '2018-11-06')"
    assert partitions_predicate({D2: ["a1", "b2"], D1: ["b2", "a1"]}) == (
        "dt IN ('2018-11-05', '2018-11-06') AND distro IN ('a1', 'b2')")
    assert partitions_predicate({D1: ["a1", "b2"], D2: ["a1"]}, prefix="t.") == (
        "(t.dt IN ('2018-11-06') AND t.distro IN ('a1')) OR "
        "(t.dt IN ('2018-11-05') AND t.distro IN ('a1', 'b2'))")
    with pytest.raises(ValueError, match="no partitions"):
        partitions_predicate({})
    with pytest.raises(ValueError, match="not a CloudFront distribution id"):
        partitions_predicate({D1: ["a1') OR ('1' = '1"]})


def test_local_files_are_checked_without_a_spark_job(spark: Any, tmp_path: Path) -> None:
    """Past 32 paths Spark checks a scan's files in a job of its own; local files are checked on
    the driver instead (no job), and the session's setting is left as it was."""
    from spark_jobs.ingest_reader import read_raw_lines
    from spark_jobs.raw_reader import ReaderOptions
    from spark_jobs.storage import list_raw_files

    for hour in range(24):
        for n in range(2):
            write_gz(tmp_path / f"{DISTRO}.2018-11-05-{hour:02d}.f{n}.gz", HEADER + [line(0, D1, f"R{hour}-{n}")])
    files = list_raw_files(spark, str(tmp_path), {D1})
    assert len(files) == 48
    threshold = "spark.sql.sources.parallelPartitionDiscovery.threshold"
    before = spark.conf.get(threshold, None)
    context = spark.sparkContext
    context.setJobGroup("path-check", "read_raw_lines of 48 local files")
    try:
        read_raw_lines(spark, files, ReaderOptions())
        assert list(context.statusTracker().getJobIdsForGroup("path-check")) == []
    finally:
        context.setJobGroup(None, None)  # type: ignore[arg-type]
    assert spark.conf.get(threshold, None) == before
