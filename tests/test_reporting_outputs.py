"""cdn_statistics.csv, summary.json and write_outputs."""

import datetime as dt
import json

import pandas as pd
import pytest

from reporting.model import ReportData
from reporting.outputs import statistics_csv, summary_dict, write_outputs
from reporting.sample import hourly_from_totals, report_data_from_totals, sample_report_data

D = dt.date(2024, 6, 9)
HEADER = (
    "DATE,TIME,REQUEST_COUNT,HIT_COUNT,MISS_COUNT,ERROR_COUNT,INCOMPLETE_COUNT,HTTP2XX_COUNT,"
    "HTTP3XX_COUNT,HTTP4XX_COUNT,HTTP5XX_COUNT,BYTES_REQUESTED,BYTES_MISSED"
)
TOTALS = {
    "2024-06-08": {"request_count": 10, "bytes_requested": 2**40},
    "2024-06-09": {
        "request_count": 304_250_000,
        "hit_count": 1,
        "miss_count": 2,
        "refresh_hit_count": 99,
        "error_count": 3,
        "incomplete_count": 4,
        "http2xx_count": 5,
        "http3xx_count": 6,
        "http4xx_count": 7,
        "http5xx_count": 8,
        "bytes_requested": 9_000_000_000_000,
        "bytes_missed": 10,
    },
}


def test_csv_header_rows_and_values():
    text = statistics_csv(hourly_from_totals(D, TOTALS, hour=13))
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert lines[0] == HEADER
    assert len(lines) == 73
    assert lines[1] == "2024-06-07,0,0,0,0,0,0,0,0,0,0,0,0"
    assert lines[24 + 13 + 1] == "2024-06-08,13,10,0,0,0,0,0,0,0,0,1099511627776,0"
    # refresh_hit_count is not a CSV column.
    assert lines[48 + 13 + 1] == "2024-06-09,13,304250000,1,2,3,4,5,6,7,8,9000000000000,10"
    assert lines[-1] == "2024-06-09,23,0,0,0,0,0,0,0,0,0,0,0"


def test_csv_orders_by_date_and_hour_and_never_writes_floats():
    hourly = hourly_from_totals(D, TOTALS, hour=13).sample(frac=1.0, random_state=3)
    hourly["request_count"] = hourly["request_count"].astype(float)  # e.g. after an outer join
    lines = statistics_csv(hourly).splitlines()[1:]
    keys = [(line.split(",")[0], int(line.split(",")[1])) for line in lines]
    assert keys == [(d, h) for d in ("2024-06-07", "2024-06-08", "2024-06-09") for h in range(24)]
    assert not any(".0" in line for line in lines)
    assert "2024-06-09,13,304250000," in "\n".join(lines)


def test_summary_dict():
    data = report_data_from_totals(D, TOTALS, minute_bytes={817: int(298.96 * 2**30), 900: 5})
    summary = summary_dict(data)
    assert summary["date"] == "2024-06-09"
    assert summary["report_tz"] == "UTC"
    assert summary["distributions"] == data.distributions
    assert sorted(summary["days"]) == ["2024-06-07", "2024-06-08", "2024-06-09"]
    assert summary["days"]["2024-06-09"]["refresh_hit_count"] == 99
    assert summary["days"]["2024-06-08"]["bytes_requested"] == 2**40
    assert summary["days"]["2024-06-07"]["request_count"] == 0
    # 817 = 13:37
    assert summary["peak"] == {"time": "13:37", "bytes": int(298.96 * 2**30), "gb": 298.96, "gbps": 39.86}
    per_distro = summary["distributions_totals"]
    assert set(per_distro) == set(data.distributions)
    assert sum(d["request_count"] for d in per_distro.values()) == 304_250_000
    assert summary["quality"] == data.quality
    assert summary["insights"][0]["measure"] == "Request Count (M)"
    assert summary["insights"][0]["trend"] == "+3042499900.00%"  # 10 -> 304,250,000
    assert summary["insights_previous_day"][0]["trend"] == "n/a"  # 0 -> 10
    json.dumps(summary)  # JSON-serialisable as is


def test_write_outputs(tmp_path):
    data = sample_report_data(D)
    paths = write_outputs(data, tmp_path / "2024-06-09")
    assert {k: p.name for k, p in paths.items()} == {
        "csv": "cdn_statistics.csv",
        "summary": "summary.json",
        "pdf": "cdn_report.pdf",
    }
    assert paths["pdf"].read_bytes().startswith(b"%PDF")
    assert paths["csv"].read_text(encoding="utf-8").startswith(HEADER + "\n")
    raw = paths["summary"].read_text(encoding="utf-8")
    assert raw.startswith('{\n  "date": "2024-06-09"')
    assert json.loads(raw)["peak"]["time"] == "13:37"
    assert not [p.name for p in paths["csv"].parent.iterdir() if p.name.endswith(".tmp")]
    assert {p.stat().st_mode & 0o777 for p in paths.values()} == {0o644}  # not mkstemp's 0600


def test_report_data_rejects_wrong_shapes():
    data = sample_report_data(D)
    with pytest.raises(ValueError, match="72 rows"):
        ReportData(
            date=D,
            distributions=["x"],
            generated_at=data.generated_at,
            hourly=data.hourly.head(71),
            minute=data.minute,
            distro_daily=data.distro_daily,
        )
    with pytest.raises(ValueError, match="window"):
        ReportData(
            date=D + dt.timedelta(days=1),
            distributions=["x"],
            generated_at=data.generated_at,
            hourly=data.hourly,
            minute=data.minute,
            distro_daily=data.distro_daily,
        )
    with pytest.raises(ValueError, match="missing columns"):
        ReportData(
            date=D,
            distributions=["x"],
            generated_at=data.generated_at,
            hourly=data.hourly.drop(columns=["bytes_missed"]),
            minute=data.minute,
            distro_daily=data.distro_daily,
        )
    with pytest.raises(ValueError, match="1440"):
        ReportData(
            date=D,
            distributions=["x"],
            generated_at=data.generated_at,
            hourly=data.hourly,
            minute=pd.DataFrame({"minute": [0], "bytes": [1]}),
            distro_daily=data.distro_daily,
        )


def test_sample_is_deterministic_and_consistent():
    one, two = sample_report_data(D), sample_report_data(D)
    pd.testing.assert_frame_equal(one.hourly, two.hourly)
    day = one.hourly[one.hourly["date"] == "2024-06-09"]
    assert int(day["bytes_requested"].sum()) == int(one.minute["bytes"].sum())
    assert int(one.distro_daily["request_count"].sum()) == int(day["request_count"].sum())
    q = one.quality
    assert q["lines_read"] == q["loaded"] + q["rejected"]


def test_stage_seconds_are_added_to_an_existing_summary() -> None:
    from reporting.outputs import with_stage_seconds

    written = '{\n  "date": "2024-06-09",\n  "peak_text": "ピーク"\n}\n'.encode()
    updated = with_stage_seconds(written, {"check": 0.514, "ingest": 12.0, "email": 1}, 20.456)
    figures = json.loads(updated)
    assert figures == {
        "date": "2024-06-09",
        "peak_text": "ピーク",
        "stage_seconds": {"check": 0.51, "ingest": 12.0, "email": 1.0},
        "run_seconds": 20.46,
    }
    assert list(figures["stage_seconds"]) == ["check", "ingest", "email"]  # stage order kept
    assert "ピーク".encode() in updated and updated.endswith(b"}\n")  # readable, as the report wrote it
