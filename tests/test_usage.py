"""The morning message's month usage over a generated month start, against figures worked out by hand."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from deltalake import write_deltalake

from cdnlake.operations import build_operations
from cdnlake.settings import load_settings
from reporting.usage import month_usage, morning_line, usage_unit

PB, TB, GB = 2**50, 2**40, 2**30


def test_pb_month_start_by_hand() -> None:
    # June 1..3 carry 0.25, 0.5 and 0.75 PB; May 31 is another month; June 4 is after D.
    days = {"2024-05-31": 9 * PB, "2024-06-01": PB // 4, "2024-06-02": PB // 2, "2024-06-03": 3 * PB // 4,
            "2024-06-04": 9 * PB}  # fmt: skip
    usage = month_usage(dt.date(2024, 6, 3), days)
    assert (usage.yesterday_bytes, usage.to_date_bytes) == (3 * PB // 4, 3 * PB // 2)
    assert usage.estimate_bytes == 15 * PB  # 1.5 PB / 3 days x 30 days
    # 0.75 PB = 786,432 GB (2^30) over 86,400 s: 786432 x 8 / 86400 = 72.818 Gbps
    assert usage.average_gbps == pytest.approx(72.818, abs=1e-3)
    assert usage.text() == "June bandwidth usage — Yesterday 0.75 PB, To-Date 1.50 PB, Estimate 15.00 PB"
    assert usage.as_dict()["estimate_pb"] == 15.0 and usage.as_dict()["unit"] == "PB"


def test_tb_when_the_month_is_smaller_and_the_first_day_alone() -> None:
    usage = month_usage(dt.date(2024, 2, 1), {"2024-02-01": 2 * TB})
    assert usage.text() == "February bandwidth usage — Yesterday 2.00 TB, To-Date 2.00 TB, Estimate 58.00 TB"
    assert morning_line("1.00 GB (0.13Gbps) at 13:37", usage).startswith(
        "peak 1.00 GB (0.13Gbps) at 13:37, average 0.19 Gbps; February")  # 2048 GB x 8 / 86400 = 0.1896


def test_unit_ladder() -> None:
    assert usage_unit(PB)[0] == "PB" and usage_unit(PB - 1)[0] == "TB" and usage_unit(TB - 1)[0] == "GB"
    assert usage_unit(0)[0] == "GB"


def stats_hourly(rows: list[tuple[str, str, int, int, int, int, int]]) -> pd.DataFrame:
    columns = ["distro", "dt", "hour", "request_count", "hit_count", "http5xx_count", "bytes_requested"]
    return pd.DataFrame(rows, columns=columns)


def test_operations_from_the_statistics_table_of_a_generated_month_start(tmp_path: Path) -> None:
    """stats_hourly written with delta-rs: June 1-3 for two distributions, a 5xx spike on D at 07h."""
    rows = []
    for day, tb in (("2024-05-31", 50), ("2024-06-01", 1), ("2024-06-02", 2), ("2024-06-03", 3)):
        for distro in ("e1", "e2"):
            for hour in range(24):
                spike = 300 if (day, distro, hour) == ("2024-06-03", "e2", 7) else 0
                rows.append((distro, day, hour, 1000, 900, spike, tb * TB // 2 if hour == 0 else 0))
    write_deltalake(str(tmp_path / "stats_hourly"), stats_hourly(rows), partition_by=["dt"])
    settings = load_settings(env={}, warehouse=str(tmp_path), alert_committed_gbps=0.0)
    ops = build_operations(settings, dt.date(2024, 6, 3), None, {"time": "07:00", "gbps": 1.0}, None)
    assert [(a.kind, a.distribution, a.hour, a.value) for a in ops.alerts] == [("5xx_share", "e2", 7, 30.0)]
    assert ops.usage is not None
    # 1 + 2 + 3 = 6 TB to date over 3 of 30 days: estimate 60 TB; D alone 3 TB
    assert ops.usage.text() == "June bandwidth usage — Yesterday 3.00 TB, To-Date 6.00 TB, Estimate 60.00 TB"
    only_e1 = build_operations(settings, dt.date(2024, 6, 3), ["e1"], {"time": "07:00", "gbps": 1.0}, None)
    assert only_e1.alerts == [] and only_e1.usage is not None and only_e1.usage.to_date_bytes == 3 * TB


def test_operations_in_the_report_time_zone(tmp_path: Path) -> None:
    """Tokyo is UTC+9: the UTC hours 15..23 of June 2 are June 3 locally."""
    rows = [("e1", "2024-06-02", h, 10, 9, 0, GB) for h in range(24)]
    write_deltalake(str(tmp_path / "stats_hourly"), stats_hourly(rows), partition_by=["dt"])
    settings = load_settings(env={}, warehouse=str(tmp_path), report_tz="Asia/Tokyo")
    ops = build_operations(settings, dt.date(2024, 6, 3), None, {"time": "00:00", "gbps": 0.0}, None)
    assert ops.usage is not None and ops.usage.yesterday_bytes == 9 * GB and ops.usage.to_date_bytes == 24 * GB
