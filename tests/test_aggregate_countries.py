"""Requests and bytes by viewer country (standard logging v2's c-country) in stats_viewers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spark_jobs import aggregate, top_lists
from spark_jobs.schema import CDN_LOGS_SCHEMA
from tests.test_aggregate import log_row

COUNTRY = CDN_LOGS_SCHEMA.fieldNames().index("c_country")


def _row(country: str | None, size: int) -> tuple[Any, ...]:
    values = list(log_row("2024-05-01 10:00:00", size=size))
    values[COUNTRY] = country
    return tuple(values)


def test_top_15_countries_with_bytes_legacy_rows_unlisted(spark: Any) -> None:
    # Country c00 has 17 requests of 10 bytes, c01 16 ... c16 1: 17 countries, the last two drop out.
    rows = [_row(f"c{i:02}", 10) for i in range(17) for _ in range(17 - i)]
    rows += [_row(None, 1000)] * 30  # legacy rows: no country
    day = spark.createDataFrame(rows, CDN_LOGS_SCHEMA)
    viewers = top_lists.top_list_rows(day)["viewers"]
    countries = viewers[viewers["dimension"] == "country"].sort_values("rank")
    assert [(r.rank, r.value, r.requests, r.bytes) for r in countries.itertuples()] == [
        (i + 1, f"c{i:02}", 17 - i, 10 * (17 - i)) for i in range(15)
    ]


def test_older_stats_viewers_table_gains_the_bytes_column(spark: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "stats_viewers")
    old = spark.createDataFrame([("os", 1, "iOS", 5, "2024-04-30", "UTC")],
                                "dimension string, rank int, value string, requests bigint, report_date string, "
                                "report_tz string")  # fmt: skip
    old.write.format("delta").partitionBy("report_date").save(path)
    new = spark.createDataFrame([("country", 1, "JP", 7, 70, "2024-05-01", "UTC")],
                                "dimension string, rank int, value string, requests bigint, bytes bigint, "
                                "report_date string, report_tz string")  # fmt: skip
    aggregate.write_replacing(new, path, "report_date = '2024-05-01'", "report_date")
    got = {r["value"]: r["bytes"] for r in spark.read.format("delta").load(path).collect()}
    assert got == {"iOS": None, "JP": 70}
