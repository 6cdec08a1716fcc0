"""Units and number formatting shared by the PDF, the e-mail and summary.json.

SPEC section 3: GB is 2**30 bytes everywhere and Gbps = GB x 8 / 60 (a minute's bytes spread over
60 seconds), exactly as the original reports computed it, so that figures stay comparable with
years of past e-mails.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

GB = 2**30
SECONDS_PER_MINUTE = 60


def to_gb(num_bytes: float) -> float:
    return float(num_bytes) / GB


def minute_gbps(bytes_in_minute: float) -> float:
    """Average bandwidth of one minute in Gbps, with the report's GB (2**30 bytes)."""
    return to_gb(bytes_in_minute) * 8 / SECONDS_PER_MINUTE


def minute_label(minute: int) -> str:
    """Minute of day 0..1439 -> ``HH:MM``."""
    if not 0 <= int(minute) < 1440:
        raise ValueError(f"minute of day out of range: {minute}")
    hours, minutes = divmod(int(minute), 60)
    return f"{hours:02d}:{minutes:02d}"


def format_peak(bytes_in_minute: int, minute: int) -> str:
    """PDF form: ``298.96 GB (39.86Gbps) at 13:37``."""
    gb, gbps = to_gb(bytes_in_minute), minute_gbps(bytes_in_minute)
    return f"{gb:.2f} GB ({gbps:.2f}Gbps) at {minute_label(minute)}"


def format_peak_email(bytes_in_minute: int, minute: int) -> str:
    """E-mail form, without the space before GB as the original e-mail wrote it."""
    gb, gbps = to_gb(bytes_in_minute), minute_gbps(bytes_in_minute)
    return f"{gb:.2f}GB ({gbps:.2f}Gbps) at {minute_label(minute)}"


def find_peak(minute_df: pd.DataFrame) -> dict[str, Any]:
    """The minute with the most bytes; the earliest minute wins a tie.

    Returns exactly ``{"time": "HH:MM", "bytes": int, "gb": float, "gbps": float}`` (the
    summary.json contract of SPEC section 5);
    an all-zero day yields 00:00 with zeros rather than an error, so a quiet day still reports.
    """
    if minute_df.empty:
        raise ValueError("minute frame is empty: no peak can be computed")
    ordered = minute_df.sort_values("minute", kind="stable")
    values = ordered["bytes"].to_numpy()
    # argmax returns the first maximal position: with rows sorted by minute that is the earliest.
    pos = int(values.argmax())
    minute = int(ordered["minute"].iloc[pos])
    peak_bytes = int(values[pos])
    return {
        "time": minute_label(minute),
        "bytes": peak_bytes,
        "gb": round(to_gb(peak_bytes), 2),
        "gbps": round(minute_gbps(peak_bytes), 2),
    }


def peak_strings(peak: dict[str, Any]) -> tuple[str, str]:
    """(PDF form, e-mail form) of a :func:`find_peak` result."""
    hours, minutes = (int(part) for part in str(peak["time"]).split(":"))
    minute = hours * 60 + minutes
    return format_peak(peak["bytes"], minute), format_peak_email(peak["bytes"], minute)


def fmt_int(value: float) -> str:
    """Thousands separators, no decimals: ``1,234,567``."""
    return f"{int(round(float(value))):,}"


def fmt_millions(value: float) -> str:
    return f"{float(value) / 1e6:.2f}"


def fmt_thousands(value: float) -> str:
    return f"{float(value) / 1e3:.2f}"


def fmt_gb(num_bytes: float, separators: bool = True) -> str:
    return f"{to_gb(num_bytes):,.2f}" if separators else f"{to_gb(num_bytes):.2f}"


def fmt_human_count(value: float) -> str:
    """Compact count for tables: ``258.92 M``, ``90.26 K``, ``999``."""
    value = float(value)
    if abs(value) >= 1e6:
        return f"{value / 1e6:,.2f} M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:,.2f} K"
    return fmt_int(value)


def fmt_percent(ratio: float | None, decimals: int = 1) -> str:
    """Ratio 0..1 -> ``97.5%``; NaN/None (no requests) -> ``n/a``."""
    if ratio is None or (isinstance(ratio, float) and math.isnan(ratio)):
        return "n/a"
    return f"{float(ratio) * 100:.{decimals}f}%"


def count_scale(max_value: float) -> tuple[float, str]:
    """Divisor and suffix so that chart axes show readable numbers (M, K or plain)."""
    if max_value >= 1e6:
        return 1e6, "M"
    if max_value >= 1e4:
        return 1e3, "K"
    return 1.0, ""
