"""The contract shared by the Spark jobs, the flows, the CLI and the report, without PySpark.

Table names and locations, the measures, the report window, the default date and the validators of
everything that reaches a path or a query (dates, distribution ids, locations). Importing this
module never imports PySpark: `cdnlake config`, `--help` and the report use it on machines (or in
processes) where Spark is not needed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

# ---------------------------------------------------------------- tables
TABLES: tuple[str, ...] = (
    "cdn_logs",
    "cdn_logs_rejects",
    "ingest_files",
    "stats_hourly",
    "stats_minute",
    "stats_top_lists",
    "miss_rules",
    "miss_top_objects",
    "miss_edge_ratio",
)

# The top lists of a report day, all in the one table stats_top_lists (a `list` column; one Delta
# commit a run instead of four, bench/RESULTS.md session 7): each list's columns under the report's
# names with their Delta types, declared once here (the Spark job writes them, the report reads them).
TOP_LISTS_TABLE = "stats_top_lists"
TOP_LIST_COLUMNS: dict[str, str] = {
    "top_objects": (
        "rank INT, distro STRING, uri STRING, requests BIGINT, hits BIGINT, misses BIGINT, hit_ratio DOUBLE, "
        "bytes BIGINT, bytes_missed BIGINT, incomplete BIGINT, http2xx BIGINT, http3xx BIGINT, http4xx BIGINT, "
        "http5xx BIGINT"
    ),
    "top_referrers": "rank INT, referrer_domain STRING, requests BIGINT, bytes BIGINT",
    "edge_locations": "rank INT, edge_location STRING, requests BIGINT, bytes BIGINT, hit_ratio DOUBLE",
    "viewers": "dimension STRING, rank INT, value STRING, requests BIGINT, bytes BIGINT",
}
# Where each list lived before: a table per list. No longer written; an older warehouse keeps them,
# and the report still reads a day from them when stats_top_lists has no row of that day.
LEGACY_TOP_LIST_TABLES: dict[str, str] = {name: f"stats_{name}" for name in TOP_LIST_COLUMNS}

# The per-hour measures of SPEC section 3 in the column order of cdn_statistics.csv, plus refresh
# hits (the report derives ratios from them). stats_hourly stores these and `bytes_hit`.
MEASURES: tuple[str, ...] = (
    "request_count", "hit_count", "miss_count", "refresh_hit_count", "error_count",
    "incomplete_count", "http2xx_count", "http3xx_count", "http4xx_count", "http5xx_count",
    "bytes_requested", "bytes_missed",
)  # fmt: skip


def to_hadoop_uri(uri: str) -> str:
    """`s3://bucket/x` -> `s3a://bucket/x` (the connector Spark ships); local paths unchanged."""
    return "s3a://" + uri[len("s3://") :] if uri.startswith("s3://") else uri


def table_path(warehouse: str, table: str) -> str:
    """Where a table lives under the warehouse root, as Spark (Hadoop) addresses it."""
    if table not in TABLES and table not in LEGACY_TOP_LIST_TABLES.values():
        raise ValueError(f"unknown table {table!r}; known tables: {', '.join(TABLES)}")
    return to_hadoop_uri(warehouse.rstrip("/")) + "/" + table


# ---------------------------------------------------------------- dates
# The report covers the 72 hours ending at the end of day D: D-2, D-1 and D (SPEC section 5).
REPORT_WINDOW_DAYS = 3


def report_window(date: dt.date) -> list[dt.date]:
    """The days of the report for `date`, oldest first: [D-2, D-1, D]."""
    return [date - dt.timedelta(days=i) for i in range(REPORT_WINDOW_DAYS - 1, -1, -1)]


def default_date(report_tz: str, now: dt.datetime | None = None) -> dt.date:
    """The date every command and flow uses when none is given: yesterday in the report time zone.

    The daily schedule fires in the morning of the report time zone; its yesterday is the last
    complete day there. One meaning everywhere (`run`, `ingest`, `report`, `crosscheck`, flows).
    """
    current = (now or dt.datetime.now(dt.UTC)).astimezone(ZoneInfo(report_tz))
    return current.date() - dt.timedelta(days=1)


# ---------------------------------------------------------------- validators
DISTRO_RE = re.compile(r"^[a-z0-9]{1,64}$")
_SCHEMES = ("", "file", "s3", "s3a")
_FORBIDDEN = set("'\"\\\n\r\t\0;")


def iso_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def date_list(value: str) -> list[dt.date]:
    """Comma-separated UTC dates (YYYY-MM-DD)."""
    return [iso_date(v.strip()) for v in value.split(",") if v.strip()]


def distro_list(value: str) -> list[str]:
    """Comma-separated distribution ids, lower-cased; only letters and digits are allowed."""
    ids = [v.strip().lower() for v in value.split(",") if v.strip()]
    for v in ids:
        if not DISTRO_RE.match(v):
            raise argparse.ArgumentTypeError(f"not a CloudFront distribution id: {v!r}")
    return ids


def location(value: str) -> str:
    """A local path or s3:// / s3a:// URI, without quotes, spaces or parent-directory hops."""
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if not value or scheme not in _SCHEMES or _FORBIDDEN & set(value) or ".." in value.split("/"):
        raise argparse.ArgumentTypeError(f"not an acceptable location: {value!r}")
    return value


def _distros_clause(distros: Sequence[str] | None, prefix: str) -> str:
    if not distros:
        return ""
    for d in distros:
        if not DISTRO_RE.match(d):
            raise ValueError(f"not a CloudFront distribution id: {d!r}")
    return f" AND {prefix}distro IN (" + ", ".join(f"'{d}'" for d in distros) + ")"


def partition_predicate(date: dt.date, distros: Sequence[str] | None) -> str:
    """SQL predicate on the (distro, dt) partitions; inputs are validated, never free text."""
    return f"dt = '{date.isoformat()}'" + _distros_clause(distros, "")


def partitions_predicate(partitions: Mapping[dt.date, Sequence[str] | None], prefix: str = "") -> str:
    """SQL predicate on the (distro, dt) partitions of several dates, each with its own distros
    (None: every distro of that date): `dt IN (...) [AND distro IN (...)]` per set of distros,
    joined by OR. `prefix`: a table alias with its dot (`t.`). Validated values only."""
    if not partitions:
        raise ValueError("no partitions: a predicate over no dates would match nothing or everything")
    by_distros: dict[tuple[str, ...], list[dt.date]] = {}
    for date, distros in partitions.items():
        by_distros.setdefault(tuple(sorted(distros or ())), []).append(date)
    clauses = [f"{prefix}dt IN (" + ", ".join(f"'{d.isoformat()}'" for d in sorted(dates)) + ")"
               + _distros_clause(distros, prefix) for distros, dates in sorted(by_distros.items())]  # fmt: skip
    return clauses[0] if len(clauses) == 1 else " OR ".join(f"({c})" for c in clauses)
