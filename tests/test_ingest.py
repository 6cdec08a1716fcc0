"""Ingest of the real-format samples into Delta, with values checked by hand."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from spark_jobs import ingest
from spark_jobs.params import IngestParams
from tests.samples import DISTRO, build_landing, sample_lines, write_gz

D = DISTRO.lower()
DATES = ("2016-06-10", "2018-11-07", "2019-12-04", "2022-04-19", "2024-07-13")


def run_ingest(spark: Any, source: Path, warehouse: Path, date: str) -> dict[str, Any]:
    args = ingest.build_parser().parse_args(
        ["--date", date, "--source", str(source), "--warehouse", str(warehouse)]
    )
    return ingest.run(spark, IngestParams.from_namespace(args))


@pytest.fixture(scope="module")
def loaded(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("ingest")
    source, warehouse = root / "landing", root / "warehouse"
    build_landing(source)
    # A 26-field file for a date that also has 33-field files.
    header, lines = sample_lines("aws-docs-33-fields")
    short = "\t".join(lines[0].split("\t")[:26]).replace("SOX4xwn4XV6Q", "SHORT26XXXXX")
    write_gz(source / "x" / f"{DISTRO}.2019-12-04-21.short26.gz",
             ["#Version: 1.0", "#Fields: " + " ".join(header[1].split()[1:27]), short])  # fmt: skip
    results = {d: run_ingest(spark, source, warehouse, d) for d in DATES}
    logs = spark.read.format("delta").load(str(warehouse / "cdn_logs"))
    return {"source": source, "warehouse": warehouse, "results": results, "logs": logs}


def rows(loaded: dict[str, Any], date: str) -> list[Any]:
    return loaded["logs"].where(f"dt = '{date}'").orderBy("source_file", "line_no").collect()


def test_counts_per_date(loaded: dict[str, Any]) -> None:
    r = loaded["results"]
    # 2019-12-04: double-encoded (1) + aws-docs (3, one with a trailing empty field) + IPv6 (1) + 26-field (1)
    assert (r["2019-12-04"]["lines_read"], r["2019-12-04"]["loaded"], r["2019-12-04"]["rejected"]) == (
        6,
        6,
        0,
    )
    assert (r["2018-11-07"]["loaded"], r["2018-11-07"]["rejected"]) == (5, 0)
    assert (r["2024-07-13"]["loaded"], r["2024-07-13"]["rejected"]) == (0, 1)
    assert r["2019-12-04"]["per_distro"] == {D: {"files": 4, "lines_read": 6, "loaded": 6, "rejected": 0}}


def test_23_field_refresh_hit_line(loaded: dict[str, Any]) -> None:
    (row,) = rows(loaded, "2016-06-10")
    assert row.ts == dt.datetime(2016, 6, 10, 18, 41, 39) and row.hour == 18
    assert row.x_edge_result_type == "Miss" and row.x_edge_response_result_type == "RefreshHit"
    assert row.sc_bytes == 224281 and row.time_taken == pytest.approx(0.036)
    assert row.cs_protocol_version is None and row.c_port is None  # not declared by a 23-field file
    assert row.cs_user_agent == (
        "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/51.0.2704.79 Safari/537.36"
    )
    assert (row.device_type, row.os, row.browser) == ("desktop", "Windows", "Chrome")


def test_double_encoded_agent_trailing_tab_and_ipv6(loaded: dict[str, Any]) -> None:
    day = rows(loaded, "2019-12-04")
    agents = {r.cs_user_agent for r in day}
    assert agents == {
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/78.0.3904.108 Safari/537.36"
    }
    # Client IPs are truncated by default: IPv6 to /48, IPv4 to /24.
    assert {r.c_ip for r in day} == {"2a02:cf40:add::", "192.0.2.0"}
    assert sum(r.sc_bytes for r in day) == 392 * 6
    short = [r for r in day if r.source_file.endswith("short26.gz")]
    # 26 declared fields end with fle-encrypted-fields: c-port and later are NULL.
    assert len(short) == 1 and short[0].x_edge_response_result_type == "Hit"
    assert short[0].c_port is None and short[0].time_to_first_byte is None


def test_26_field_2018_bot_agent_keeps_plus(loaded: dict[str, Any]) -> None:
    day = rows(loaded, "2018-11-07")
    assert sum(r.sc_bytes for r in day) == 376 + 965 + 966 + 55628 + 369
    bot = [r for r in day if "bingbot" in r.cs_user_agent]
    assert bot[0].cs_user_agent == "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
    assert bot[0].device_type == "bot"
    assert [r.status_class for r in day].count(3) == 2


def test_status_000_has_no_class(loaded: dict[str, Any]) -> None:
    (row,) = rows(loaded, "2022-04-19")
    assert row.sc_status == 0 and row.status_class is None and row.cs_method == "POST"


def test_rejects_and_ingest_files(spark: Any, loaded: dict[str, Any]) -> None:
    wh = loaded["warehouse"]
    (reject,) = (
        spark.read.format("delta").load(str(wh / "cdn_logs_rejects")).where("dt = '2024-07-13'").collect()
    )
    assert reject.reason == "column count check: header declares 33 fields, line has 31"
    assert reject.line_no == 3 and reject.raw_line.startswith("2024-07-13\t15:29:45\tEWR53-C1")
    files = spark.read.format("delta").load(str(wh / "ingest_files")).collect()
    ingested = [p for p in loaded["source"].rglob("*.gz") if p.name.split(".")[1][:10] in DATES]
    assert len(files) == len(ingested) == 8
    for f in files:
        assert f.lines_read == f.loaded + f.rejected
        assert not f.damaged


def test_rerun_replaces_partition(spark: Any, loaded: dict[str, Any]) -> None:
    again = run_ingest(spark, loaded["source"], loaded["warehouse"], "2019-12-04")
    assert again["loaded"] == 6
    logs = spark.read.format("delta").load(str(loaded["warehouse"] / "cdn_logs"))
    assert logs.where("dt = '2019-12-04'").count() == 6
    assert logs.count() == 6 + 5 + 1 + 1  # other dates untouched


def test_damaged_and_duplicate_files(spark: Any, tmp_path: Path) -> None:
    source = tmp_path / "landing"
    header, lines = sample_lines("real-2018-26fields-excerpt")
    good = write_gz(source / f"{DISTRO}.2018-11-07-00.agood.gz", header + lines)
    (source / f"{DISTRO}.2018-11-07-00.bcopy.gz").write_bytes(good.read_bytes())
    big = header + [lines[1]] * 4000
    damaged = gzip.compress(("\n".join(big) + "\n").encode())[:-300]
    (source / f"{DISTRO}.2018-11-07-00.trunc.gz").write_bytes(damaged)
    (source / f"{DISTRO}.2018-11-07-00.zero.gz").write_bytes(b"")
    result = run_ingest(spark, source, tmp_path / "wh", "2018-11-07")
    files = {r.file_name.split(".")[-2]: r for r in
             spark.read.format("delta").load(str(tmp_path / "wh" / "ingest_files")).collect()}  # fmt: skip
    assert files["agood"].loaded == 5 and not files["agood"].damaged
    assert files["bcopy"].duplicate_of.endswith("agood.gz") and files["bcopy"].loaded == 0
    assert files["bcopy"].rejected == 5
    assert files["trunc"].damaged and 0 < files["trunc"].lines_read < 4000
    assert files["zero"].damaged and files["zero"].lines_read == 0
    for f in files.values():
        assert f.lines_read == f.loaded + f.rejected
    assert result["damaged_files"] == 2 and result["duplicate_files"] == 1
    reasons = [r.reason for r in spark.read.format("delta").load(str(tmp_path / "wh" / "cdn_logs_rejects"))
               .where("line_no IS NULL").collect()]  # fmt: skip
    assert sorted(reasons) == ["truncated gzip (unexpected end of file)", "zero-byte file (not gzip)"]


def test_readable_by_delta_rs(loaded: dict[str, Any]) -> None:
    table = DeltaTable(str(loaded["warehouse"] / "cdn_logs"))
    assert table.metadata().partition_columns == ["distro", "dt"]
    # Statistics only on what queries filter by (set by the write that created the table).
    stats_columns = table.metadata().configuration["delta.dataSkippingStatsColumns"]
    assert stats_columns == "ts,hour,sc_status,x_edge_location,x_edge_response_result_type"
    frame = table.to_pandas(partitions=[("dt", "=", "2018-11-07")])
    assert len(frame) == 5 and set(frame["distro"]) == {D}


def test_repeated_request_ids_are_loaded_once(spark: Any, tmp_path: Path) -> None:
    """The same requests re-delivered in a different file (other bytes, other name) count once."""
    source = tmp_path / "landing"
    header, lines = sample_lines("real-2018-26fields-excerpt")
    write_gz(source / f"{DISTRO}.2018-11-07-00.first.gz", header + lines)
    # Re-sent: two of the five requests again, plus a new one (its request id edited), another header.
    new_line = lines[0].replace(lines[0].split("\t")[14], "NEWREQUESTID0000000000000000000000000000000000000000==")
    write_gz(source / f"{DISTRO}.2018-11-07-00.resent.gz", [header[0], header[1], lines[3], new_line, lines[1]])
    result = run_ingest(spark, source, tmp_path / "wh", "2018-11-07")
    assert (result["lines_read"], result["loaded"], result["rejected"]) == (8, 6, 2)
    files = {r.file_name.split(".")[-2]: r for r in
             spark.read.format("delta").load(str(tmp_path / "wh" / "ingest_files")).collect()}  # fmt: skip
    assert (files["first"].loaded, files["first"].rejected) == (5, 0)
    assert (files["resent"].loaded, files["resent"].rejected, files["resent"].duplicate_of) == (1, 2, None)
    rejects = spark.read.format("delta").load(str(tmp_path / "wh" / "cdn_logs_rejects")).orderBy("line_no").collect()
    # The repeat is not stored again: the reason points at the request's first line.
    assert [(r.line_no, r.raw_line) for r in rejects] == [(3, None), (5, None)]
    first = next(iter(source.glob("*.first.gz")))
    # line numbers of the first file: 2 header lines, so sample line i is at line i + 3
    assert [r.reason for r in rejects] == [f"duplicate request id: first at file:{first} line 6",
                                           f"duplicate request id: first at file:{first} line 4"]  # fmt: skip
    ids = [r.x_edge_request_id for r in spark.read.format("delta").load(str(tmp_path / "wh" / "cdn_logs")).collect()]
    assert len(ids) == len(set(ids)) == 6


def test_a_file_with_more_rejects_than_come_inline_keeps_them_all(spark: Any, tmp_path: Path) -> None:
    """Rejected lines travel to the driver inline up to INLINE_REJECTS per file; a file with more
    is read again for them: every one is in the rejects, with its text, none in cdn_logs."""
    from spark_jobs.ingest_accounting import INLINE_REJECTS

    source = tmp_path / "landing"
    header, lines = sample_lines("real-2018-26fields-excerpt")
    many = INLINE_REJECTS + 7
    broken = [f"2018-11-07\tbroken line {i}" for i in range(many)]
    write_gz(source / f"{DISTRO}.2018-11-07-00.many.gz", header + lines[:2] + broken)
    write_gz(source / f"{DISTRO}.2018-11-07-01.few.gz", header + lines[2:] + broken[:1])
    result = run_ingest(spark, source, tmp_path / "wh", "2018-11-07")
    assert (result["lines_read"], result["loaded"], result["rejected"]) == (5 + many + 1, 5, many + 1)
    rejects = spark.read.format("delta").load(str(tmp_path / "wh" / "cdn_logs_rejects")).collect()
    by_file = {name: sorted((r.line_no, r.raw_line) for r in rejects if r.source_file.endswith(f".{name}.gz"))
               for name in ("many", "few")}  # fmt: skip
    # 2 header lines, then 2 good lines: the broken lines start at line 5 of `many`, line 6 of `few`.
    assert by_file["many"] == [(5 + i, broken[i]) for i in range(many)]
    assert by_file["few"] == [(6, broken[0])]
    assert {r.reason for r in rejects} == {"column count check: header declares 26 fields, line has 2"}
    logs = spark.read.format("delta").load(str(tmp_path / "wh" / "cdn_logs"))
    assert logs.count() == 5 and logs.where("line_no IS NULL").count() == 0
