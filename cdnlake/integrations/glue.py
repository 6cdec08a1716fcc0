"""Register the warehouse's Delta tables in the AWS Glue Data Catalog, so Athena and others find them.

The embedded default needs no catalog (Spark and delta-rs open the tables by path); Glue is used
only when `CDNLAKE_GLUE_DATABASE` is set. Registration is idempotent: a missing table is created,
a changed one updated, an unchanged one left alone (every update_table call adds a Glue table
version, and Glue keeps a limited number of them).

Each table is declared as Athena documents for native Delta Lake tables: `table_type=DELTA` for
Athena and `spark.sql.sources.provider=delta` (+ the `path` SerDe parameter) for Spark engines
that use Glue as their metastore. Athena reads the real schema from the Delta log; the Glue
columns (taken from that same log with delta-rs) are for people and for Lake Formation, views and
column filters, which need Glue's schema to match the log.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from cdnlake.report_data import table_uri
from spark_jobs.contract import TABLES

log = logging.getLogger(__name__)

PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

# Delta primitive type names (protocol spec) -> Hive/Glue type names.
_HIVE_PRIMITIVES = {
    "string": "string", "long": "bigint", "integer": "int", "short": "smallint", "byte": "tinyint",
    "float": "float", "double": "double", "boolean": "boolean", "binary": "binary", "date": "date",
    "timestamp": "timestamp", "timestamp_ntz": "timestamp",
}  # fmt: skip


def hive_type(delta_type: Any) -> str:
    """A Delta schema type (as in the log's JSON) as a Hive type string: `long` -> `bigint`."""
    if isinstance(delta_type, str):
        if delta_type.startswith("decimal"):
            return delta_type.replace(" ", "")
        if delta_type not in _HIVE_PRIMITIVES:
            raise ValueError(f"no Hive type for Delta type {delta_type!r}")
        return _HIVE_PRIMITIVES[delta_type]
    kind = delta_type["type"]
    if kind == "array":
        return f"array<{hive_type(delta_type['elementType'])}>"
    if kind == "map":
        return f"map<{hive_type(delta_type['keyType'])},{hive_type(delta_type['valueType'])}>"
    if kind == "struct":
        return "struct<" + ",".join(f"{f['name']}:{hive_type(f['type'])}" for f in delta_type["fields"]) + ">"
    raise ValueError(f"no Hive type for Delta type {kind!r}")


def glue_location(uri: str) -> str:
    """Glue/Athena want `s3://` (Spark's `s3a://` is a Hadoop connector name) and a trailing slash."""
    return uri.replace("s3a://", "s3://", 1).rstrip("/") + "/"


def delta_columns(uri: str) -> tuple[list[dict[str, str]], list[str]] | None:
    """(columns as Glue dicts, partition column names) from the Delta log; None if no table there."""
    try:
        table = DeltaTable(uri)
    except TableNotFoundError:
        return None
    schema = json.loads(table.schema().to_json())
    columns = [{"Name": f["name"], "Type": hive_type(f["type"])} for f in schema["fields"]]
    return columns, list(table.metadata().partition_columns)


def table_input(name: str, location: str, columns: list[dict[str, str]], partitions: list[str]) -> dict[str, Any]:
    """The Glue TableInput of one Delta table (partition columns as PartitionKeys, Hive style)."""
    location = glue_location(location)
    by_name = {c["Name"]: c for c in columns}
    return {
        "Name": name,
        "Description": "cdnlake Delta Lake table (schema from the Delta log)",
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "table_type": "DELTA",
            "spark.sql.sources.provider": "delta",
            "classification": "delta",
            "EXTERNAL": "TRUE",
        },
        "StorageDescriptor": {
            "Columns": [c for c in columns if c["Name"] not in partitions],
            "Location": location,
            "InputFormat": PARQUET_INPUT,
            "OutputFormat": PARQUET_OUTPUT,
            "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE, "Parameters": {"path": location}},
        },
        "PartitionKeys": [by_name[p] for p in partitions],
    }


def _same(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether the registered table already says what we would write (fields we own only)."""
    sd, want_sd = existing.get("StorageDescriptor", {}), wanted["StorageDescriptor"]
    return (
        existing.get("TableType") == wanted["TableType"]
        and all(existing.get("Parameters", {}).get(k) == v for k, v in wanted["Parameters"].items())
        and sd.get("Location") == want_sd["Location"]
        and [(c["Name"], c["Type"]) for c in sd.get("Columns", [])]
        == [(c["Name"], c["Type"]) for c in want_sd["Columns"]]
        and [(c["Name"], c["Type"]) for c in existing.get("PartitionKeys", [])]
        == [(c["Name"], c["Type"]) for c in wanted["PartitionKeys"]]
    )


def ensure_database(glue: Any, database: str) -> bool:
    """Create the Glue database if missing; True when it was created."""
    try:
        glue.get_database(Name=database)
        return False
    except glue.exceptions.EntityNotFoundException:
        glue.create_database(DatabaseInput={"Name": database, "Description": "cdnlake CloudFront log warehouse"})
        return True


def register_table(glue: Any, database: str, wanted: dict[str, Any]) -> str:
    """Create or update one table; returns `created`, `updated` or `unchanged`."""
    try:
        existing = glue.get_table(DatabaseName=database, Name=wanted["Name"])["Table"]
    except glue.exceptions.EntityNotFoundException:
        glue.create_table(DatabaseName=database, TableInput=wanted)
        return "created"
    if _same(existing, wanted):
        return "unchanged"
    glue.update_table(DatabaseName=database, TableInput=wanted)
    return "updated"


def register_tables(
    glue: Any, database: str, warehouse: str, prefix: str = "", tables: tuple[str, ...] = TABLES
) -> dict[str, str]:
    """Register every table that exists under the warehouse; {table name in Glue: action}.

    Tables not written yet (e.g. statistics before the first aggregate) are reported as `missing`
    and registered by a later run.
    """
    ensure_database(glue, database)
    actions: dict[str, str] = {}
    for table in tables:
        uri = table_uri(warehouse, table)
        found = delta_columns(uri)
        name = prefix + table
        if found is None:
            actions[name] = "missing"
            continue
        actions[name] = register_table(glue, database, table_input(name, uri, *found))
    log.info("glue %s: %s", database, ", ".join(f"{k} {v}" for k, v in actions.items()))
    return actions
