"""The files of one run under ``<reports>/<D>/`` (SPEC section 5)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from reporting.insights import daily_totals, insights_tables
from reporting.model import MEASURES, ReportData
from reporting.units import find_peak, peak_strings

# Exactly the header of the original system; downstream spreadsheets match on it.
CSV_COLUMNS: tuple[tuple[str, str], ...] = (
    ("DATE", "date"),
    ("TIME", "hour"),
    ("REQUEST_COUNT", "request_count"),
    ("HIT_COUNT", "hit_count"),
    ("MISS_COUNT", "miss_count"),
    ("ERROR_COUNT", "error_count"),
    ("INCOMPLETE_COUNT", "incomplete_count"),
    ("HTTP2XX_COUNT", "http2xx_count"),
    ("HTTP3XX_COUNT", "http3xx_count"),
    ("HTTP4XX_COUNT", "http4xx_count"),
    ("HTTP5XX_COUNT", "http5xx_count"),
    ("BYTES_REQUESTED", "bytes_requested"),
    ("BYTES_MISSED", "bytes_missed"),
)

CSV_NAME = "cdn_statistics.csv"
SUMMARY_NAME = "summary.json"
PDF_NAME = "cdn_report.pdf"


def statistics_csv(hourly: pd.DataFrame) -> str:
    """The 72-hour CSV: ordered by date and hour, integers only, ``\\n`` line endings."""
    ordered = hourly.assign(date=hourly["date"].astype(str)).sort_values(["date", "hour"], kind="stable")
    lines = [",".join(name for name, _ in CSV_COLUMNS)]
    numeric = [column for _, column in CSV_COLUMNS[1:]]
    # Formatting by hand (not DataFrame.to_csv) guarantees no "12.0" even if an upstream
    # join turned a column into float.
    for date, values in zip(ordered["date"], ordered[numeric].to_numpy(), strict=True):
        lines.append(",".join([date, *(str(int(v)) for v in values)]))
    return "\n".join(lines) + "\n"


def _measures_dict(row: pd.Series) -> dict[str, int]:
    return {m: int(row[m]) for m in MEASURES}


def summary_dict(data: ReportData) -> dict[str, Any]:
    """Machine-readable figures of the run (summary.json)."""
    days = {day: _measures_dict(row) for day, row in daily_totals(data.hourly).iterrows()}
    peak = find_peak(data.minute)
    per_distro = data.distro_daily.groupby(data.distro_daily["distro"].astype(str))[list(MEASURES)].sum()
    latest, previous = insights_tables(data.hourly, data.date)
    summary = {
        "date": data.date.isoformat(),
        "report_tz": data.report_tz,
        "distributions": list(data.distributions),
        "generated_at": data.generated_at.isoformat(),
        "days": days,
        "peak": peak,
        "peak_text": peak_strings(peak)[0],
        "distributions_totals": {d: _measures_dict(row) for d, row in per_distro.iterrows()},
        "quality": {k: int(v) for k, v in data.quality.items()},
        "insights": latest.as_records(),
        "insights_previous_day": previous.as_records(),
    }
    if data.ops is not None:  # alerts, late_files, usage (the daily flow's report)
        summary |= data.ops.summary() | {"morning": data.ops.morning(peak_strings(peak)[0])}
    if data.crosscheck is not None:  # only when the CloudWatch cross-check ran: older summaries unchanged
        table = data.crosscheck.table.astype(object).where(data.crosscheck.table.notna(), None)
        summary["crosscheck"] = {"threshold_pct": data.crosscheck.threshold_pct, "alerts": data.crosscheck.alerts,
                                 "table": table.to_dict(orient="records")}  # fmt: skip
    return summary


def summary_json(summary: dict[str, Any]) -> bytes:
    """summary.json's bytes: indented UTF-8 (Japanese stays readable), one trailing newline."""
    return (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def with_stage_seconds(summary: bytes, durations: dict[str, float], run_seconds: float) -> bytes:
    """summary.json with the seconds each stage took (`stage_seconds`, in stage order) and the run's.

    The report is written before the e-mail stage ends, so the flow adds these at the end of the
    run; a summary written by `cdnlake report` alone has neither key.
    """
    figures = json.loads(summary)
    figures["stage_seconds"] = {stage: round(float(s), 2) for stage, s in durations.items()}
    figures["run_seconds"] = round(float(run_seconds), 2)
    return summary_json(figures)


def _write_atomic(path: Path, payload: bytes) -> None:
    # A re-run must never leave a half-written report that the e-mail step would attach.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; reports are read by other users/services
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_outputs(data: ReportData, out_dir: Path, font_path: str | None = None) -> dict[str, Path]:
    """Write cdn_statistics.csv, summary.json and cdn_report.pdf; returns their paths by kind."""
    from reporting.pdf import build_pdf  # deferred: ReportLab is only needed for the PDF

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / CSV_NAME, "summary": out_dir / SUMMARY_NAME, "pdf": out_dir / PDF_NAME}
    _write_atomic(paths["csv"], statistics_csv(data.hourly).encode("utf-8"))
    _write_atomic(paths["summary"], summary_json(summary_dict(data)))
    _write_atomic(paths["pdf"], build_pdf(data, font_path=font_path))
    return paths
