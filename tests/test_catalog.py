"""Glue registration of the Delta tables (moto's Glue; the tables are written with delta-rs, no Spark)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pytest
from deltalake import write_deltalake
from moto import mock_aws

from cdnlake import cli, pipeline
from cdnlake.integrations import glue as catalog
from cdnlake.settings import ConfigError, Settings, load_settings

DB = "cdnlake_test"


@pytest.fixture
def glue() -> Any:
    with mock_aws():
        yield boto3.client("glue", region_name="us-east-1")


def write_tables(warehouse: Path) -> None:
    """cdn_logs-like and stats_hourly-like tables with the types the real ones use."""
    logs = pa.table({
        "ts": pa.array([None], pa.timestamp("us", tz="UTC")), "hour": pa.array([1], pa.int32()),
        "sc_bytes": pa.array([10], pa.int64()), "time_taken": pa.array([0.5], pa.float64()),
        "cs_uri_stem": ["/a"], "distro": ["e1"], "dt": ["2024-05-01"],
    })  # fmt: skip
    write_deltalake(str(warehouse / "cdn_logs"), logs, partition_by=["distro", "dt"])
    stats = pa.table({"distro": ["e1"], "dt": ["2024-05-01"], "hour": pa.array([1], pa.int32()),
                      "request_count": pa.array([3], pa.int64())})  # fmt: skip
    write_deltalake(str(warehouse / "stats_hourly"), stats, partition_by=["dt"])


def test_hive_types() -> None:
    assert [catalog.hive_type(t) for t in ("long", "integer", "timestamp_ntz", "decimal(10, 2)", "boolean")] == [
        "bigint", "int", "timestamp", "decimal(10,2)", "boolean",
    ]  # fmt: skip
    nested = {"type": "struct", "fields": [{"name": "a", "type": {"type": "array", "elementType": "short"}},
                                           {"name": "m", "type": {"type": "map", "keyType": "string",
                                                                  "valueType": "double"}}]}  # fmt: skip
    assert catalog.hive_type(nested) == "struct<a:array<smallint>,m:map<string,double>>"
    with pytest.raises(ValueError, match="variant"):
        catalog.hive_type("variant")


def test_table_input_is_an_athena_delta_table() -> None:
    columns = [{"Name": "sc_bytes", "Type": "bigint"}, {"Name": "dt", "Type": "string"}]
    wanted = catalog.table_input("cdn_logs", "s3a://bucket/wh/cdn_logs", columns, ["dt"])
    assert wanted["Parameters"]["table_type"] == "DELTA"
    assert wanted["Parameters"]["spark.sql.sources.provider"] == "delta"
    sd = wanted["StorageDescriptor"]
    assert sd["Location"] == "s3://bucket/wh/cdn_logs/" == sd["SerdeInfo"]["Parameters"]["path"]
    assert [c["Name"] for c in sd["Columns"]] == ["sc_bytes"]
    assert wanted["PartitionKeys"] == [{"Name": "dt", "Type": "string"}]


def test_register_creates_then_is_idempotent_then_updates(glue: Any, tmp_path: Path) -> None:
    write_tables(tmp_path)
    first = catalog.register_tables(glue, DB, str(tmp_path), prefix="prod_")
    assert first["prod_cdn_logs"] == "created" and first["prod_stats_hourly"] == "created"
    assert first["prod_stats_minute"] == "missing"  # not written yet: registered by a later run
    table = glue.get_table(DatabaseName=DB, Name="prod_cdn_logs")["Table"]
    assert table["Parameters"]["table_type"] == "DELTA" and table["TableType"] == "EXTERNAL_TABLE"
    assert [k["Name"] for k in table["PartitionKeys"]] == ["distro", "dt"]
    assert {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]} == {
        "ts": "timestamp", "hour": "int", "sc_bytes": "bigint", "time_taken": "double", "cs_uri_stem": "string",
    }  # fmt: skip
    assert table["StorageDescriptor"]["Location"] == str(tmp_path / "cdn_logs") + "/"

    again = catalog.register_tables(glue, DB, str(tmp_path), prefix="prod_")
    assert {again["prod_cdn_logs"], again["prod_stats_hourly"]} == {"unchanged"}

    # The schema evolves (a new column): the Glue table follows on the next run.
    extra = pa.table({"distro": ["e1"], "dt": ["2024-05-02"], "hour": pa.array([2], pa.int32()),
                      "request_count": pa.array([1], pa.int64()), "bytes": pa.array([9], pa.int64())})  # fmt: skip
    write_deltalake(str(tmp_path / "stats_hourly"), extra, mode="append", schema_mode="merge")
    third = catalog.register_tables(glue, DB, str(tmp_path), prefix="prod_")
    assert third["prod_stats_hourly"] == "updated" and third["prod_cdn_logs"] == "unchanged"
    columns = glue.get_table(DatabaseName=DB, Name="prod_stats_hourly")["Table"]["StorageDescriptor"]["Columns"]
    assert columns[-1] == {"Name": "bytes", "Type": "bigint"}
    assert len(glue.get_tables(DatabaseName=DB)["TableList"]) == 2


def test_pipeline_registers_only_when_configured(glue: Any, tmp_path: Path) -> None:
    assert pipeline.register_catalog(Settings(warehouse=str(tmp_path))) is None  # embedded default: nothing to do
    write_tables(tmp_path)
    # Settings() skips validation, which would insist on an s3:// warehouse for Glue.
    result = pipeline.register_catalog(Settings(warehouse=str(tmp_path), glue_database=DB))
    assert result is not None and result["database"] == DB and result["tables"]["cdn_logs"] == "created"
    assert glue.get_database(Name=DB)["Database"]["Name"] == DB


def test_glue_settings_are_validated() -> None:
    s = load_settings(env={"CDNLAKE_GLUE_DATABASE": "cdn_logs", "CDNLAKE_WAREHOUSE": "s3://b/wh"})
    assert s.glue_database == "cdn_logs"
    with pytest.raises(ConfigError, match="CDNLAKE_GLUE_DATABASE.*s3://"):
        load_settings(env={"CDNLAKE_GLUE_DATABASE": "cdn"})
    with pytest.raises(ConfigError, match="CDNLAKE_GLUE_DATABASE"):
        load_settings(env={"CDNLAKE_GLUE_DATABASE": "Bad-Name", "CDNLAKE_WAREHOUSE": "s3://b/wh"})
    with pytest.raises(ConfigError, match="CDNLAKE_GLUE_TABLE_PREFIX"):
        load_settings(env={"CDNLAKE_GLUE_TABLE_PREFIX": "x-"})


def test_catalog_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("CDNLAKE_GLUE_DATABASE", raising=False)
    assert cli.main(["catalog"]) == 0
    assert "nothing to register" in capsys.readouterr().out
    monkeypatch.setenv("CDNLAKE_GLUE_DATABASE", "cdn")  # with the default local warehouse: refused, key named
    assert cli.main(["catalog"]) == 2
    assert "CDNLAKE_GLUE_DATABASE" in capsys.readouterr().err
