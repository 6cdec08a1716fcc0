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

from spark_jobs.schema import DECODED_FIELDS, FIELD_TYPES, LOG_FIELDS, N_FIELDS, snake

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
    encoded = pc.dictionary_encode(values)
    decoded = pa.array(
        [None if v is None else percent_decode(v) for v in encoded.dictionary.to_pylist()], pa.string()
    )
    return decoded.take(encoded.indices)


def _field_columns(lines: pa.Array, declared: np.ndarray) -> tuple[list[pa.Array], np.ndarray]:
    """Canonical field i for every line (NULL if undeclared or `-`) and the column-count check."""
    parts = pc.split_pattern(lines, "\t")
    flat = parts.flatten()
    offsets = parts.offsets.to_numpy()
    starts, counts = offsets[:-1], np.diff(offsets)
    last = flat.take(pa.array(offsets[1:] - 1)).to_numpy(zero_copy_only=False)
    count_ok = (counts == declared) | ((counts == declared + 1) & (last == ""))
    columns = []
    for i in range(N_FIELDS):
        present = (i < declared) & (i < counts)
        taken = flat.take(pa.array(np.where(present, starts + i, 0)))
        keep = pc.and_(pa.array(present), pc.not_equal(taken, "-"))
        columns.append(pc.if_else(keep, taken, pa.scalar(None, pa.string())))
    return columns, count_ok


def _typed(raw: pa.Array, sql_type: str) -> tuple[pa.Array, np.ndarray]:
    """Cast where the text is a number; second value marks present-but-invalid rows."""
    valid = pc.match_substring_regex(raw, _FLOAT_RE if sql_type == "double" else _INT_RE)
    cast = pc.cast(pc.if_else(valid, raw, pa.scalar(None, pa.string())), _ARROW_TYPES[sql_type])
    invalid = pc.and_(pc.is_valid(raw), pc.invert(pc.fill_null(valid, False)))
    return cast, invalid.to_numpy(zero_copy_only=False)


def parse_file_lines(
    lines: list[str], n_fields: list[int], reader_reasons: list[str | None], file_date: str
) -> dict[str, pa.Array]:
    """Typed columns (snake_case) plus `reason` for every line of one file."""
    declared = np.asarray(n_fields, dtype=np.int64)
    text = pa.array(lines, pa.string())
    raw, count_ok = _field_columns(text, declared)
    by_name = {snake(f): raw[i] for i, f in enumerate(LOG_FIELDS)}
    for field in DECODED_FIELDS:
        by_name[snake(field)] = _decode_column(by_name[snake(field)])
    out: dict[str, pa.Array] = {k: v for k, v in by_name.items() if k not in ("date", "time")}
    problems: list[tuple[np.ndarray, str, pa.Array | None]] = []
    ts = pc.strptime(
        pc.binary_join_element_wise(by_name["date"], by_name["time"], " "),
        format="%Y-%m-%d %H:%M:%S", unit="us", error_is_null=True,
    )  # fmt: skip
    problems.append((~pc.is_valid(ts).to_numpy(zero_copy_only=False), "unparseable date/time", None))
    other_day = pc.fill_null(pc.not_equal(by_name["date"], file_date), False).to_numpy(zero_copy_only=False)
    problems.append((other_day, f"date differs from the file name's date {file_date}", by_name["date"]))
    problems.append((~pc.is_valid(by_name["sc_status"]).to_numpy(zero_copy_only=False), "missing sc-status", None))
    for field, dtype in FIELD_TYPES.items():
        name = snake(field)
        out[name], invalid = _typed(by_name[name], dtype.simpleString())
        problems.append((invalid, f"non-numeric {field}", by_name[name]))
        if field in _NON_NEGATIVE:
            negative = pc.fill_null(pc.less(out[name], 0), False).to_numpy(zero_copy_only=False)
            problems.append((negative, f"negative {field}", by_name[name]))
    out["ts"] = pc.cast(ts, pa.timestamp("us", tz="UTC"))
    out["hour"] = pc.cast(pc.hour(ts), pa.int32())
    status = out["sc_status"]
    in_range = pc.and_(pc.greater_equal(status, 100), pc.less(status, 600))
    out["status_class"] = pc.if_else(in_range, pc.cast(pc.divide(status, 100), pa.int32()), None)
    out["reason"] = _reasons(reader_reasons, count_ok, declared, problems, text)
    return out


def _reasons(
    reader_reasons: list[str | None],
    count_ok: np.ndarray,
    declared: np.ndarray,
    problems: list[tuple[np.ndarray, str, pa.Array | None]],
    text: pa.Array,
) -> pa.Array:
    """The first reason each line cannot be loaded (None for a good line), in precedence order."""
    reasons = list(reader_reasons)
    counts = pc.list_value_length(pc.split_pattern(text, "\t")).to_numpy() if not count_ok.all() else None
    for i in np.flatnonzero(~count_ok):
        if reasons[i] is None and counts is not None:
            reasons[i] = f"column count check: header declares {declared[i]} fields, line has {counts[i]}"
    for mask, message, values in problems:
        for i in np.flatnonzero(mask):
            if reasons[i] is None:
                detail = f": {values[int(i)].as_py()!r}" if values is not None else ""
                reasons[i] = message + detail
    return pa.array(reasons, pa.string())
