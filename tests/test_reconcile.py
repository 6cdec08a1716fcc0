"""Tests of spark_jobs.reconcile: consistent data passes, tampered statistics or accounting fail loudly."""

from __future__ import annotations

import datetime as dt
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest

from cdnlake import pipeline
from cdnlake.reconciliation import reconcile_written
from cdnlake.settings import Settings
from spark_jobs import aggregate, reconcile
from spark_jobs.params import AggregateParams
from spark_jobs.reconcile_checks import ReconciliationError
from spark_jobs.schema import CDN_LOGS_SCHEMA, INGEST_FILES_SCHEMA
from spark_jobs.storage import table_path
from tests.fake_services import FakeRunner

D = dt.date(2024, 5, 1)
NOW = dt.datetime(2024, 5, 2, 1, 0)


def log_row(when: str, distro: str, source: str, response: str = "Hit", status: int = 200,
            size: int | None = 100, edge_result: str | None = None) -> tuple[Any, ...]:  # fmt: skip
    ts = dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC)
    values = dict.fromkeys(CDN_LOGS_SCHEMA.fieldNames())
    values |= {
        "ts": ts, "hour": ts.hour, "sc_bytes": size, "sc_status": status,
        "x_edge_result_type": edge_result or response, "x_edge_response_result_type": response,
        "status_class": status // 100 if 100 <= status < 600 else None, "source_file": source,
        "line_no": 1, "distro": distro, "dt": ts.date().isoformat(),
    }  # fmt: skip
    return tuple(values.values())


def file_row(source: str, distro: str, day: str, lines: int, loaded: int, rejected: int) -> tuple[Any, ...]:
    return (source, source.rsplit("/", 1)[-1], 1000, NOW, lines, loaded, rejected, False, None, "run1",
            NOW, distro, day)  # fmt: skip


A, B, C = "landing/E1.2024-05-01-10.a.gz", "landing/E1.2024-05-01-13.b.gz", "landing/E2.2024-05-01-13.c.gz"
LOGS = [
    log_row("2024-05-01 10:00:00", "e1", A, size=400),
    log_row("2024-05-01 10:00:30", "e1", A, response="Miss", edge_result="Error", status=206, size=500),
    log_row("2024-05-01 10:05:00", "e1", A, response="Error", status=0, size=None),
    log_row("2024-05-01 13:00:00", "e1", B, response="LimitExceeded", status=503, size=50),
    log_row("2024-05-01 13:37:00", "e2", C, response="Miss", size=600),
    log_row("2024-05-01 13:38:00", "e2", C, response="RefreshHit", status=304, size=0),
    log_row("2024-04-30 09:00:00", "e1", "landing/E1.2024-04-30-09.d.gz"),
]
FILES = [
    file_row(A, "e1", "2024-05-01", 4, 3, 1),  # one rejected line
    file_row(B, "e1", "2024-05-01", 1, 1, 0),
    file_row(C, "e2", "2024-05-01", 2, 2, 0),
    # D-1 is inconsistent on purpose: checking D must not look at it.
    file_row("landing/E1.2024-04-30-09.d.gz", "e1", "2024-04-30", 5, 5, 0),
]


@pytest.fixture(scope="module")
def consistent(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A warehouse with cdn_logs, ingest_files and the statistics built from them."""
    warehouse = str(tmp_path_factory.mktemp("reconcile") / "warehouse")
    for table, rows, schema in (("cdn_logs", LOGS, CDN_LOGS_SCHEMA), ("ingest_files", FILES, INGEST_FILES_SCHEMA)):
        df = spark.createDataFrame(rows, schema)
        df.write.format("delta").partitionBy("distro", "dt").save(table_path(warehouse, table))
    args = aggregate.build_parser().parse_args(["--date", D.isoformat(), "--warehouse", warehouse])
    logs = spark.read.format("delta").load(table_path(warehouse, "cdn_logs"))
    aggregate.write_time_series(logs, args)  # the top lists play no part in reconciliation
    return warehouse


@pytest.fixture
def copy(consistent: str, tmp_path: Path) -> str:
    """A private copy of the consistent warehouse to tamper with (Delta tables are plain folders)."""
    return str(shutil.copytree(consistent, tmp_path / "warehouse"))


def test_consistent_date_passes_with_totals(spark: Any, consistent: str) -> None:
    result = reconcile.reconcile(spark, consistent, D)
    measures = result["measures"]
    assert (measures["request_count"], measures["hit_count"], measures["miss_count"]) == (6, 1, 2)
    assert (measures["refresh_hit_count"], measures["error_count"], measures["incomplete_count"]) == (1, 2, 1)
    assert [measures[f"http{n}xx_count"] for n in (2, 3, 4, 5)] == [3, 1, 0, 1]
    assert (measures["bytes_requested"], measures["bytes_missed"], measures["bytes_hit"]) == (1550, 1100, 400)
    assert {k: result[k] for k in ("files", "lines_read", "loaded", "rejected")} == {
        "files": 3, "lines_read": 7, "loaded": 6, "rejected": 1,
    }  # fmt: skip
    only_e2 = reconcile.reconcile(spark, consistent, D, ["e2"])
    assert (only_e2["cdn_logs_rows"], only_e2["files"]) == (2, 1)


def test_other_dates_are_checked_on_their_own(spark: Any, consistent: str) -> None:
    with pytest.raises(reconcile.ReconciliationError) as info:
        reconcile.reconcile(spark, consistent, D - dt.timedelta(days=1))
    assert info.value.mismatches == ["loaded rows: cdn_logs 1 != ingest_files.loaded 5 (2024-04-30)"]


def test_tampered_statistics_name_the_measure_and_both_values(spark: Any, copy: str) -> None:
    from delta.tables import DeltaTable

    stats = DeltaTable.forPath(spark, table_path(copy, "stats_hourly"))
    stats.update("distro = 'e1' AND dt = '2024-05-01' AND hour = 10", {"bytes_missed": "bytes_missed + 7"})
    with pytest.raises(reconcile.ReconciliationError) as info:
        reconcile.reconcile(spark, copy, D)
    assert info.value.mismatches == ["bytes_missed: statistics 1107 != raw rows 1100 (2024-05-01)"]
    assert "bytes_missed: statistics 1107 != raw rows 1100 (2024-05-01)" in str(info.value)


def test_ingest_accounting_disagreement_is_reported(spark: Any, copy: str) -> None:
    from delta.tables import DeltaTable

    files = DeltaTable.forPath(spark, table_path(copy, "ingest_files"))
    files.update(f"source_file = '{B}'", {"loaded": "loaded + 1"})
    with pytest.raises(reconcile.ReconciliationError) as info:
        reconcile.reconcile(spark, copy, D)
    assert info.value.mismatches == [
        "loaded rows: cdn_logs 6 != ingest_files.loaded 7 (2024-05-01)",
        f"{B}: lines_read 1 != loaded 2 + rejected 0 (2024-05-01)",
    ]
    assert isinstance(info.value, RuntimeError)
    assert pickle.loads(pickle.dumps(info.value)).mismatches == info.value.mismatches  # survives task states


def test_measure_comparison_without_spark() -> None:
    raw = {"request_count": 3, "bytes_missed": 10}
    assert reconcile.compare_measures({"request_count": 3, "bytes_missed": 10}, raw, D) == []
    assert reconcile.compare_measures({}, {"request_count": 0, "bytes_missed": 0}, D) == []
    assert reconcile.compare_measures({"request_count": 3, "extra": 1}, raw, D) == [
        "bytes_missed: missing from stats_hourly (2024-05-01)",
        "extra: stats_hourly column with no raw-row check (2024-05-01)",
    ]


# ---------------------------------------------------------------- the flow's check: the aggregate's raw totals
# Counted by hand from LOGS (2024-05-01: six rows).
HAND = {"request_count": 6, "hit_count": 1, "miss_count": 2, "refresh_hit_count": 1, "error_count": 2,
        "incomplete_count": 1, "http2xx_count": 3, "http3xx_count": 1, "http4xx_count": 0, "http5xx_count": 1,
        "bytes_requested": 1550, "bytes_missed": 1100, "bytes_hit": 400}  # fmt: skip


def aggregate_raw_totals(spark: Any, warehouse: str, distributions: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The raw totals per date that the aggregate job returns to the flow, when the run ingested
    D-2..D (the dates it reconciles; an ingested date is always scanned)."""
    logs = spark.read.format("delta").load(table_path(warehouse, "cdn_logs"))
    ingested = (D - dt.timedelta(days=2), D - dt.timedelta(days=1))
    return aggregate.time_series_writes(logs, AggregateParams(D, warehouse, distributions, dates=ingested)).raw_totals


def test_the_aggregate_scan_returns_the_hand_counted_raw_totals(spark: Any, consistent: str) -> None:
    raw = aggregate_raw_totals(spark, consistent)
    assert raw[D.isoformat()] == HAND
    assert raw["2024-04-30"]["request_count"] == 1
    assert raw["2024-04-29"] == dict.fromkeys(HAND, 0)  # scanned, nothing there
    assert aggregate_raw_totals(spark, consistent, ("e2",))[D.isoformat()]["request_count"] == 2
    # Not ingested by the run and unchanged since the fixture's statistics: not scanned, no totals.
    logs = spark.read.format("delta").load(table_path(consistent, "cdn_logs"))
    series = aggregate.time_series_writes(logs, AggregateParams(D, consistent))
    assert (sorted(series.raw_totals), series.unchanged) == ([D.isoformat()], [D - dt.timedelta(days=1)])


def test_the_flow_checks_the_written_tables_against_them(spark: Any, consistent: str) -> None:
    result = reconcile_written(consistent, D, None, aggregate_raw_totals(spark, consistent)[D.isoformat()])
    assert result["measures"] == HAND
    assert {k: result[k] for k in ("files", "lines_read", "loaded", "rejected")} == {
        "files": 3, "lines_read": 7, "loaded": 6, "rejected": 1,
    }  # fmt: skip
    only_e2 = reconcile_written(consistent, D, ["e2"], aggregate_raw_totals(spark, consistent, ("e2",))[D.isoformat()])
    assert (only_e2["cdn_logs_rows"], only_e2["files"]) == (2, 1)
    with pytest.raises(ReconciliationError) as info:
        reconcile_written(consistent, D - dt.timedelta(days=1), None, {**HAND, "request_count": 1})
    assert "loaded rows: cdn_logs 1 != ingest_files.loaded 5 (2024-04-30)" in info.value.mismatches


def test_the_flow_check_names_tampered_statistics_and_accounting(spark: Any, copy: str) -> None:
    from delta.tables import DeltaTable

    raw = aggregate_raw_totals(spark, copy)[D.isoformat()]
    stats = DeltaTable.forPath(spark, table_path(copy, "stats_hourly"))
    stats.update("distro = 'e1' AND dt = '2024-05-01' AND hour = 10", {"bytes_missed": "bytes_missed + 7"})
    DeltaTable.forPath(spark, table_path(copy, "ingest_files")).update(f"source_file = '{B}'", {"loaded": "loaded + 1"})
    with pytest.raises(ReconciliationError) as info:
        reconcile_written(copy, D, None, raw)
    assert info.value.mismatches == [
        "bytes_missed: statistics 1107 != raw rows 1100 (2024-05-01)",
        "loaded rows: cdn_logs 6 != ingest_files.loaded 7 (2024-05-01)",
        f"{B}: lines_read 1 != loaded 2 + rejected 0 (2024-05-01)",
    ]


def test_a_raw_rule_that_disagrees_with_the_statistics_stops_the_flow(consistent: str) -> None:
    with pytest.raises(ReconciliationError) as info:
        reconcile_written(consistent, D, None, {**HAND, "hit_count": 2})
    assert info.value.mismatches == ["hit_count: statistics 1 != raw rows 2 (2024-05-01)"]


class _Services:
    def __init__(self, warehouse: str) -> None:
        self.settings, self.warehouse = Settings(warehouse=warehouse), warehouse
        self.runner = FakeRunner()


def test_the_reconcile_job_runs_only_for_a_date_without_raw_totals(consistent: str) -> None:
    services = _Services(consistent)
    checked = pipeline.reconcile(services, D, None, {D.isoformat(): HAND})  # type: ignore[arg-type]
    assert checked["measures"] == HAND and services.runner.calls == []
    pipeline.reconcile(services, D, ["e1"], {"2024-04-30": HAND})  # type: ignore[arg-type]
    pipeline.reconcile(services, D, None)  # type: ignore[arg-type]
    assert [(p.job, p.distributions) for p in services.runner.calls] == [("reconcile", ("e1",)), ("reconcile", None)]
