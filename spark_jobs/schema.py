"""Field names and table schemas, declared once for every job."""

from __future__ import annotations

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

from spark_jobs.log_fields import ALL_FIELDS, LOG_FIELDS, V2_DEFAULT_FIELDS, V2_FIELDS, mangle, snake

__all__ = ["ALL_FIELDS", "LOG_FIELDS", "V2_DEFAULT_FIELDS", "V2_FIELDS", "mangle", "snake"]

N_FIELDS = len(LOG_FIELDS)
# Not stored: `ts` holds the request time whichever of date/time, timestamp(ms), timestamp gave it.
_NOT_STORED = ("date", "time", "timestamp")


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

# What the file reader (spark_jobs/raw_reader.py) hands to Spark: every cdn_logs column of every
# line, with `reason` NULL for a good line and `value` the raw text of a rejected one. Each file
# also gets one marker row (line_no NULL): `value` = the file's sha256, `reason` = its damage,
# `file_lines`/`file_rejected` = its lines read and rejected, so the accounting needs no pass of its own.
PARSED_SCHEMA = StructType(
    [
        StructField("reason", StringType(), True),
        StructField("value", StringType(), True),
        StructField("file_lines", LongType(), True),
        StructField("file_rejected", LongType(), True),
    ]
    + list(CDN_LOGS_SCHEMA.fields)
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

