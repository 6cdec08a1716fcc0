"""Day-over-day insights with hand-computed totals (SPEC section 5 example values)."""

import datetime as dt

from reporting.insights import daily_totals, day_header, format_trend, insights_table, insights_tables
from reporting.sample import hourly_from_totals

D = dt.date(2024, 6, 9)
GIB = 2**30

# Hand-written day totals; the expected strings below were computed by hand:
#   requests 258.92 M -> 304.25 M: 45.33 / 258.92 = +17.51 %
#   errors 90.26 K -> 113.34 K: 23.08 / 90.26 = +25.57 %
#   4xx 1807 -> 1862: 55 / 1807 = +3.04 %
#   hits 100 M -> 96.96 M: -3.04 %
#   bytes 209360.64 GB -> 251622.38 GB: 42261.74 / 209360.64 = +20.19 %
#   requests D-2 250 M -> D-1 258.92 M: +3.57 %
TOTALS = {
    "2024-06-07": {
        "request_count": 250_000_000,
        "hit_count": 90_000_000,
        "error_count": 90_000,
        "http4xx_count": 1800,
    },
    "2024-06-08": {
        "request_count": 258_920_000,
        "hit_count": 100_000_000,
        "miss_count": 7_000_000,
        "error_count": 90_260,
        "incomplete_count": 1_500,
        "http2xx_count": 250_000_000,
        "http3xx_count": 4_000,
        "http4xx_count": 1807,
        "http5xx_count": 0,
        "bytes_requested": round(209360.64 * GIB),
        "bytes_missed": 0,
    },
    "2024-06-09": {
        "request_count": 304_250_000,
        "hit_count": 96_960_000,
        "miss_count": 7_000_000,
        "error_count": 113_340,
        "incomplete_count": 1_500,
        "http2xx_count": 300_000_000,
        "http3xx_count": 5_000,
        "http4xx_count": 1862,
        "http5xx_count": 5,
        "bytes_requested": round(251622.38 * GIB),
        "bytes_missed": 3 * GIB,
    },
}


def _rows(table):
    return {row.measure: (row.previous, row.current, row.trend) for row in table.rows}


def test_daily_totals_sum_every_hour():
    hourly = hourly_from_totals(D, {"2024-06-09": {"request_count": 7}}, hour=3)
    hourly.loc[hourly["date"] == "2024-06-09", "hit_count"] = 2  # 24 hours x 2
    totals = daily_totals(hourly)
    assert list(totals.index) == ["2024-06-07", "2024-06-08", "2024-06-09"]
    assert totals.loc["2024-06-09", "request_count"] == 7
    assert totals.loc["2024-06-09", "hit_count"] == 48
    assert totals.loc["2024-06-08", "hit_count"] == 0


def test_day_header():
    assert day_header(dt.date(2024, 6, 8)) == "JUN-08"
    assert day_header(dt.date(2024, 12, 31)) == "DEC-31"


def test_latest_day_table_matches_hand_computation():
    table = insights_table(hourly_from_totals(D, TOTALS), dt.date(2024, 6, 8), D)
    assert table.headers == ["MEASURES", "JUN-08", "JUN-09", "TREND"]
    rows = _rows(table)
    assert [row.measure for row in table.rows] == [
        "Request Count (M)",
        "Hit Count (M)",
        "Miss Count (M)",
        "Error Count (K)",
        "Incomplete Count (K)",
        "HTTP 2XX Count (M)",
        "HTTP 3XX Count (K)",
        "HTTP 4XX Count",
        "HTTP 5XX Count",
        "Bytes Requested (GB)",
        "Bytes Missed (GB)",
    ]
    assert rows["Request Count (M)"] == ("258.92", "304.25", "+17.51%")
    assert rows["Hit Count (M)"] == ("100.00", "96.96", "-3.04%")
    assert rows["Miss Count (M)"] == ("7.00", "7.00", "+0.00%")
    assert rows["Error Count (K)"] == ("90.26", "113.34", "+25.57%")
    assert rows["Incomplete Count (K)"] == ("1.50", "1.50", "+0.00%")
    assert rows["HTTP 2XX Count (M)"] == ("250.00", "300.00", "+20.00%")
    assert rows["HTTP 3XX Count (K)"] == ("4.00", "5.00", "+25.00%")
    assert rows["HTTP 4XX Count"] == ("1807.00", "1862.00", "+3.04%")
    assert rows["HTTP 5XX Count"] == ("0.00", "5.00", "n/a")
    assert rows["Bytes Requested (GB)"] == ("209360.64", "251622.38", "+20.19%")
    assert rows["Bytes Missed (GB)"] == ("0.00", "3.00", "n/a")
    directions = {row.measure: row.direction for row in table.rows}
    assert directions["Request Count (M)"] == "up"
    assert directions["Hit Count (M)"] == "down"
    assert directions["Miss Count (M)"] == "flat"
    assert directions["HTTP 5XX Count"] == "n/a"


def test_previous_day_table_and_zero_to_zero():
    latest, previous = insights_tables(hourly_from_totals(D, TOTALS), D)
    assert latest.headers[1:3] == ["JUN-08", "JUN-09"]
    assert previous.headers[1:3] == ["JUN-07", "JUN-08"]
    rows = _rows(previous)
    assert rows["Request Count (M)"] == ("250.00", "258.92", "+3.57%")
    assert rows["Hit Count (M)"] == ("90.00", "100.00", "+11.11%")
    assert rows["HTTP 4XX Count"] == ("1800.00", "1807.00", "+0.39%")
    # 0 -> 0 and 0 -> something are both n/a, never a ZeroDivisionError.
    assert rows["HTTP 5XX Count"] == ("0.00", "0.00", "n/a")
    assert rows["Miss Count (M)"] == ("0.00", "7.00", "n/a")


def test_format_trend_edge_cases():
    assert format_trend(0, 0) == ("n/a", "n/a")
    assert format_trend(100, 100) == ("+0.00%", "flat")
    assert format_trend(1_000_000, 999_999) == ("+0.00%", "flat")  # not "-0.00%"
    assert format_trend(200, 100) == ("-50.00%", "down")
    assert format_trend(1, 3) == ("+200.00%", "up")


def test_records_for_summary():
    latest, _ = insights_tables(hourly_from_totals(D, TOTALS), D)
    first = latest.as_records()[0]
    assert first == {
        "measure": "Request Count (M)",
        "previous": "258.92",
        "current": "304.25",
        "trend": "+17.51%",
        "direction": "up",
        "previous_date": "2024-06-08",
        "current_date": "2024-06-09",
    }
