"""Tokenizing text logs (legacy, v2 w3c and plain) into raw string columns.

A file is a run of segments, each under the `#Fields:` header seen last (none: the legacy 33-field
order, or v2's default selection when the first line has that many fields). A segment's lines
whose field count fits its header are tokenized in one call of Arrow's C++ CSV reader (delimiter,
no quoting, `-` as NULL); the rest are rejects with the column count. That replaces splitting
every line and taking each field from the pieces (about 100 Arrow calls a file).
"""

from __future__ import annotations

import io
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from spark_jobs.log_fields import LOG_FIELDS, V2_DEFAULT_FIELDS
from spark_jobs.tokens import Tokens, canonical_field, concat_columns, dash_to_null, joined_lines

_BOM = b"\xef\xbb\xbf"


def normalise(raw: bytes) -> bytes:
    """CRLF line ends become LF; a UTF-8 byte order mark (at the start of a file or of a
    concatenated part) is dropped: neither is data."""
    # find() of one byte is a memchr; searching for the two- or three-byte sequences is several
    # times slower, and almost every file has neither.
    if raw.find(b"\r") >= 0 and b"\r\n" in raw:
        raw = raw.replace(b"\r\n", b"\n")
    if raw.find(b"\xef") >= 0 and _BOM in raw:
        raw = raw.removeprefix(_BOM).replace(b"\n" + _BOM, b"\n")
    return raw


def line_array(raw: bytes) -> tuple[pa.Array, set[int]]:
    """The lines as an Arrow array (split in C++, no Python string per line) and the indexes of
    lines that are not valid UTF-8; the empty string after a final newline is not a line."""
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if len(raw) < 2**31 - 1:  # an Arrow string array holds up to 2 GiB
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return pc.split_pattern(pa.array([text], pa.string()), "\n").flatten(), set()
    texts, bad = decode_lines(raw)
    return pa.array(texts, pa.string()), bad


def decode_lines(raw: bytes) -> tuple[list[str], set[int]]:
    """Split into lines; return the indexes of lines that are not valid UTF-8."""
    try:
        return raw.decode("utf-8").split("\n"), set()
    except UnicodeDecodeError:
        pass
    lines: list[str] = []
    bad: set[int] = set()
    for i, chunk in enumerate(raw.split(b"\n")):
        try:
            lines.append(chunk.decode("utf-8"))
        except UnicodeDecodeError:
            # backslashreplace keeps every byte visible in the rejects table: nothing is lost.
            lines.append(chunk.decode("utf-8", "backslashreplace"))
            bad.add(i)
    return lines, bad


def header_fields(header: str, delimiter: str) -> tuple[str, ...]:
    """Names of a `#Fields:` line, separated by any whitespace (or the data delimiter)."""
    return tuple(n for n in re.split(r"[\s" + re.escape(delimiter) + r"]+", header.split(":", 1)[1]) if n)


def _read_fields(good: pa.Array, count: int, delimiter: str, invalid: list[tuple[int, int, str]] | None) -> pa.Table:
    """Arrow's C++ CSV reader over the lines (delimiter, no quoting, `-` as NULL), `count` fields
    each. With `invalid` a list, lines of another field count are skipped and recorded there as
    (index, fields, text); else such a line raises ArrowInvalid."""
    positions = [f"c{i}" for i in range(count)]

    def skip(row: pa_csv.InvalidRow) -> str:
        invalid.append((row.number - 1, row.actual_columns, row.text))  # type: ignore[union-attr]
        return "skip"

    return pa_csv.read_csv(
        io.BytesIO(joined_lines(good)),
        read_options=pa_csv.ReadOptions(column_names=positions, use_threads=False, block_size=1 << 26),
        parse_options=pa_csv.ParseOptions(delimiter=delimiter, quote_char=False, double_quote=False,
                                          escape_char=False, newlines_in_values=False, ignore_empty_lines=False,
                                          invalid_row_handler=skip if invalid is not None else None),
        convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(positions, pa.string()),
                                              null_values=["-"], strings_can_be_null=True),
    )  # fmt: skip


def _csv_columns(good: pa.Array, names: tuple[str, ...], delimiter: str) -> list[pa.Array] | None:
    """The fields of lines that all have len(names) fields, by position; None if Arrow's reader
    sees the text differently (a stray carriage return inside a value ends a CSV row)."""
    try:
        table = _read_fields(good, len(names), delimiter, None)
    except pa.ArrowInvalid:
        return None
    if table.num_rows != len(good):
        return None
    return [table.column(i).combine_chunks() for i in range(len(names))]


def _fast_segment(lines: pa.Array, names: tuple[str, ...], delimiter: str) -> tuple[list[pa.Array], np.ndarray,
                                                                                   dict[int, int]] | None:
    """One read of the segment, lines of a wrong field count skipped by the reader itself: no
    count of every line's delimiters, no copy of the good lines. Returns the columns of the
    tokenized lines (line order), which lines they are, and {line: field count} of the others;
    None when the reader's rows cannot be matched to the lines (the careful path then runs)."""
    declared, invalid = len(names), []  # type: ignore[var-annotated]
    try:
        table = _read_fields(lines, declared, delimiter, invalid)
    except pa.ArrowInvalid:
        return None
    if table.num_rows + len(invalid) != len(lines) or any(not 0 <= i < len(lines) for i, _, _ in invalid):
        return None
    ok = np.ones(len(lines), bool)
    ok[[i for i, _, _ in invalid]] = False
    columns = [table.column(i).combine_chunks() for i in range(declared)]
    extra = [(i, text) for i, count, text in invalid if count == declared + 1 and text.endswith(delimiter)]
    if extra:  # one more field, empty (AWS's own example): tokenized apart, then put in line order
        trimmed = pa.array([text[: -len(delimiter)] for _, text in extra], pa.string())
        order = np.argsort(np.concatenate([np.flatnonzero(ok), [i for i, _ in extra]]), kind="stable")
        parts = _split_columns(trimmed, names, delimiter)
        columns = [pa.concat_arrays([c, p]).take(pa.array(order)) for c, p in zip(columns, parts, strict=True)]
        ok[[i for i, _ in extra]] = True
    return columns, ok, {i: count for i, count, _ in invalid if not ok[i]}


def _split_columns(good: pa.Array, names: tuple[str, ...], delimiter: str) -> list[pa.Array]:
    """The same as _csv_columns by splitting each line (the slow, always-correct way)."""
    parts = pc.split_pattern(good, delimiter)
    flat, starts = parts.flatten(), parts.offsets.to_numpy()[:-1]
    return [dash_to_null(flat.take(pa.array(starts + i))) for i in range(len(names))]


def tokenize_segment(
    lines: pa.Array, names: tuple[str, ...], delimiter: str, skip: np.ndarray
) -> tuple[dict[str, pa.Array], list[str | None]]:
    """Columns by field name for one segment's lines and each line's column-count reason.

    A line must have as many fields as the header declares, or one more if that one is empty.
    Lines marked in `skip` (already rejected by the reader) are not tokenized.
    """
    declared = len(names)
    fast = None if skip.any() else _fast_segment(lines, names, delimiter)
    if fast is not None:
        columns, ok, counts = fast
    else:
        columns, ok, counts = _careful_segment(lines, names, delimiter, skip)
    # Back to one value per line of the segment: NULL where the line was not tokenized.
    back = pa.array(np.cumsum(ok) - 1, pa.int64(), mask=~ok)
    by_field: dict[str, pa.Array] = {}
    for name, column in zip(names, columns, strict=False):
        field = canonical_field(name)
        if field is not None and field not in by_field:
            by_field[field] = column.take(back) if not ok.all() else column
    if not ok.any():
        by_field = {f: pa.nulls(len(lines), pa.string()) for f in filter(None, map(canonical_field, names))}
    reasons: list[str | None] = [None] * len(lines)
    for i, count in counts.items():
        reasons[i] = f"column count check: header declares {declared} fields, line has {count}"
    return by_field, reasons


def _careful_segment(lines: pa.Array, names: tuple[str, ...], delimiter: str, skip: np.ndarray) -> tuple[
        list[pa.Array], np.ndarray, dict[int, int]]:
    """_fast_segment's result by counting every line's fields first (lines the reader already
    rejected, or text Arrow's CSV reader splits differently)."""
    declared = len(names)
    counts = pc.add(pc.count_substring(lines, delimiter), 1).to_numpy(zero_copy_only=False)
    trailing = pc.ends_with(lines, delimiter).to_numpy(zero_copy_only=False)
    extra_empty = (counts == declared + 1) & trailing
    ok = ((counts == declared) | extra_empty) & ~skip
    if extra_empty.any():
        trimmed = pc.utf8_slice_codeunits(lines, 0, -len(delimiter))
        lines = pc.if_else(pa.array(extra_empty), trimmed, lines)
    good = lines.filter(pa.array(ok))
    columns = (_csv_columns(good, names, delimiter) or _split_columns(good, names, delimiter)) if len(good) else []
    return columns, ok, {int(i): int(counts[i]) for i in np.flatnonzero(~ok & ~skip)}


def _headerless_layout(first_line: str, delimiter: str) -> tuple[str, ...]:
    """No `#Fields:`: v2's default selection if the first line has that many fields, else legacy's 33."""
    count = first_line.count(delimiter) + 1
    if count == len(V2_DEFAULT_FIELDS) or (count == len(V2_DEFAULT_FIELDS) + 1 and first_line.endswith(delimiter)):
        return V2_DEFAULT_FIELDS
    return LOG_FIELDS


def tokenize_text(raw: bytes, damaged: bool, delimiter: str = "\t") -> Tokens:
    """Every data line of a decompressed text log file, tokenized by the header it falls under.

    Files with a `#Version` line are legacy (always tab-separated); v2 w3c/plain files use the
    configured delimiter (tab by default).
    """
    raw = normalise(raw)
    if not raw:
        return Tokens({}, pa.array([], pa.string()), np.zeros(0, np.int64), [])
    lines, bad_utf8 = line_array(raw)
    is_header = pc.starts_with(lines, "#").to_numpy(zero_copy_only=False)
    blank = pc.equal(pc.utf8_trim_whitespace(lines), "").to_numpy(zero_copy_only=False)
    headers = np.flatnonzero(is_header).tolist()
    texts = {i: lines[i].as_py() for i in headers}  # the header lines' text
    if any(t.startswith("#Version") for t in texts.values()):
        delimiter = "\t"
    reader_reasons: dict[int, str] = dict.fromkeys(bad_utf8, "invalid UTF-8 bytes")
    if damaged and len(lines) and not raw.endswith(b"\n"):
        reader_reasons.setdefault(len(lines) - 1, "incomplete last line of a damaged gzip")
    names: tuple[str, ...] | None = None
    parts: list[tuple[int, dict[str, pa.Array]]] = []
    segments: list[pa.Array] = []
    numbers: list[np.ndarray] = []
    reasons: list[str | None] = []
    for start, end in zip([-1, *headers], [*headers, len(lines)], strict=True):
        if start >= 0 and texts[start].startswith("#Fields:"):
            names = header_fields(texts[start], delimiter)
        index = np.arange(start + 1, end)
        index = index[~blank[start + 1 : end]]
        if not len(index):
            continue
        names = names or _headerless_layout(lines[int(index[0])].as_py(), delimiter)
        skip = np.isin(index, list(reader_reasons))
        # Without blank lines the segment is a slice of the file's lines: no copy.
        contiguous = index[-1] - index[0] + 1 == len(index)
        segment = lines.slice(int(index[0]), len(index)) if contiguous else lines.take(pa.array(index))
        columns, segment_reasons = tokenize_segment(segment, names, delimiter, skip)
        parts.append((len(index), columns))
        segments.append(segment)
        numbers.append(index + 1)
        for j in np.flatnonzero(skip):
            segment_reasons[j] = reader_reasons[int(index[j])]
        reasons += segment_reasons
    if not parts:
        return Tokens({}, pa.array([], pa.string()), np.zeros(0, np.int64), [])
    # The lines' text is read only for the few rejected ones: the segments as they are, uncopied.
    return Tokens(concat_columns(parts), pa.chunked_array(segments, pa.string()), np.concatenate(numbers), reasons)
