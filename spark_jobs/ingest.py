"""Ingest UTC dates of raw CloudFront logs into cdn_logs, cdn_logs_rejects and ingest_files.

All the dates of a run in one job: one parse-and-write job and one commit per table for all of them
(a fresh warehouse's first run ingests its three days at the fixed cost of one), with the same
results per date as a job per date: each date's partitions replaced, repeats looked for within a
date, the accounting per date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import uuid
from collections.abc import Sequence
from typing import Any

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from spark_jobs import args as job_args
from spark_jobs import storage
from spark_jobs.commit_files import files_written, table_state
from spark_jobs.ingest_accounting import (
    INLINE_REJECTS,
    all_rejects,
    find_duplicates,
    ingest_files_rows,
    observe_files,
    observed_accounting,
    summarise_by_date,
)
from spark_jobs.ingest_duplicates import move_duplicates
from spark_jobs.ingest_reader import read_raw_lines, reader_options
from spark_jobs.local_frames import local_frame
from spark_jobs.log_fields import field_delimiter
from spark_jobs.params import IngestParams
from spark_jobs.privacy import IP_MODES
from spark_jobs.schema import CDN_LOGS_SCHEMA, INGEST_FILES_SCHEMA
from spark_jobs.storage import RawFile, listed_raw_files, read_file_list, table_path

# Files are read whole by Python workers: a few per Arrow batch keeps worker memory bounded.
_FILES_PER_ARROW_BATCH = "4"


# Delta collects min/max/null statistics per file for these columns only: with its default (the
# first 32 columns) statistics cost 3x the Parquet write itself. These are what queries filter on
# besides the distro/dt partitions.
CDN_LOGS_PROPERTIES = {
    "delta.dataSkippingStatsColumns": "ts,hour,sc_status,x_edge_location,x_edge_response_result_type",
}
# The (distro, dt) partitions an ingest writes: per date, the distributions it has files of.
Partitions = dict[dt.date, list[str]]


def ensure_cdn_logs(spark: SparkSession, path: str) -> dict[str, str]:
    """The writer options cdn_logs needs: a new table gets its properties from the first write
    (creating it first was a commit and a snapshot of its own, ~5 s of a first run); an older
    table gains the columns and properties added since, both seen in its log (no Spark job). Two
    first runs at once: the second's commit fails on the first's and the task's retry writes into
    the table it made."""
    state = table_state(spark, path)
    if state is None:
        return dict(CDN_LOGS_PROPERTIES)
    add_missing_columns(spark, path, state.columns)
    changed = {k: v for k, v in CDN_LOGS_PROPERTIES.items() if state.properties.get(k) != v}
    if changed:
        settings = ", ".join(f"'{k}' = '{v}'" for k, v in changed.items())
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({settings})")
    return {}


def add_missing_columns(spark: SparkSession, path: str, existing: Sequence[str]) -> None:
    """A table made by an earlier version gains the columns added since (the v2 fields), NULL in
    its existing rows; a replaceWhere overwrite would otherwise refuse the wider rows."""
    missing = [f for f in CDN_LOGS_SCHEMA.fields if f.name not in set(existing)]
    if missing:
        columns = ", ".join(f"{f.name} {f.dataType.simpleString().upper()}" for f in missing)
        spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS ({columns})")


def write_partitions(df: DataFrame, path: str, predicate: str, options: dict[str, str] | None = None) -> None:
    """Replace exactly the partitions matching `predicate` (re-running a date never duplicates)."""
    writer = df.write.format("delta").mode("overwrite").option("replaceWhere", predicate).options(**(options or {}))
    writer.partitionBy("distro", "dt").save(path)


def write_cdn_logs(parsed: DataFrame, warehouse: str, predicate: str) -> None:
    """The loaded lines (no reason, not a marker) into cdn_logs: the job that parses the files."""
    loaded = parsed.filter(F.col("line_no").isNotNull() & F.col("reason").isNull())
    path = table_path(warehouse, "cdn_logs")
    options = ensure_cdn_logs(parsed.sparkSession, path)
    write_partitions(loaded.select(*CDN_LOGS_SCHEMA.fieldNames()), path, predicate, options)


def raw_files(spark: SparkSession, params: IngestParams, wanted: set[str] | None) -> list[RawFile]:
    """The dates' raw files: those the run listed (`files`, or the `--files-from` document), else one
    listing of the source here (a job run alone). Each file is read for one date: the first of
    its key's date, or for a key without one its modification date and the day before, that the
    job ingests (the run's own listing decides the same way, cdnlake/sources.py)."""
    dates = set(params.all_dates)
    listed = read_file_list(spark, params.files_from) if params.files_from else params.files
    if listed is None:
        return storage.list_raw_files(spark, params.source, dates, wanted)
    return listed_raw_files(spark, listed, dates, wanted)


def load_files(spark: SparkSession, params: IngestParams, files: list[RawFile], partitions: Partitions,
               run_id: str, ip_hash_key: str) -> list[tuple[Any, ...]]:  # fmt: skip
    """Parse `files` and replace `partitions` of the three tables, one commit each; returns the
    ingest_files rows. One job parses the files and writes cdn_logs, observing each file's
    accounting and its rejected lines on the way (spark_jobs/ingest_accounting.py); repeats are
    then moved out of what was written (spark_jobs/ingest_duplicates.py); rejects and
    ingest_files come from the driver."""
    # Only the dates' distributions with files are replaced when the run names distributions;
    # else each date is replaced whole.
    replaced = {d: (distros if params.distributions else None) for d, distros in partitions.items()}
    predicate = job_args.partitions_predicate(replaced)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", _FILES_PER_ARROW_BATCH)
    observation = Observation(f"ingest-{run_id}")
    options = reader_options(params, ip_hash_key, inline_rejects=INLINE_REJECTS)
    parsed = read_raw_lines(spark, files, options).transform(lambda df: observe_files(df, observation))
    write_cdn_logs(parsed, params.warehouse, predicate)
    accounting = observed_accounting(observation)
    duplicates = find_duplicates(accounting.markers)
    moved = move_duplicates(spark, table_path(params.warehouse, "cdn_logs"), partitions, duplicates, run_id)
    rejects = all_rejects(spark, files, accounting, moved, reader_options(params, ip_hash_key), run_id)
    write_partitions(rejects, table_path(params.warehouse, "cdn_logs_rejects"), predicate)
    rows = ingest_files_rows(files, accounting, duplicates, moved.per_file if moved else {}, run_id)
    files_df = local_frame(spark, rows, INGEST_FILES_SCHEMA)
    write_partitions(files_df, table_path(params.warehouse, "ingest_files"), predicate)
    return rows


def run(spark: SparkSession, params: IngestParams, ip_hash_key: str = "") -> dict[str, Any]:
    """Ingest params.date and params.dates in one job; returns params.date's accounting (lines read =
    loaded + rejected, per distribution) and under `per_date` every date's, by ISO date.

    `ip_hash_key`: the key for CDNLAKE_ANONYMIZE_IP=hash (else the CDNLAKE_IP_HASH_KEY variable).
    """
    started = time.monotonic()
    run_id = params.run_id or uuid.uuid4().hex[:12]
    files = raw_files(spark, params, set(params.distributions) if params.distributions else None)
    partitions: Partitions = {}
    for f in files:
        partitions.setdefault(dt.date.fromisoformat(f.date), []).append(f.distro)
    partitions = {d: sorted(set(distros)) for d, distros in sorted(partitions.items())}
    # A date without files is not in `partitions`: its tables are left as they are, not wiped.
    rows = load_files(spark, params, files, partitions, run_id, ip_hash_key) if partitions else []
    # Files per partition from the commits: compaction decides from them.
    written = files_written(spark, params.warehouse, list(partitions)) if partitions else {}
    summaries = summarise_by_date(rows)
    per_date: dict[str, dict[str, Any]] = {}
    for date in (d.isoformat() for d in params.all_dates):
        result = {"date": date, "run_id": run_id, "files": sum(f.date == date for f in files)}
        if date in summaries:
            per_date[date] = result | summaries[date] | {"files_written": written[date]}
        else:
            per_date[date] = result | {"lines_read": 0, "loaded": 0, "rejected": 0, "per_distro": {}}
    seconds = round(time.monotonic() - started, 2)
    return per_date[params.date.isoformat()] | {"per_date": per_date, "seconds": seconds}


def v2_delimiter(value: str) -> str:
    try:
        field_delimiter(value)
        return value
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--v2-delimiter: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    job_args.add_common(parser, warehouse=True, source=True)
    parser.add_argument("--dates", type=job_args.date_list, default=None,
                        help="more comma-separated UTC dates ingested by the same job")
    parser.add_argument("--run-id", default=None, help="identifier stored with every row")
    parser.add_argument("--anonymize-ip", choices=IP_MODES, default="truncate",
                        help="client IPs: truncate (IPv4 /24, IPv6 /48, default), hash (keyed), none")
    parser.add_argument("--keep-cookies", action="store_true", help="store cs(Cookie) (dropped by default)")
    parser.add_argument("--v2-delimiter", type=v2_delimiter, default="tab",
                        help="field delimiter of standard logging v2 text deliveries (default: tab)")
    parser.add_argument("--files-from", type=job_args.location, default=None,
                        help="JSON list of the raw files to read ({uri, size, modified_ms}); else the source is listed")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    job_args.run_main(build_parser(), run, argv, IngestParams)


if __name__ == "__main__":
    main()
