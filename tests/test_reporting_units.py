"""Units and peak formatting (SPEC section 3: GB = 2**30 bytes, Gbps = GB x 8 / 60)."""

import pandas as pd
import pytest

from reporting.units import (
    GB,
    count_scale,
    find_peak,
    fmt_gb,
    fmt_human_count,
    fmt_int,
    fmt_percent,
    format_peak,
    format_peak_email,
    minute_label,
    peak_strings,
)


def test_gb_is_binary():
    assert GB == 1_073_741_824


def test_format_peak_matches_the_original_report():
    # 298.96 GB over 60 s: 298.96 * 8 / 60 = 39.861 Gbps.
    assert format_peak(int(298.96 * 2**30), 13 * 60 + 37) == "298.96 GB (39.86Gbps) at 13:37"


def test_format_peak_email_has_no_space_before_gb():
    assert format_peak_email(int(298.96 * 2**30), 13 * 60 + 37) == "298.96GB (39.86Gbps) at 13:37"


def test_format_peak_midnight_and_zero():
    assert format_peak(0, 0) == "0.00 GB (0.00Gbps) at 00:00"


def test_minute_label_bounds():
    assert minute_label(0) == "00:00"
    assert minute_label(1439) == "23:59"
    with pytest.raises(ValueError):
        minute_label(1440)


def test_find_peak_values():
    # 8 GB in minute 61: 8 * 8 / 60 = 1.0666 Gbps.
    frame = pd.DataFrame({"minute": [60, 61, 62], "bytes": [5, 8 * 2**30, 7]})
    assert find_peak(frame) == {"time": "01:01", "bytes": 8 * 2**30, "gb": 8.0, "gbps": 1.07}


def test_find_peak_earliest_minute_wins_a_tie_even_if_rows_are_unordered():
    frame = pd.DataFrame({"minute": [900, 50, 600, 51], "bytes": [10, 10, 3, 10]})
    assert find_peak(frame)["time"] == "00:50"


def test_find_peak_all_zero_day():
    frame = pd.DataFrame({"minute": range(1440), "bytes": [0] * 1440})
    assert find_peak(frame) == {"time": "00:00", "bytes": 0, "gb": 0.0, "gbps": 0.0}


def test_peak_strings_round_trip_from_summary_dict():
    peak = {"time": "13:37", "bytes": int(298.96 * 2**30), "gb": 298.96, "gbps": 39.86}
    assert peak_strings(peak) == ("298.96 GB (39.86Gbps) at 13:37", "298.96GB (39.86Gbps) at 13:37")


def test_number_formats():
    assert fmt_int(1234567) == "1,234,567"
    assert fmt_int(12.0) == "12"
    assert fmt_human_count(258_920_000) == "258.92 M"
    assert fmt_human_count(90_260) == "90.26 K"
    assert fmt_human_count(1807) == "1,807"
    assert fmt_gb(int(1234.5 * 2**30)) == "1,234.50"
    assert fmt_gb(int(209360.64 * 2**30) + 1, separators=False) == "209360.64"
    assert fmt_percent(0.975) == "97.5%"
    assert fmt_percent(None) == "n/a"
    assert fmt_percent(float("nan")) == "n/a"


def test_count_scale():
    assert count_scale(12_500_000) == (1e6, "M")
    assert count_scale(25_000) == (1e3, "K")
    assert count_scale(9_999) == (1.0, "")
