"""The check stage's format alarm: a rule about the date's sampled lines, on local and S3 sources."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdnlake import pipeline
from cdnlake.services import build_services
from cdnlake.settings import Settings, load_settings
from tests.moto_endpoint import FAKE_KEYS, client, moto_endpoint
from tests.samples import write_gz

D = dt.date(2024, 6, 9)
HEADER = ["#Version: 1.0", "#Fields: " + " ".join(f"f{i}" for i in range(33))]
GOOD, SHORT = "\t".join(["x"] * 33), "\t".join(["x"] * 19)


def day(folder: Path, files: dict[str, list[str]]) -> Path:
    for i, (hour, lines) in enumerate(files.items()):
        write_gz(folder / f"E1CHECK.{D}-{hour}.f{i}.gz", HEADER + lines)
    return folder


TOLERATED = {  # 33 lines sampled, 4 malformed (12%): rejects at ingest, not a format change
    "00": [GOOD] * 10, "01": [GOOD] * 8 + [SHORT] * 2, "02": [SHORT],  # a one-line file, its line malformed
    "03": [GOOD] * 11 + [SHORT],
}  # fmt: skip
CHANGED = {"00": [SHORT] * 10, "01": [SHORT] * 9 + [GOOD], "02": [GOOD] * 5}  # 19 of 25 do not fit
TOO_FEW = {"00": [SHORT] * 4, "01": [SHORT] * 3}  # all bad, but 7 lines are no evidence of a format


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    with moto_endpoint() as url, pytest.MonkeyPatch.context() as mp:
        for key, value in FAKE_KEYS.items():
            mp.setenv(key, value)
        client("s3", url).create_bucket(Bucket="landing")
        yield url


def on_s3(url: str, local: Path, prefix: str) -> str:
    for path in sorted(local.glob("*.gz")):
        client("s3", url).upload_file(str(path), "landing", f"{prefix}/{path.name}")
    return f"s3://landing/{prefix}"


def settings_for(source: str, tmp_path: Path, endpoint: str = "") -> Settings:
    return load_settings(env={}, source=source, warehouse=str(tmp_path / "wh"), s3_endpoint=endpoint)


def format_anomalies(settings: Settings) -> list[str]:
    return [a for a in pipeline.check_raw_files(build_services(settings), D, None).anomalies if "format change" in a]


def settings_where(where: str, files: dict[str, list[str]], tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings whose source holds `files` in a local folder, or the same files on moto's S3."""
    source = str(day(tmp_path / "landing", files))
    if where == "local":
        return settings_for(source, tmp_path)
    endpoint = request.getfixturevalue("s3")
    return settings_for(on_s3(endpoint, Path(source), tmp_path.name), tmp_path, endpoint)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_few_malformed_lines_are_no_alarm(where: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    assert format_anomalies(settings_where(where, TOLERATED, tmp_path, request)) == []


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_format_change_of_the_day_is_an_alarm(where: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    (alarm,) = format_anomalies(settings_where(where, CHANGED, tmp_path, request))
    assert alarm.startswith(f"format change? 19 of 25 sampled lines of {D} (3 files) do not fit their #Fields header")
    assert "19 fields, header declares 33" in alarm


def test_too_few_lines_are_no_evidence(tmp_path: Path) -> None:
    assert format_anomalies(settings_for(str(day(tmp_path / "landing", TOO_FEW)), tmp_path)) == []


def test_an_impossible_header_counts_all_its_lines(tmp_path: Path) -> None:
    write_gz(tmp_path / "landing" / f"E1CHECK.{D}-05.wide.gz", ["#Fields: " + " ".join(["f"] * 40)] + [GOOD] * 30)
    (alarm,) = format_anomalies(settings_for(str(tmp_path / "landing"), tmp_path))
    assert "30 of 30 sampled lines" in alarm and "header declares 40 fields" in alarm


def test_bom_and_crlf_do_not_make_misfits(tmp_path: Path) -> None:
    path = tmp_path / "landing" / f"E1CHECK.{D}-06.crlf.gz"
    import gzip

    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress(("\ufeff" + "\r\n".join(HEADER + [GOOD] * 30) + "\r\n").encode()))
    assert format_anomalies(settings_for(str(tmp_path / "landing"), tmp_path)) == []
