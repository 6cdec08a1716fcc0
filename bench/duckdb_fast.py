"""The speed anchor: DuckDB the way a user would pick it instead of cdnlake.

One typed `read_csv` per field set (tab, no quoting, `#` lines skipped as comments, `-` as NULL,
the 33 CloudFront columns with their types, rows that do not fit dropped), written as Parquet zstd
partitioned by distro and dt, then the hourly query over that Parquet. It has none of cdnlake's
accounting (rejects, per-file counts, request-id de-duplication), so it is a floor for the work, not
an exactness reference: bench/duckdb_reference.py stays that.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from bench.duckdb_reference import FIELDS_33, HOURLY_SQL, declared_fields

# DuckDB types of the CloudFront fields that are not text.
TYPES = {
    "date": "DATE", "time": "TIME", "sc_bytes": "BIGINT", "sc_status": "INTEGER", "cs_bytes": "BIGINT",
    "time_taken": "DOUBLE", "c_port": "INTEGER", "time_to_first_byte": "DOUBLE", "sc_content_len": "BIGINT",
    "sc_range_start": "BIGINT", "sc_range_end": "BIGINT",
}  # fmt: skip
_NAME_RE = r"([A-Za-z0-9]+)\.(\d{4}-\d{2}-\d{2})-\d{2}\.[^/]*\.gz$"


def _read_sql(n: int, paths: list[str]) -> str:
    columns = "{" + ", ".join(f"'{name}': '{TYPES.get(name, 'VARCHAR')}'" for name in FIELDS_33[:n]) + "}"
    listing = "[" + ", ".join(f"'{p}'" for p in paths) + "]"
    missing = "".join(f", NULL::{TYPES.get(name, 'VARCHAR')} AS {name}" for name in FIELDS_33[n:])
    return f"""
    SELECT * EXCLUDE (filename){missing},
           lower(regexp_extract(filename, '{_NAME_RE}', 1)) AS distro,
           regexp_extract(filename, '{_NAME_RE}', 2) AS dt
    FROM read_csv({listing}, delim='\t', quote='', escape='', comment='#', header=false, nullstr='-',
                  columns={columns}, auto_detect=false, ignore_errors=true, filename=true)
    """


def ingest_to_parquet(files: list[Path], out_dir: Path, threads: int = 2) -> duckdb.DuckDBPyConnection:
    """gz -> Parquet zstd partitioned by distro/dt with typed read_csv; leaves a view `logs` with hour."""
    con = duckdb.connect()
    con.execute(f"SET threads={threads}")
    con.execute("SET enable_progress_bar=false")
    groups: dict[int, list[str]] = {}
    for f in files:
        groups.setdefault(declared_fields(f), []).append(str(f))
    union = " UNION ALL ".join(f"({_read_sql(n, paths)})" for n, paths in sorted(groups.items()))
    columns = ", ".join(FIELDS_33)
    con.execute(
        f"COPY (SELECT {columns}, hour(time) AS hour, distro, dt FROM ({union}) "
        "WHERE date::VARCHAR = dt AND sc_status IS NOT NULL) "
        f"TO '{out_dir}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (distro, dt), OVERWRITE_OR_IGNORE)"
    )
    return con


def hourly_from_parquet(con: duckdb.DuckDBPyConnection, out_dir: Path) -> list[tuple]:
    """The hourly statistics (HOURLY_SQL) over the Parquet written by ingest_to_parquet."""
    con.execute(
        f"CREATE OR REPLACE VIEW logs AS SELECT * FROM read_parquet('{out_dir}/**/*.parquet', hive_partitioning=true)"
    )
    return con.execute(HOURLY_SQL).fetchall()
