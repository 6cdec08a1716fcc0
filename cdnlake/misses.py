"""`cdnlake analyze-misses`: run the association-rule job, then write its CSVs and report page."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from cdnlake import report_data
from cdnlake.runners.local import runner_for
from cdnlake.settings import Settings
from spark_jobs.params import MissesParams

RULE_COLUMNS = ["antecedent", "consequent", "support", "confidence", "lift", "count"]
TOP_COLUMNS = ["distro", "uri", "requests", "misses", "miss_ratio", "bytes_missed", "rank_by_misses", "rank_by_bytes"]


def misses_dir(settings: Settings, start: dt.date, end: dt.date) -> Path:
    return Path(settings.reports) / "misses" / f"{start.isoformat()}_{end.isoformat()}"


def _range_rows(settings: Settings, table: str, start: dt.date) -> Any:
    return report_data.read_table(settings.warehouse, table, [("range_start", "=", start.isoformat())])


def analyze_misses(
    settings: Settings,
    start: dt.date,
    end: dt.date,
    distributions: list[str] | None = None,
    sample_fraction: float | None = None,
    min_support: float | None = None,
    min_confidence: float | None = None,
) -> dict[str, Any]:
    chosen = {"sample_fraction": sample_fraction, "min_support": min_support, "min_confidence": min_confidence}
    params = MissesParams(start, end, settings.warehouse, tuple(distributions) if distributions else None,
                          **{k: v for k, v in chosen.items() if v is not None})  # fmt: skip
    result = runner_for(settings).run_job(params)
    folder = misses_dir(settings, start, end)
    folder.mkdir(parents=True, exist_ok=True)
    rules = _range_rows(settings, "miss_rules", start)
    rules = rules[rules["range_end"] == end.isoformat()] if not rules.empty else rules
    rules = rules.sort_values(["lift", "support"], ascending=[False, False]) if not rules.empty else rules
    rules.reindex(columns=RULE_COLUMNS).to_csv(folder / "miss_rules.csv", index=False)
    top = _range_rows(settings, "miss_top_objects", start)
    top = top[top["range_end"] == end.isoformat()].sort_values("rank_by_misses") if not top.empty else top
    top.reindex(columns=TOP_COLUMNS).to_csv(folder / "top_missed_objects.csv", index=False)
    edges = _range_rows(settings, "miss_edge_ratio", start)
    from reporting.misses import build_misses_pdf

    (folder / "miss_report.pdf").write_bytes(build_misses_pdf(start, end, rules, top, edges))
    return result | {"outputs": {p.name: str(p) for p in sorted(folder.iterdir())}}
