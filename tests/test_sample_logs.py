"""Tests of cdnlake.sample_logs: the output is read back independently (gzip + split), as a parser would."""

from __future__ import annotations

import datetime as dt
import gzip
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from cdnlake.sample_logs import LOG_FIELDS, distribution_ids, generate_logs

DATE = dt.date(2024, 6, 9)
ROWS = 20_000
NAME_RE = re.compile(r"^(E[A-Z0-9]{13})\.(\d{4}-\d{2}-\d{2})-(\d{2})\.([0-9a-f]{8})\.gz$")
TIME_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d:[0-5]\d$")


@dataclass
class Parsed:
    files: dict[Path, list[str]]  # file -> declared field names (from its last #Fields line)
    rows: list[tuple[Path, dict[str, str]]]  # valid lines, mapped by the file's header
    data_lines: int
    rejected: Counter[str]


def parse(paths: list[Path]) -> Parsed:
    """Independent reader: SPEC section 1 column-count check plus typing of sc-bytes, date and time."""
    out = Parsed({}, [], 0, Counter())
    for path in paths:
        fields: list[str] = []
        with gzip.open(path, "rt", encoding="utf-8", newline="\n") as fh:
            for raw in fh:
                line = raw.rstrip("\n")
                if line.startswith("#"):
                    if line.startswith("#Fields: "):
                        fields = line[len("#Fields: ") :].split(" ")
                    continue
                out.data_lines += 1
                values = line.split("\t")
                if len(values) == len(fields) + 1 and values[-1] == "":
                    values = values[:-1]
                if len(values) != len(fields):
                    out.rejected["column_count"] += 1
                    continue
                rec = dict(zip(fields, values, strict=True))
                if not rec["sc-bytes"].isdigit():
                    out.rejected["sc_bytes"] += 1
                elif not TIME_RE.match(rec["time"]):
                    out.rejected["time"] += 1
                else:
                    try:
                        dt.date.fromisoformat(rec["date"])
                    except ValueError:
                        out.rejected["date"] += 1
                        continue
                    out.rows.append((path, rec))
        out.files[path] = fields
    return out


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("logs")
    result = generate_logs(DATE, 3, ROWS, 42, out)
    return out, result, parse(result.files)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.gz"))}


def test_deterministic_for_a_seed(generated, tmp_path: Path) -> None:
    root, result, _ = generated
    again = generate_logs(DATE, 3, ROWS, 42, tmp_path / "same")
    assert _tree(tmp_path / "same") == _tree(root)
    assert again.malformed_by_kind == result.malformed_by_kind
    same = tmp_path / "same"
    assert [p.relative_to(same) for p in again.files] == [p.relative_to(root) for p in result.files]
    other = generate_logs(DATE, 3, ROWS, 43, tmp_path / "other")
    assert other.distribution_ids != result.distribution_ids
    assert _tree(tmp_path / "other") != _tree(root)


def test_distribution_ids() -> None:
    ids = distribution_ids(5, 7)
    assert ids == distribution_ids(5, 7) and ids[:3] == distribution_ids(3, 7)
    assert len(set(ids)) == 5 and all(re.fullmatch(r"E[A-Z0-9]{13}", i) for i in ids)
    assert distribution_ids(5, 8) != ids


def test_file_names_and_dates(generated) -> None:
    root, result, parsed = generated
    assert sorted(result.files) == sorted(root.rglob("*.gz"))
    assert {p.parent.name for p in result.files} == set(result.distribution_ids)
    hours: Counter[str] = Counter()
    for path in result.files:
        m = NAME_RE.match(path.name)
        assert m, path.name
        assert m.group(1) == path.parent.name and m.group(2) == DATE.isoformat()
        hours[m.group(3)] += 1
    assert len(hours) == 24 and max(hours.values()) <= 3 * 4  # 3 distributions x files_per_hour
    for path, rec in parsed.rows:
        m = NAME_RE.match(path.name)
        assert m and rec["date"] == m.group(2) and rec["time"][:2] == m.group(3)


def test_headers(generated) -> None:
    _, result, parsed = generated
    for path in result.files:
        with gzip.open(path, "rt") as fh:
            assert fh.readline() == "#Version: 1.0\n"
            assert fh.readline().startswith("#Fields: date time x-edge-location ")
    repeated = 0
    for path in result.files:
        with gzip.open(path, "rt") as fh:
            repeated += sum(line.startswith("#Fields:") for line in fh) > 1
    assert repeated >= 1  # concatenated-style files: the header appears again mid-file
    kinds = Counter(len(f) for f in parsed.files.values())
    assert set(kinds) == {26, 33} and kinds[26] >= 5
    assert all(f == list(LOG_FIELDS[: len(f)]) for f in parsed.files.values())


def test_counts_and_malformed_lines(generated) -> None:
    _, result, parsed = generated
    assert result.lines_written == ROWS == parsed.data_lines
    assert sum(parsed.rejected.values()) == result.malformed_lines == sum(result.malformed_by_kind.values())
    assert result.valid_lines == len(parsed.rows) == ROWS - result.malformed_lines
    assert 5 <= result.malformed_lines <= 60  # about 0.1%
    assert parsed.rejected["column_count"] == (
        result.malformed_by_kind["truncated"] + result.malformed_by_kind["extra_column"]
    )
    for path, rec in parsed.rows:
        assert len(rec) == len(parsed.files[path])


def test_result_types_and_status(generated) -> None:
    _, _, parsed = generated
    recs = [r for _, r in parsed.rows]
    share = Counter(r["x-edge-result-type"] for r in recs)
    assert 0.70 <= share["Hit"] / len(recs) <= 0.80
    assert 0.20 <= share["Miss"] / len(recs) <= 0.28
    assert {"RefreshHit", "Error", "LimitExceeded", "CapacityExceeded"} <= set(share)
    incomplete = [r for r in recs if r["x-edge-result-type"] == "Error" and r["sc-status"] in ("200", "206")]
    assert incomplete and all(r["x-edge-response-result-type"] in ("Hit", "Miss") for r in incomplete)
    assert all(r["x-edge-result-type"] == "Error" for r in recs if r["sc-status"] == "000")
    statuses = Counter(r["sc-status"] for r in recs)
    assert statuses["200"] + statuses["206"] > 0.9 * len(recs) and {"304", "404", "000"} <= set(statuses)
    for r in recs:
        segment = ".ts" in r["cs-uri-stem"] or "_dash/" in r["cs-uri-stem"] and ".mpd" not in r["cs-uri-stem"]
        if segment and r["sc-status"] in ("200", "206") and r["x-edge-result-type"] != "Error":
            assert 30_000 <= int(r["sc-bytes"]) <= 5_000_000
        if "sc-range-start" not in r:  # a 26-field file
            continue
        if r["sc-status"] == "206":
            assert int(r["sc-range-start"]) <= int(r["sc-range-end"])
            assert int(r["sc-range-end"]) - int(r["sc-range-start"]) + 1 == int(r["sc-content-len"])
        else:
            assert r["sc-range-start"] == r["sc-range-end"] == "-"


def test_diurnal_curve(generated) -> None:
    _, _, parsed = generated
    hours = Counter(int(r["time"][:2]) for _, r in parsed.rows)
    assert hours[13] + hours[14] > 2 * (hours[19] + hours[20])
    assert min(hours, key=lambda h: hours[h]) in (18, 19, 20, 21)


def test_viewers_and_request_ids(generated) -> None:
    _, _, parsed = generated
    recs = [r for _, r in parsed.rows]
    assert 0.05 < sum(":" in r["c-ip"] for r in recs) / len(recs) < 0.3  # IPv6
    assert any("%2520" in r["cs(User-Agent)"] for r in recs)
    assert any("CrKey" in r["cs(User-Agent)"] for r in recs)
    assert all(" " not in r["cs(User-Agent)"] for r in recs)
    assert any(r["cs(Referer)"].startswith("https://") for r in recs)
    ids = [r["x-edge-request-id"] for r in recs]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"[A-Za-z0-9_-]{54}==", i) for i in ids)
    assert all(re.fullmatch(r"d[a-z0-9]{13}\.cloudfront\.net", r["cs(Host)"]) for r in recs)
    top = Counter(r["cs-uri-stem"] for r in recs).most_common()
    assert len(top) > 1000 and top[0][1] > 10 * top[500][1]


def test_no_rows_no_files(tmp_path: Path) -> None:
    result = generate_logs(DATE, 2, 0, 1, tmp_path)
    assert result.files == [] and result.lines_written == result.malformed_lines == 0
