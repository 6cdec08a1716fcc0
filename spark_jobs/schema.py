"""Field names and table schemas, declared once for every job."""

from __future__ import annotations

import re

from pyspark.sql.types import (
    BooleanType,
    DataType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

# The 33 CloudFront standard-log fields in their documented order (SPEC section 1). Older eras
# declare a prefix of this list (18, 23, 26 ... fields).
LOG_FIELDS: tuple[str, ...] = (
    "date", "time", "x-edge-location", "sc-bytes", "c-ip", "cs-method", "cs(Host)",
    "cs-uri-stem", "sc-status", "cs(Referer)", "cs(User-Agent)", "cs-uri-query", "cs(Cookie)",
    "x-edge-result-type", "x-edge-request-id", "x-host-header", "cs-protocol", "cs-bytes",
    "time-taken", "x-forwarded-for", "ssl-protocol", "ssl-cipher", "x-edge-response-result-type",
    "cs-protocol-version", "fle-status", "fle-encrypted-fields", "c-port", "time-to-first-byte",
    "x-edge-detailed-result-type", "sc-content-type", "sc-content-len", "sc-range-start",
    "sc-range-end",
)  # fmt: skip

N_FIELDS = len(LOG_FIELDS)

# Fields that only standard logging v2 (CloudWatch vended logs) can deliver. `timestamp` is the
# request time in epoch seconds; it and `timestamp(ms)` stand in for `date`/`time` when a delivery
# leaves those out.
V2_FIELDS: tuple[str, ...] = (
    "timestamp", "timestamp(ms)", "c-country", "asn", "cache-behavior-path-pattern", "origin-fbl",
    "origin-lbl", "distribution-tenant-id", "connection-id",
)  # fmt: skip
ALL_FIELDS: tuple[str, ...] = LOG_FIELDS + V2_FIELDS
# v2's default field selection: what a headerless (`plain`) v2 file is assumed to hold.
V2_DEFAULT_FIELDS: tuple[str, ...] = LOG_FIELDS + ("c-country", "cache-behavior-path-pattern")
# Not stored: `ts` holds the request time whichever of date/time, timestamp(ms), timestamp gave it.
_NOT_STORED = ("date", "time", "timestamp")


def snake(field: str) -> str:
    """`cs(User-Agent)` -> `cs_user_agent`, `x-edge-location` -> `x_edge_location`."""
    return field.replace("(", "_").replace(")", "").replace("-", "_").lower()


def mangle(field: str) -> str:
    """v2 Parquet column name: each run of other characters becomes `_`, a trailing `_` is dropped,
    case is kept (`cs(User-Agent)` -> `cs_User_Agent`, `timestamp(ms)` -> `timestamp_ms`)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", field).rstrip("_")


# Typed columns of cdn_logs, keyed by raw field; fields not listed here stay strings.
FIELD_TYPES: dict[str, DataType] = {
    "sc-bytes": LongType(),
    "sc-status": IntegerType(),
    "cs-bytes": LongType(),
    "time-taken": DoubleType(),
    "c-port": IntegerType(),
    "time-to-first-byte": DoubleType(),
    "sc-content-len": LongType(),
    "sc-range-start": LongType(),
    "sc-range-end": LongType(),
    "timestamp(ms)": LongType(),
    "asn": LongType(),
    "origin-fbl": DoubleType(),
    "origin-lbl": DoubleType(),
}

# Fields that are percent-decoded (once, twice where `%25XX` remains) when loaded. The URI stem
# and query stay as CloudFront wrote them (as Athena's CloudFront table keeps them).
DECODED_FIELDS = ("cs(User-Agent)", "cs(Referer)")

def cdn_logs_columns() -> list[tuple[str, DataType]]:
    cols: list[tuple[str, DataType]] = [("ts", TimestampType()), ("hour", IntegerType())]
    for field in ALL_FIELDS:
        if field in _NOT_STORED:
            continue
        cols.append((snake(field), FIELD_TYPES.get(field, StringType())))
    cols += [
        ("status_class", IntegerType()),
        ("device_type", StringType()),
        ("os", StringType()),
        ("browser", StringType()),
        ("source_file", StringType()),
        ("line_no", LongType()),
        ("distro", StringType()),
        ("dt", StringType()),
    ]
    return cols


CDN_LOGS_SCHEMA = StructType([StructField(n, t, True) for n, t in cdn_logs_columns()])

# What the file reader (spark_jobs/raw_reader.py) hands to Spark: every line typed, with `reason`
# NULL for a good line; `value` holds the raw text of rejected lines and, on the one marker row per
# file (line_no NULL), the file's sha256.
_ENRICHED = ("device_type", "os", "browser")
PARSED_SCHEMA = StructType(
    [StructField("reason", StringType(), True), StructField("value", StringType(), True)]
    + [f for f in CDN_LOGS_SCHEMA.fields if f.name not in _ENRICHED]
)

REJECTS_SCHEMA = StructType(
    [
        StructField("source_file", StringType(), False),
        StructField("line_no", LongType(), True),
        StructField("raw_line", StringType(), True),
        StructField("reason", StringType(), False),
        StructField("ingest_run", StringType(), False),
        StructField("distro", StringType(), False),
        StructField("dt", StringType(), False),
    ]
)

INGEST_FILES_SCHEMA = StructType(
    [
        StructField("source_file", StringType(), False),
        StructField("file_name", StringType(), False),
        StructField("size_bytes", LongType(), False),
        StructField("modified", TimestampType(), True),
        StructField("lines_read", LongType(), False),
        StructField("loaded", LongType(), False),
        StructField("rejected", LongType(), False),
        StructField("damaged", BooleanType(), False),
        StructField("duplicate_of", StringType(), True),
        StructField("ingest_run", StringType(), False),
        StructField("ingested_at", TimestampType(), False),
        StructField("distro", StringType(), False),
        StructField("dt", StringType(), False),
    ]
)

