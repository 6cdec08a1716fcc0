"""The reference engine: DuckDB doing cdnlake's ingest and hourly statistics on the same files.

Used by bench/run.py (speed) and by the tests (an independent computation of the statistics:
none of cdnlake's parsing code is used here).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import duckdb

FIELDS_33 = [
    "date", "time", "x_edge_location", "sc_bytes", "c_ip", "cs_method", "cs_host", "cs_uri_stem", "sc_status",
    "cs_referer", "cs_user_agent", "cs_uri_query", "cs_cookie", "x_edge_result_type", "x_edge_request_id",
    "x_host_header", "cs_protocol", "cs_bytes", "time_taken", "x_forwarded_for", "ssl_protocol", "ssl_cipher",
    "x_edge_response_result_type", "cs_protocol_version", "fle_status", "fle_encrypted_fields", "c_port",
    "time_to_first_byte", "x_edge_detailed_result_type", "sc_content_type", "sc_content_len", "sc_range_start",
    "sc_range_end",
]  # fmt: skip

HOURLY_SQL = """
SELECT dt, hour,
  count(*) AS request_count,
  count(*) FILTER (WHERE x_edge_response_result_type = 'Hit') AS hit_count,
  count(*) FILTER (WHERE x_edge_response_result_type = 'Miss') AS miss_count,
  count(*) FILTER (WHERE x_edge_response_result_type IN ('LimitExceeded','CapacityExceeded','Error')) AS error_count,
  count(*) FILTER (WHERE sc_status BETWEEN 200 AND 299 AND x_edge_result_type = 'Error') AS incomplete_count,
  count(*) FILTER (WHERE sc_status // 100 = 2) AS http2xx_count,
  count(*) FILTER (WHERE sc_status // 100 = 3) AS http3xx_count,
  count(*) FILTER (WHERE sc_status // 100 = 4) AS http4xx_count,
  count(*) FILTER (WHERE sc_status // 100 = 5) AS http5xx_count,
  coalesce(sum(sc_bytes), 0) AS bytes_requested,
  coalesce(sum(sc_bytes) FILTER (WHERE x_edge_response_result_type = 'Miss'), 0) AS bytes_missed
FROM logs GROUP BY dt, hour ORDER BY dt, hour
"""


def declared_fields(path: Path) -> int:
    """Field count of a file's first #Fields header (33 when there is none)."""
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("#Fields:"):
                return len(line.split(":", 1)[1].split())
            if not line.startswith("#"):
                break
    return 33


def _valid_lines_sql(n: int, listing: str) -> str:
    """Lines of files declaring the first n fields that pass the column count check, as columns."""
    cols = ", ".join(
        f"nullif(p[{i + 1}], '-') AS {name}" if i < n else f"NULL AS {name}" for i, name in enumerate(FIELDS_33)
    )
    return f"""
    SELECT {cols}, distro, file_dt FROM (
      SELECT string_split(line, chr(9)) AS p,
             regexp_extract(filename, '\\.(\\d{{4}}-\\d{{2}}-\\d{{2}})-\\d{{2}}\\.[^/]*\\.gz$', 1) AS file_dt,
             lower(regexp_extract(filename, '([A-Za-z0-9]+)\\.\\d{{4}}-\\d{{2}}-\\d{{2}}-\\d{{2}}\\.[^/]*\\.gz$', 1))
               AS distro
      FROM read_csv({listing}, columns={{'line': 'VARCHAR'}}, delim=chr(1), quote='', escape='',
                    header=false, filename=true, auto_detect=false)
      WHERE NOT starts_with(line, '#') AND line <> ''
    ) WHERE len(p) = {n} OR (len(p) = {n + 1} AND p[{n + 1}] = '')
    """


def load_valid_lines(con: duckdb.DuckDBPyConnection, files: list[Path]) -> None:
    """Create table `logs` with the lines cdnlake's rules accept, typed."""
    groups: dict[int, list[str]] = {}
    for f in files:
        groups.setdefault(declared_fields(f), []).append(str(f))
    union = " UNION ALL ".join(
        "(" + _valid_lines_sql(n, "[" + ", ".join(f"'{p}'" for p in paths) + "]") + ")"
        for n, paths in sorted(groups.items())
    )
    stamp = "try_strptime(date || ' ' || time, '%Y-%m-%d %H:%M:%S')"
    con.execute(f"""
    CREATE OR REPLACE TABLE logs AS
    SELECT distro, file_dt AS dt, {stamp} AS ts, hour({stamp}) AS hour,
           try_cast(sc_bytes AS BIGINT) AS sc_bytes, try_cast(sc_status AS INTEGER) AS sc_status,
           * EXCLUDE (distro, file_dt, sc_bytes, sc_status)
    FROM ({union})
    WHERE {stamp} IS NOT NULL AND date = file_dt
      AND (sc_bytes IS NULL OR coalesce(try_cast(sc_bytes AS BIGINT) >= 0, false))
      AND try_cast(sc_status AS INTEGER) IS NOT NULL
    """)


def hourly_statistics(files: list[Path], threads: int = 2) -> list[tuple]:
    """[(dt, hour, request_count, ..., bytes_missed)] over all distributions, by DuckDB."""
    con = duckdb.connect()
    con.execute(f"SET threads={threads}")
    con.execute("SET enable_progress_bar=false")
    load_valid_lines(con, files)
    return con.execute(HOURLY_SQL).fetchall()


def ingest_to_parquet(files: list[Path], out_dir: Path, threads: int = 2) -> duckdb.DuckDBPyConnection:
    """gz -> Parquet zstd partitioned by distro and dt (the reference for the ingest step)."""
    con = duckdb.connect()
    con.execute(f"SET threads={threads}")
    con.execute("SET enable_progress_bar=false")
    load_valid_lines(con, files)
    con.execute(
        f"COPY logs TO '{out_dir}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (distro, dt), OVERWRITE_OR_IGNORE)"
    )
    return con
