"""What every file format is reduced to before typing: raw string columns by field name.

Text (legacy and v2 w3c/plain), JSON lines and Parquet deliveries each become `Tokens`; one typing
step (spark_jobs/arrow_parse.py) turns them into cdn_logs columns, so every format is typed,
checked and rejected by the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spark_jobs.log_fields import ALL_FIELDS, mangle


@dataclass
class Tokens:
    """One file's data lines (or records).

    `columns` maps field names of ALL_FIELDS to string arrays (NULL for `-`, for a field the line's
    header does not declare, or for a line that failed the column count); fields no part of the file
    declares are absent. `text` is each line's raw text (kept for rejects), `reasons` the reader's
    reject reason per line (None while the line is good so far).
    """

    columns: dict[str, pa.Array]
    text: pa.Array | pa.ChunkedArray
    line_numbers: np.ndarray
    reasons: list[str | None]

    def __len__(self) -> int:
        return len(self.text)


def empty_tokens() -> Tokens:
    return Tokens({}, pa.array([], pa.string()), np.zeros(0, np.int64), [])


def _lookup() -> dict[str, str]:
    """Field name as written by any format (exact, Parquet-mangled, any case) -> ALL_FIELDS name."""
    names: dict[str, str] = {}
    for field in ALL_FIELDS:
        for alias in (field, mangle(field), field.lower(), mangle(field).lower()):
            names.setdefault(alias, field)
    return names


_FIELD_BY_NAME = _lookup()


def canonical_field(name: str) -> str | None:
    """The ALL_FIELDS name a column or key stands for; None for a field cdnlake does not know."""
    return _FIELD_BY_NAME.get(name) or _FIELD_BY_NAME.get(name.lower())


def dash_to_null(values: pa.Array) -> pa.Array:
    """`-` (CloudFront's empty) becomes NULL."""
    return pc.if_else(pc.equal(values, "-"), pa.scalar(None, pa.string()), values)


def concat_columns(parts: list[tuple[int, dict[str, pa.Array]]]) -> dict[str, pa.Array]:
    """Join per-segment columns (segment length, columns) into whole-file columns, NULL-filling a
    field in the segments that do not declare it."""
    fields = [f for f in ALL_FIELDS if any(f in cols for _, cols in parts)]
    out = {}
    for field in fields:
        chunks = [cols.get(field, pa.nulls(n, pa.string())) for n, cols in parts]
        out[field] = pa.concat_arrays(chunks) if len(chunks) != 1 else chunks[0]
    return out


def joined_lines(lines: pa.Array) -> pa.Buffer:
    """The lines as one newline-separated buffer (input for Arrow's CSV and JSON readers)."""
    as_list = pa.ListArray.from_arrays(pa.array([0, len(lines)], pa.int32()), lines)
    return pc.binary_join(as_list, "\n")[0].as_buffer()
