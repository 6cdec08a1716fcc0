"""Tokenizing standard logging v2 JSON-lines and Parquet deliveries into raw string columns.

JSON: one object per line, keys are the field names (`cs(User-Agent)`, `timestamp(ms)`), every
value a string, `-` for empty. Parquet: every column a string, names mangled (`cs_User_Agent`).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from spark_jobs.log_fields import ALL_FIELDS
from spark_jobs.text_tokens import decode_lines, normalise
from spark_jobs.tokens import Tokens, canonical_field, dash_to_null, empty_tokens, joined_lines

# v2 JSON keys are the field names exactly; every value is a string.
_JSON_SCHEMA = pa.schema([(f, pa.string()) for f in ALL_FIELDS])


def _json_fast(good: pa.Array) -> dict[str, pa.Array] | None:
    """All lines parsed by Arrow's JSON reader in one call; None if any line is not a flat object
    of strings (the per-line path then finds which)."""
    try:
        table = pa_json.read_json(
            io.BytesIO(joined_lines(good)),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=1 << 26),
            parse_options=pa_json.ParseOptions(explicit_schema=_JSON_SCHEMA, unexpected_field_behavior="ignore"),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if table.num_rows != len(good):
        return None
    columns = {f: table.column(f).combine_chunks() for f in ALL_FIELDS}
    return {f: dash_to_null(c) for f, c in columns.items() if c.null_count < len(good)}


def _json_problem(text: str) -> str | None:
    """Why a line is not a JSON object (None if it is one)."""
    try:
        record = json.loads(text)
    except ValueError as exc:
        return f"invalid JSON record: {exc.msg}"
    return None if isinstance(record, dict) else "invalid JSON record: not an object"


def _json_by_line(text: pa.Array) -> tuple[dict[str, pa.Array], list[str | None]]:
    """When Arrow's reader refuses the file: find the lines that are no JSON object (rejects), then
    read the others in one call again and spread the values back to their lines."""
    reasons = [_json_problem(t) for t in text.to_pylist()]
    ok = np.array([r is None for r in reasons], bool)
    columns = _json_fast(text.filter(pa.array(ok))) if ok.any() else {}
    if columns is None:  # objects, but not of strings: keep the lines, reject them as such
        return {}, [r or "invalid JSON record: values are not strings" for r in reasons]
    back = pa.array(np.cumsum(ok) - 1, pa.int64(), mask=~ok)
    return {f: c.take(back) for f, c in columns.items()}, reasons


def tokenize_json(raw: bytes, damaged: bool) -> Tokens:
    """Every non-blank line of a decompressed JSON-lines file."""
    raw = normalise(raw)
    texts, bad_utf8 = decode_lines(raw)
    if raw.endswith(b"\n"):
        texts.pop()
    keep = [i for i, t in enumerate(texts) if t.strip()]
    data = [texts[i] for i in keep]
    text = pa.array(data, pa.string())
    columns = _json_fast(text) if data else {}
    reasons: list[str | None] = [None] * len(data)
    if columns is None:
        columns, reasons = _json_by_line(text)
    for j, i in enumerate(keep):
        if i in bad_utf8:
            reasons[j] = "invalid UTF-8 bytes"
    if damaged and keep and keep[-1] == len(texts) - 1 and not raw.endswith(b"\n"):
        reasons[-1] = "incomplete last line of a damaged gzip"
    return Tokens(columns, text, np.asarray(keep, np.int64) + 1, reasons)


def tokenize_parquet(content: bytes) -> tuple[Tokens, str | None]:
    """Every row of a Parquet delivery (row n is "line" n); an unreadable file is damaged, 0 rows."""
    try:
        table = pq.read_table(pa.BufferReader(content))
    except (pa.ArrowException, OSError) as exc:
        return empty_tokens(), f"corrupt Parquet file: {exc}"
    columns: dict[str, pa.Array] = {}
    shown: list[pa.Array] = []
    for name in table.column_names:
        values = pc.cast(table.column(name).combine_chunks(), pa.string())
        shown.append(pc.fill_null(values, "-"))
        field = canonical_field(name)
        if field is not None and field not in columns:
            columns[field] = dash_to_null(values)
    n = table.num_rows
    # A rejected row is stored as its values tab-joined in the file's column order.
    text = pc.binary_join_element_wise(*shown, "\t") if shown else pa.array([""] * n, pa.string())
    return Tokens(columns, text, np.arange(1, n + 1, dtype=np.int64), [None] * n), None
