"""Vectorised parsing of one file's lines with Arrow compute (inside Spark's Python workers).

Spark SQL expressions for 33 fields, percent-decoding and per-field reject reasons grew into a
plan too large for whole-stage code generation (about 150 us a row, interpreted); the same work
as Arrow kernels over a whole file costs a few microseconds a row. Only the distinct
User-Agent/Referer values go through Python (for percent-decoding), never each row.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spark_jobs.schema import ALL_FIELDS, DECODED_FIELDS, FIELD_TYPES, snake
from spark_jobs.tokens import Tokens

_INT_RE = r"^-?[0-9]{1,18}$"
_FLOAT_RE = r"^-?[0-9]{1,18}(\.[0-9]+)?([eE][-+]?[0-9]{1,3})?$"
_DOUBLE_ESCAPE = re.compile(r"%25[0-9A-Fa-f]{2}")
_NON_NEGATIVE = ("sc-bytes", "cs-bytes", "time-taken", "sc-content-len")
_ARROW_TYPES = {"bigint": pa.int64(), "int": pa.int32(), "double": pa.float64()}


@lru_cache(maxsize=200_000)
def percent_decode(value: str) -> str:
    """Decode once; a second time only where `%25XX` (a double-encoded escape) was present.

    A literal `+` stays a `+` (CloudFront encodes spaces as %20); invalid escapes stay as they are.
    """
    once = unquote(value, errors="surrogateescape")
    if _DOUBLE_ESCAPE.search(value):
        once = unquote(once, errors="surrogateescape")
    return once.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _decode_column(values: pa.Array) -> pa.Array:
    """Percent-decode the distinct values only, then expand back to every row."""
    if values.null_count == len(values):
        return values
    encoded = pc.dictionary_encode(values)
    decoded = pa.array(
        [None if v is None else percent_decode(v) for v in encoded.dictionary.to_pylist()], pa.string()
    )
    return decoded.take(encoded.indices)


def _typed(raw: pa.Array, sql_type: str) -> tuple[pa.Array, np.ndarray]:
    """Cast where the text is a number; the second value marks present-but-invalid rows (1: not a
    number, 2: a number out of the field's range)."""
    if raw.null_count == len(raw):  # a field the file does not carry (v2-only fields in legacy files)
        return pa.nulls(len(raw), _ARROW_TYPES[sql_type]), np.zeros(len(raw), bool)
    if sql_type != "double" and (pc.max(pc.binary_length(raw)).as_py() or 0) <= 18:
        # Arrow's cast accepts exactly `-?[0-9]+`: with at most 18 characters that is _INT_RE, so a
        # column that casts whole needs no regex over every value (the common case).
        try:
            return pc.cast(raw, _ARROW_TYPES[sql_type]), np.zeros(len(raw), bool)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    valid = pc.match_substring_regex(raw, _FLOAT_RE if sql_type == "double" else _INT_RE)
    numbers = pc.if_else(valid, raw, pa.scalar(None, pa.string()))
    invalid = pc.and_(pc.is_valid(raw), pc.invert(pc.fill_null(valid, False))).to_numpy(zero_copy_only=False)
    if sql_type != "int":
        return pc.cast(numbers, _ARROW_TYPES[sql_type]), invalid
    # A number too large for a 32-bit field (sc-status, c-port) is that line's problem, not a
    # failed cast of the whole file.
    wide = pc.cast(numbers, pa.int64())
    fits = pc.and_(pc.greater_equal(wide, -(2**31)), pc.less_equal(wide, 2**31 - 1))
    too_large = pc.invert(pc.fill_null(fits, True)).to_numpy(zero_copy_only=False)
    return pc.cast(pc.if_else(fits, wide, None), pa.int32()), np.where(too_large, 2, invalid)


def _timestamps(by_name: dict[str, pa.Array]) -> pa.Array:
    """Request time: `date` + `time`, else `timestamp(ms)`, else `timestamp` (epoch seconds), which
    v2 deliveries carry when they leave date and time out."""
    ts = pc.strptime(
        pc.binary_join_element_wise(by_name["date"], by_name["time"], " "),
        format="%Y-%m-%d %H:%M:%S", unit="ms", error_is_null=True,
    )  # fmt: skip
    if ts.null_count and by_name["timestamp_ms"].null_count < len(ts):
        millis = by_name["timestamp_ms"]
        valid = pc.match_substring_regex(millis, r"^[0-9]{1,15}$")
        as_ms = pc.cast(pc.cast(pc.if_else(valid, millis, None), pa.int64()), pa.timestamp("ms"))
        ts = pc.coalesce(ts, as_ms)
    if ts.null_count and by_name["timestamp"].null_count < len(ts):
        seconds = by_name["timestamp"]
        valid = pc.match_substring_regex(seconds, r"^[0-9]{1,12}(\.[0-9]{1,9})?$")
        as_float = pc.cast(pc.if_else(valid, seconds, None), pa.float64())
        as_ms = pc.cast(pc.cast(pc.round(pc.multiply(as_float, 1000.0)), pa.int64()), pa.timestamp("ms"))
        ts = pc.coalesce(ts, as_ms)
    return pc.cast(ts, pa.timestamp("us"))


def parse_tokens(tokens: Tokens, file_date: str) -> dict[str, pa.Array]:
    """Typed columns (snake_case) plus `reason` for every line or record of one file."""
    n = len(tokens)
    by_name = {snake(f): tokens.columns.get(f, pa.nulls(n, pa.string())) for f in ALL_FIELDS}
    for field in DECODED_FIELDS:
        by_name[snake(field)] = _decode_column(by_name[snake(field)])
    out: dict[str, pa.Array] = {k: v for k, v in by_name.items() if k not in ("date", "time", "timestamp")}
    problems: list[tuple[np.ndarray, str, pa.Array | None]] = []
    ts = _timestamps(by_name)
    problems.append((~pc.is_valid(ts).to_numpy(zero_copy_only=False), "unparseable date/time", None))
    day = by_name["date"]
    # v2 without `date`: the day of the timestamp. Formatting every row's time is a third of the
    # typing cost, so only when some row has a time but no date (not lines rejected before typing).
    if day.null_count and pc.any(pc.and_(pc.is_null(day), pc.is_valid(ts))).as_py():
        day = pc.coalesce(day, pc.strftime(ts, format="%Y-%m-%d"))
    other_day = pc.fill_null(pc.not_equal(day, file_date), False).to_numpy(zero_copy_only=False)
    problems.append((other_day, f"date differs from the file name's date {file_date}", day))
    problems.append((~pc.is_valid(by_name["sc_status"]).to_numpy(zero_copy_only=False), "missing sc-status", None))
    for field, dtype in FIELD_TYPES.items():
        name = snake(field)
        out[name], invalid = _typed(by_name[name], dtype.simpleString())
        problems.append((invalid == 1, f"non-numeric {field}", by_name[name]))
        problems.append((invalid == 2, f"out-of-range {field}", by_name[name]))
        if field in _NON_NEGATIVE:
            negative = pc.fill_null(pc.less(out[name], 0), False).to_numpy(zero_copy_only=False)
            problems.append((negative, f"negative {field}", by_name[name]))
    out["ts"] = pc.cast(ts, pa.timestamp("us", tz="UTC"))
    out["hour"] = pc.cast(pc.hour(ts), pa.int32())
    status = out["sc_status"]
    in_range = pc.and_(pc.greater_equal(status, 100), pc.less(status, 600))
    out["status_class"] = pc.if_else(in_range, pc.cast(pc.divide(status, 100), pa.int32()), None)
    out["reason"] = _reasons(tokens.reasons, problems)
    return out


def _reasons(reader_reasons: list[str | None], problems: list[tuple[np.ndarray, str, pa.Array | None]]) -> pa.Array:
    """The first reason each line cannot be loaded (None for a good line), in precedence order."""
    reasons = list(reader_reasons)
    for mask, message, values in problems:
        for i in np.flatnonzero(mask):
            if reasons[i] is None:
                detail = f": {values[int(i)].as_py()!r}" if values is not None else ""
                reasons[i] = message + detail
    return pa.array(reasons, pa.string())
