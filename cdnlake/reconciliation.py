"""The reconcile stage without a Spark job: the written tables against the aggregate's raw totals.

The aggregate job evaluates reconciliation's own raw-row rules (spark_jobs/reconcile_checks.py,
written apart from the statistics' code) in its one scan of cdn_logs and returns them per date.
Here the statistics as written (stats_hourly) and the ingest's accounting (ingest_files) are read
back with delta-rs, a second reader, and the same checks as the reconcile job's are applied: a
wrong rule, a lost or doubled write, or an accounting gap still stops the run. Without raw totals
(a job run alone, `cdnlake` commands) the reconcile job reads everything itself, as before.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pandas as pd

from cdnlake.report_data import Warehouse, read_table
from spark_jobs.reconcile_checks import checked

_STATS_KEYS = ("distro", "dt", "hour")
_ACCOUNTING = ("source_file", "lines_read", "loaded", "rejected")


def _of(frame: pd.DataFrame, distributions: Sequence[str] | None) -> pd.DataFrame:
    return frame[frame["distro"].isin(list(distributions))] if distributions and len(frame.columns) else frame


def written_stats_totals(warehouse: str | Warehouse, date: dt.date,
                         distributions: Sequence[str] | None) -> dict[str, int]:  # fmt: skip
    """Each stats_hourly measure summed over the date's rows as stored ({} when there is no table)."""
    stats = _of(read_table(warehouse, "stats_hourly", [("dt", "=", date.isoformat())]), distributions)
    return {c: int(stats[c].sum()) for c in stats.columns if c not in _STATS_KEYS}


def written_accounting(warehouse: str | Warehouse, date: dt.date,
                       distributions: Sequence[str] | None) -> list[dict[str, Any]]:  # fmt: skip
    files = _of(read_table(warehouse, "ingest_files", [("dt", "=", date.isoformat())]), distributions)
    if files.empty:
        return []
    return [{k: (str(r[k]) if k == "source_file" else int(r[k])) for k in _ACCOUNTING}
            for r in files[list(_ACCOUNTING)].to_dict("records")]  # fmt: skip


def reconcile_written(warehouse: str | Warehouse, date: dt.date, distributions: Sequence[str] | None,
                      raw: dict[str, int]) -> dict[str, Any]:  # fmt: skip
    """Checks (a)-(c) of `date` against `raw` (the aggregate job's totals of that date); raises
    spark_jobs.reconcile_checks.ReconciliationError listing every mismatch."""
    stats = written_stats_totals(warehouse, date, distributions)
    files = written_accounting(warehouse, date, distributions)
    return checked(date, distributions, dict(raw), stats, files) | {"raw_totals_from": "aggregate scan"}
