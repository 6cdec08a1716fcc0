"""`cdnlake analyze-misses`: run the association-rule job, then write its CSVs and report page."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cdnlake import report_data
from cdnlake.report_data import Warehouse
from cdnlake.services import Services
from spark_jobs.params import MissesParams

RULE_COLUMNS = ["antecedent", "consequent", "support", "confidence", "lift", "count"]
TOP_COLUMNS = ["distro", "uri", "requests", "misses", "miss_ratio", "bytes_missed", "rank_by_misses", "rank_by_bytes"]


def misses_prefix(start: dt.date, end: dt.date) -> str:
    """Where a range's outputs go in the reports store."""
    return f"misses/{start.isoformat()}_{end.isoformat()}"


def _range_rows(warehouse: Warehouse, table: str, start: dt.date) -> Any:
    return report_data.read_table(warehouse, table, [("range_start", "=", start.isoformat())])


def analyze_misses(
    services: Services,
    start: dt.date,
    end: dt.date,
    distributions: list[str] | None = None,
    sample_fraction: float | None = None,
    min_support: float | None = None,
    min_confidence: float | None = None,
) -> dict[str, Any]:
    chosen = {"sample_fraction": sample_fraction, "min_support": min_support, "min_confidence": min_confidence}
    params = MissesParams(start, end, services.settings.warehouse, tuple(distributions) if distributions else None,
                          **{k: v for k, v in chosen.items() if v is not None})  # fmt: skip
    result = services.runner.run_job(params)
    store, prefix = services.reports, misses_prefix(start, end)
    rules = _range_rows(services.warehouse, "miss_rules", start)
    rules = rules[rules["range_end"] == end.isoformat()] if not rules.empty else rules
    rules = rules.sort_values(["lift", "support"], ascending=[False, False]) if not rules.empty else rules
    store.write(f"{prefix}/miss_rules.csv", rules.reindex(columns=RULE_COLUMNS).to_csv(index=False).encode())
    top = _range_rows(services.warehouse, "miss_top_objects", start)
    top = top[top["range_end"] == end.isoformat()].sort_values("rank_by_misses") if not top.empty else top
    store.write(f"{prefix}/top_missed_objects.csv", top.reindex(columns=TOP_COLUMNS).to_csv(index=False).encode())
    edges = _range_rows(services.warehouse, "miss_edge_ratio", start)
    from reporting.misses import build_misses_pdf

    store.write(f"{prefix}/miss_report.pdf", build_misses_pdf(start, end, rules, top, edges))
    return result | {"outputs": {key.rsplit("/", 1)[1]: store.uri(key) for key in store.list(prefix)}}
