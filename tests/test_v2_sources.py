"""The orchestrator's view of a v2 destination: listing by key path and the pre-load column check."""

from __future__ import annotations

import datetime as dt
import gzip
import os
from pathlib import Path

from cdnlake.sample_v2 import V2_EXTRA
from cdnlake.sources import column_count_problems, list_source
from spark_jobs.log_fields import LOG_FIELDS

DAY = dt.date(2025, 2, 16)


def _touch(path: Path, when: dt.datetime | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(b"#Fields: date\n"))
    if when is not None:
        os.utime(path, (when.timestamp(), when.timestamp()))
    return path


def test_list_source_finds_legacy_plain_hive_and_dateless_keys(tmp_path: Path) -> None:
    cf = tmp_path / "AWSLogs" / "123456789012" / "CloudFront"
    legacy = _touch(tmp_path / "legacy" / "E1LEGACY00001.2025-02-16-03.ab12.gz")
    plain = _touch(cf / "E2PLAIN000002" / "2025" / "02" / "16" / "10" / "part-1.gz")
    hive = _touch(cf / "DistributionId=E3HIVE0000003" / "year=2025" / "month=02" / "day=16" / "hour=23" / "p.parquet")
    dateless = _touch(cf / "E4NODATE00004" / "part-9.gz", dt.datetime(2025, 2, 17, 1, tzinfo=dt.UTC))
    _touch(cf / "E2PLAIN000002" / "2025" / "02" / "17" / "00" / "part-2.gz")  # the next day
    _touch(cf / "E2PLAIN000002" / "2025" / "02" / "16" / "10" / "_SUCCESS")  # not a log
    found = {(f.uri, f.distro, f.date, f.hour) for f in list_source(str(tmp_path), {DAY})}
    assert found == {
        (str(legacy), "e1legacy00001", "2025-02-16", 3),
        (str(plain), "e2plain000002", "2025-02-16", 10),
        (str(hive), "e3hive0000003", "2025-02-16", 23),
        (str(dateless), "e4nodate00004", "2025-02-16", -1),  # written the next day: may hold this one
    }
    only = list_source(str(tmp_path), {DAY}, {"e3hive0000003"})
    assert [f.uri for f in only] == [str(hive)]


def test_column_check_accepts_v2_selections_and_json(tmp_path: Path) -> None:
    header = "#Fields: " + " ".join((*LOG_FIELDS, *V2_EXTRA))  # 35 known fields, no #Version
    line = "\t".join(["x"] * 35)
    w3c = tmp_path / "w3c.gz"
    w3c.write_bytes(gzip.compress(f"\ufeff{header}\r\n{line}\r\n{line}\r\n".encode()))
    assert column_count_problems(str(w3c)) == []
    records = tmp_path / "json.gz"
    records.write_bytes(gzip.compress(b'{"date": "2025-02-16"}\n{"date": "2025-02-16"}\n'))
    assert column_count_problems(str(records)) == []
    unknown = tmp_path / "unknown.gz"
    unknown.write_bytes(gzip.compress(("#Fields: " + " ".join(f"f{i}" for i in range(35)) + "\n").encode()))
    assert column_count_problems(str(unknown)) == [f"{unknown}: header declares 35 fields (expected 18-33)"]
