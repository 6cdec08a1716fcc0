"""CloudWatch cross-check with moto's CloudWatch: fetch per hour, compare with the logs, alert."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import json
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import write_deltalake
from moto import mock_aws

from cdnlake import cli, crosscheck
from cdnlake.integrations import cloudwatch
from cdnlake.settings import ConfigError, Settings, load_settings
from reporting.email import EmailConfig, build_message
from reporting.outputs import summary_dict
from reporting.pdf import build_pdf
from reporting.sample import sample_report_data

D = dt.date(2024, 5, 1)
START = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
# Hourly requests/bytes of distribution E1ABC as CloudWatch sees them (hours 0-3); the logs miss
# most of hour 3 (a late delivery) and are 1% higher on bytes (headers count in sc-bytes).
CW_REQUESTS = [5000, 6000, 7000, 8000]
LOG_REQUESTS = [5000, 6000, 7000, 800]


@pytest.fixture
def cw() -> Any:
    with mock_aws():
        yield boto3.client("cloudwatch", region_name="us-east-1")


def put(client: Any, distro: str, metric: str, hour: int, value: float, minute: int = 0) -> None:
    dims = [{"Name": "DistributionId", "Value": distro}, {"Name": "Region", "Value": "Global"}]
    stamp = START + dt.timedelta(hours=hour, minutes=minute)
    client.put_metric_data(Namespace="AWS/CloudFront", MetricData=[
        {"MetricName": metric, "Dimensions": dims, "Timestamp": stamp, "Value": value, "Unit": "None"}])  # fmt: skip


def put_day(client: Any) -> None:
    for hour, requests in enumerate(CW_REQUESTS):
        # CloudFront reports per minute; two datapoints per hour check that the hour is summed.
        put(client, "E1ABC", "Requests", hour, requests / 2)
        put(client, "E1ABC", "Requests", hour, requests / 2, minute=30)
        put(client, "E1ABC", "BytesDownloaded", hour, requests * 1000)
    put(client, "E2XYZ", "Requests", 0, 10)  # a quiet distribution that matches the logs exactly
    put(client, "E3OTHER", "Requests", 0, 99)  # not asked for: must not be fetched


def logs_frame() -> pd.DataFrame:
    rows = [("e1abc", START.replace(tzinfo=None) + dt.timedelta(hours=h), n, n * 1010)
            for h, n in enumerate(LOG_REQUESTS)]  # fmt: skip
    rows.append(("e2xyz", START.replace(tzinfo=None), 10, 0))
    return pd.DataFrame(rows, columns=["distro", "ts", "request_count", "bytes_requested"])


def test_fetch_hourly_sums_each_hour_per_distribution(cw: Any) -> None:
    put_day(cw)
    frame = cloudwatch.fetch_hourly(cw, ["e1abc", "E2XYZ"], D)
    assert list(frame.columns) == ["distro", "ts", "requests", "bytes"]
    e1 = frame[frame["distro"] == "e1abc"]
    assert e1["requests"].tolist() == CW_REQUESTS and e1["bytes"].tolist() == [r * 1000 for r in CW_REQUESTS]
    assert e1["ts"].tolist() == [dt.datetime(2024, 5, 1, h) for h in range(4)]
    assert set(frame["distro"]) == {"e1abc", "e2xyz"}
    assert cloudwatch.fetch_hourly(cw, ["e1abc"], D + dt.timedelta(days=1)).empty  # other day: nothing


def test_compare_table_and_alerts() -> None:
    cw = pd.DataFrame([("e1abc", START.replace(tzinfo=None) + dt.timedelta(hours=h), n, n * 1000)
                       for h, n in enumerate(CW_REQUESTS)] + [("e2xyz", START.replace(tzinfo=None), 10, 0)],
                      columns=["distro", "ts", "requests", "bytes"])  # fmt: skip
    table, alerts = cloudwatch.compare(cw, logs_frame(), threshold_pct=5)
    assert table["distro"].tolist() == ["e1abc", "e2xyz", "total"]
    e1 = table.iloc[0]
    assert (e1["requests_logs"], e1["requests_cloudwatch"]) == (18800, 26000)
    assert e1["requests_diff_pct"] == pytest.approx(-27.69) and e1["hours_over"] == 1
    assert e1["bytes_diff_pct"] == pytest.approx((18800 * 1010 - 26000 * 1000) / 26000 / 10, abs=0.01)
    assert table.iloc[1]["requests_diff_pct"] == 0.0 and table.iloc[1]["hours_over"] == 0  # quiet: no hour alert
    assert table.iloc[-1]["requests_logs"] == 18810
    assert any("e1abc 2024-05-01 03:00 UTC: requests -90.00%" in a for a in alerts)
    assert any(a.startswith("e1abc: requests in the logs 18,800 vs CloudWatch 26,000 (-27.69%)") for a in alerts)
    assert not any(a.startswith("e2xyz") for a in alerts)
    # With a generous threshold there is nothing to say.
    assert cloudwatch.compare(cw, logs_frame(), threshold_pct=95)[1] == []


def test_missing_cloudwatch_data_is_an_alert_not_a_division_by_zero() -> None:
    empty = pd.DataFrame(columns=["distro", "ts", "requests", "bytes"])
    table, alerts = cloudwatch.compare(empty, logs_frame(), threshold_pct=5)
    assert pd.isna(table.iloc[0]["requests_diff_pct"])
    assert any("no CloudWatch data for E1ABC" in a for a in alerts)
    assert cloudwatch.diff_pct(0, 0) == 0.0 and cloudwatch.diff_pct(5, 0) is None


def write_stats_hourly(warehouse: Path) -> None:
    frame = logs_frame()
    stats = pa.table({
        "distro": frame["distro"].tolist(), "dt": [t.date().isoformat() for t in frame["ts"]],
        "hour": pa.array([t.hour for t in frame["ts"]], pa.int32()),
        "request_count": pa.array(frame["request_count"].tolist(), pa.int64()),
        "bytes_requested": pa.array(frame["bytes_requested"].tolist(), pa.int64()),
    })  # fmt: skip
    write_deltalake(str(warehouse / "stats_hourly"), stats, partition_by=["dt"])


def test_pipeline_crosscheck(cw: Any, tmp_path: Path) -> None:
    put_day(cw)
    write_stats_hourly(tmp_path)
    assert crosscheck.cloudwatch_crosscheck(Settings(warehouse=str(tmp_path)), D, None) is None  # not configured
    settings = Settings(warehouse=str(tmp_path), cloudwatch_enabled=True, cloudwatch_threshold_pct=5)
    result = crosscheck.cloudwatch_crosscheck(settings, D, None)  # distributions found in stats_hourly
    assert result is not None
    json.dumps(result)  # a task result and summary.json material: plain JSON
    assert [r["distro"] for r in result["table"]] == ["e1abc", "e2xyz", "total"]
    assert result["summary"].startswith("CloudWatch cross-check ") and "requests -27.68%" in result["summary"]
    assert result["alerts"] and result["window_utc"][0] == "2024-05-01T00:00:00"
    # A report day in Tokyo starts at 15:00 UTC the day before; hours 0-3 UTC of D are still inside.
    tokyo = crosscheck.cloudwatch_crosscheck(dataclasses.replace(settings, report_tz="Asia/Tokyo"), D, ["e1abc"])
    assert tokyo is not None and tokyo["window_utc"][0] == "2024-04-30T15:00:00"
    assert tokyo["table"][0]["requests_logs"] == 18800 and tokyo["table"][0]["requests_cloudwatch"] == 26000


def test_crosscheck_in_the_report_and_the_email(cw: Any, tmp_path: Path) -> None:
    put_day(cw)
    write_stats_hourly(tmp_path)
    settings = Settings(warehouse=str(tmp_path), cloudwatch_enabled=True)
    check = crosscheck.crosscheck_data(crosscheck.cloudwatch_crosscheck(settings, D, None))
    data = dataclasses.replace(sample_report_data(D), crosscheck=check)
    config = EmailConfig(sender="cdnlake@example.com", to=["ops@example.com"])
    message = email.message_from_bytes(bytes(build_message(data, b"csv", b"%PDF", config)))
    text = next(p for p in message.walk() if p.get_content_type() == "text/plain").get_payload(decode=True)
    assert "CloudWatch cross-check 3 alert(s): requests -27.68%" in text.decode("utf-8")
    html = next(p for p in message.walk() if p.get_content_type() == "text/html").get_payload(decode=True)
    assert "CloudWatch cross-check" in html.decode("utf-8")
    assert build_pdf(data).startswith(b"%PDF")
    summary = json.loads(json.dumps(summary_dict(data)))
    assert summary["crosscheck"]["table"][-1]["distro"] == "total" and "crosscheck" not in summary_dict(
        sample_report_data(D))  # fmt: skip


def test_threshold_setting_is_validated() -> None:
    assert load_settings(env={"CDNLAKE_CLOUDWATCH_THRESHOLD_PCT": "2.5"}).cloudwatch_threshold_pct == 2.5
    for bad in ("0", "-1", "abc", "101"):
        with pytest.raises(ConfigError, match="CDNLAKE_CLOUDWATCH_THRESHOLD_PCT"):
            load_settings(env={"CDNLAKE_CLOUDWATCH_THRESHOLD_PCT": bad})


def test_crosscheck_command(cw: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    put_day(cw)
    write_stats_hourly(tmp_path)
    assert cli.main(["crosscheck", "--date", "2024-05-01", "--warehouse", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "requests_cloudwatch" in out and "26000" in out and "e1abc 2024-05-01 03:00 UTC" in out
