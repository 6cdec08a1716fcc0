"""CloudFront log field names of both generations, declared once (no PySpark: the orchestrator's
file checks use them too)."""

from __future__ import annotations

import re

# The 33 CloudFront standard-log fields in their documented order (SPEC section 1). Older eras
# declare a prefix of this list (18, 23, 26 ... fields).
LOG_FIELDS: tuple[str, ...] = (
    "date", "time", "x-edge-location", "sc-bytes", "c-ip", "cs-method", "cs(Host)",
    "cs-uri-stem", "sc-status", "cs(Referer)", "cs(User-Agent)", "cs-uri-query", "cs(Cookie)",
    "x-edge-result-type", "x-edge-request-id", "x-host-header", "cs-protocol", "cs-bytes",
    "time-taken", "x-forwarded-for", "ssl-protocol", "ssl-cipher", "x-edge-response-result-type",
    "cs-protocol-version", "fle-status", "fle-encrypted-fields", "c-port", "time-to-first-byte",
    "x-edge-detailed-result-type", "sc-content-type", "sc-content-len", "sc-range-start",
    "sc-range-end",
)  # fmt: skip


# Fields that only standard logging v2 (CloudWatch vended logs) can deliver. `timestamp` is the
# request time in epoch seconds; it and `timestamp(ms)` stand in for `date`/`time` when a delivery
# leaves those out.
V2_FIELDS: tuple[str, ...] = (
    "timestamp", "timestamp(ms)", "c-country", "asn", "cache-behavior-path-pattern", "origin-fbl",
    "origin-lbl", "distribution-tenant-id", "connection-id",
)  # fmt: skip
ALL_FIELDS: tuple[str, ...] = LOG_FIELDS + V2_FIELDS
# v2's default field selection: what a headerless (`plain`) v2 file is assumed to hold.
V2_DEFAULT_FIELDS: tuple[str, ...] = LOG_FIELDS + ("c-country", "cache-behavior-path-pattern")


def snake(field: str) -> str:
    """`cs(User-Agent)` -> `cs_user_agent`, `x-edge-location` -> `x_edge_location`."""
    return field.replace("(", "_").replace(")", "").replace("-", "_").lower()


def mangle(field: str) -> str:
    """v2 Parquet column name: each run of other characters becomes `_`, a trailing `_` is dropped,
    case is kept (`cs(User-Agent)` -> `cs_User_Agent`, `timestamp(ms)` -> `timestamp_ms`)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", field).rstrip("_")


def field_delimiter(value: str) -> str:
    """The v2 text delimiter from a setting: one character, `tab` or `\\t` for a tab. Not a line
    break, `-` or `%` (CloudFront's empty and escape), a letter or a digit; ValueError otherwise."""
    value = "\t" if value in ("\\t", "tab", "TAB") else value
    if len(value) != 1 or value in "\n\r\0-%" or value.isalnum():
        raise ValueError(f"one character (not a letter, digit, '-', '%' or line break) or 'tab' (got {value!r})")
    return value
