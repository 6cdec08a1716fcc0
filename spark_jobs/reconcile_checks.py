"""The checks of the data-quality reconciliation, Spark-free: the reconcile job and the flow share them.

(a) every measure of stats_hourly summed over the date equals the same measure computed on the
raw cdn_logs rows (RAW_TOTALS, written independently of the statistics' code); (b) the cdn_logs rows
equal sum(loaded) of ingest_files; (c) every file: lines_read = loaded + rejected.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

# Written again, as SQL text, instead of reusing spark_jobs.measures: a rule coded wrong once
# then shows up as a mismatch rather than agreeing with itself. Each expression sums over any
# grouping, so the aggregate job evaluates them per minute in its one scan (raw_totals_columns).
RAW_TOTALS: dict[str, str] = {
    "request_count": "count(*)",
    "hit_count": "count_if(x_edge_response_result_type = 'Hit')",
    "miss_count": "count_if(x_edge_response_result_type = 'Miss')",
    "refresh_hit_count": "count_if(x_edge_response_result_type = 'RefreshHit')",
    "error_count": "count_if(x_edge_response_result_type IN ('LimitExceeded', 'CapacityExceeded', 'Error'))",
    "incomplete_count": "count_if(sc_status >= 200 AND sc_status < 300 AND x_edge_result_type = 'Error')",
    "http2xx_count": "count_if(sc_status DIV 100 = 2)",
    "http3xx_count": "count_if(sc_status DIV 100 = 3)",
    "http4xx_count": "count_if(sc_status DIV 100 = 4)",
    "http5xx_count": "count_if(sc_status DIV 100 = 5)",
    "bytes_requested": "coalesce(sum(sc_bytes), 0)",
    "bytes_missed": "coalesce(sum(CASE WHEN x_edge_response_result_type = 'Miss' THEN sc_bytes END), 0)",
    "bytes_hit": "coalesce(sum(CASE WHEN x_edge_response_result_type = 'Hit' THEN sc_bytes END), 0)",
}
RAW_TOTALS_SQL = "SELECT " + ", ".join(f"{e} AS {m}" for m, e in RAW_TOTALS.items()) + " FROM {logs}"


class ReconciliationError(RuntimeError):
    """Statistics, raw rows and ingest accounting disagree; `mismatches` lists every difference."""

    def __init__(self, date: dt.date, mismatches: list[str]) -> None:
        self.date = date
        self.mismatches = mismatches
        lines = "\n".join(f"  - {m}" for m in mismatches)
        super().__init__(f"reconciliation of {date.isoformat()} failed ({len(mismatches)} mismatches):\n{lines}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Orchestrators pickle failures (task states, retries); the default would lose the arguments.
        return (type(self), (self.date, self.mismatches))


def compare_measures(stats: dict[str, int], raw: dict[str, int], date: dt.date) -> list[str]:
    if not stats:  # no statistics table yet: it must then have nothing to account for
        stats = dict.fromkeys(raw, 0)
    problems = [f"{m}: statistics {stats[m]} != raw rows {raw[m]} ({date})" for m in raw
                if m in stats and stats[m] != raw[m]]  # fmt: skip
    problems += [f"{m}: missing from stats_hourly ({date})" for m in raw if m not in stats]
    problems += [f"{m}: stats_hourly column with no raw-row check ({date})" for m in stats if m not in raw]
    return problems


def compare_accounting(files: list[dict[str, Any]], logs_rows: int, date: dt.date) -> list[str]:
    loaded = sum(f["loaded"] for f in files)
    problems = []
    if loaded != logs_rows:
        problems.append(f"loaded rows: cdn_logs {logs_rows} != ingest_files.loaded {loaded} ({date})")
    for f in sorted(files, key=lambda f: f["source_file"]):
        if f["lines_read"] != f["loaded"] + f["rejected"]:
            problems.append(f"{f['source_file']}: lines_read {f['lines_read']} != loaded {f['loaded']} "
                            f"+ rejected {f['rejected']} ({date})")  # fmt: skip
    return problems


def checked(date: dt.date, distributions: Sequence[str] | None, raw: dict[str, int], stats: dict[str, int],
            files: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """Checks (a)-(c) of `date`: the checked totals, or ReconciliationError listing every mismatch.
    `stats`: {} when there is no statistics table (it must then have nothing to account for)."""
    mismatches = compare_measures(stats, raw, date)
    mismatches += compare_accounting(files, raw["request_count"], date)
    if mismatches:
        raise ReconciliationError(date, mismatches)
    return {
        "date": date.isoformat(),
        "distributions": list(distributions) if distributions else None,
        "measures": raw,
        "cdn_logs_rows": raw["request_count"],
        "files": len(files),
        **{k: sum(f[k] for f in files) for k in ("lines_read", "loaded", "rejected")},
    }
