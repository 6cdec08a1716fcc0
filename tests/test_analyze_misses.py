"""Cache-miss association rules find a planted cause, with figures computed by hand."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from spark_jobs import analyze_misses
from spark_jobs.schema import CDN_LOGS_SCHEMA

EDGES, HOURS, PER_CELL = ("NRT57-C1", "KIX50-C1", "TPE51-C1", "HKG60-C2"), (11, 12, 13), 300


def planted_rows() -> list[dict[str, Any]]:
    """12 (edge, hour) cells of 300 requests: NRT57-C1 at 12h misses 80%, every other cell 25%."""
    rows = []
    for edge in EDGES:
        for hour in HOURS:
            misses = 240 if (edge, hour) == ("NRT57-C1", 12) else 75
            for i in range(PER_CELL):
                rows.append({
                    "ts": dt.datetime(2024, 5, 1, hour, 0, i % 60), "hour": hour, "x_edge_location": edge,
                    "x_edge_response_result_type": "Miss" if i < misses else "Hit", "sc_bytes": 1000,
                    "cs_uri_stem": f"/v/{edge}/{i % 7}.ts", "status_class": 2, "device_type": "desktop",
                    "os": "Windows", "browser": "Chrome", "sc_content_type": "video/MP2T",
                    "distro": "e1", "dt": "2024-05-01",
                })  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def warehouse(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("misses")
    names = CDN_LOGS_SCHEMA.fieldNames()
    data = [tuple(r.get(n) for n in names) for r in planted_rows()]
    df = spark.createDataFrame(data, CDN_LOGS_SCHEMA)
    df.write.format("delta").partitionBy("distro", "dt").save(str(root / "cdn_logs"))
    return root


def test_planted_cause_is_the_top_rule(spark: Any, warehouse: Path) -> None:
    argv = ["--start", "2024-05-01", "--end", "2024-05-01", "--warehouse", str(warehouse),
            "--sample-fraction", "1.0", "--min-support", "0.01", "--min-confidence", "0.3"]  # fmt: skip
    result = analyze_misses.run(spark, analyze_misses.build_parser().parse_args(argv))
    top = result["top_rules"][0]
    total, misses = 12 * PER_CELL, 240 + 11 * 75
    assert top["antecedent"] == "edge_location=NRT57-C1, hour=12"
    assert top["consequent"] == "result=Miss"
    assert top["count"] == 240
    assert top["support"] == pytest.approx(240 / total)
    assert top["confidence"] == pytest.approx(240 / 300)
    assert top["lift"] == pytest.approx((240 / 300) / (misses / total))
    others = spark.read.format("delta").load(str(warehouse / "miss_edge_ratio")).collect()
    ratio = {r.edge_location: r.miss_ratio for r in others}
    assert ratio["NRT57-C1"] == pytest.approx((240 + 2 * 75) / 900)
    assert ratio["KIX50-C1"] == pytest.approx(0.25)


def test_bad_range_and_fraction_are_refused() -> None:
    with pytest.raises(SystemExit):
        analyze_misses.build_parser().parse_args(
            ["--start", "2024-05-01", "--end", "2024-05-02", "--warehouse", "/w", "--sample-fraction", "1.5"]
        )
