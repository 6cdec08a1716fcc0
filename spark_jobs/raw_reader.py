"""Turn raw CloudFront .gz files into one row per data line (runs inside Spark's Python workers).

Decompression happens here rather than in Hadoop's codec because a damaged gzip must keep the
lines read before the damage (Hadoop's reader fails the whole task), and because ISA-L inflates
about 4x faster than the JVM's gzip in the pip pyspark (PERFORMANCE-NOTES).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from spark_jobs.arrow_parse import parse_file_lines
from spark_jobs.privacy import PrivacyOptions, apply_privacy
from spark_jobs.schema import LOG_FIELDS, N_FIELDS, PARSED_SCHEMA

try:  # ISA-L is a drop-in, much faster zlib; fall back to the standard library.
    from isal import isal_zlib as zlib
except ImportError:  # pragma: no cover - isal is a declared dependency
    import zlib  # type: ignore[no-redef]

FILE_NAME_RE = re.compile(
    r"^(?P<distro>[A-Za-z0-9]{1,64})\.(?P<date>\d{4}-\d{2}-\d{2})-(?P<hour>\d{2})\.(?P<unique>[^/]+)\.gz$"
)
# Tests and tools that read files directly keep values as they are; the ingest job passes its own.
NO_PRIVACY = PrivacyOptions(ip_mode="none", keep_cookies=True)
FIELD_INDEX = {name: i for i, name in enumerate(LOG_FIELDS)}


@dataclass
class FileLines:
    """What one file yields: its data lines and, if it is damaged, why."""

    lines: list[str] = field(default_factory=list)
    line_numbers: list[int] = field(default_factory=list)
    n_fields: list[int] = field(default_factory=list)
    reasons: list[str | None] = field(default_factory=list)
    damage: str | None = None
    digest: str = ""


def parse_file_name(path: str) -> tuple[str, str, int] | None:
    """(lower-case distro, date, hour) from `<DIST>.<YYYY-MM-DD-HH>.<unique>.gz`, else None."""
    match = FILE_NAME_RE.match(posixpath.basename(path))
    if not match:
        return None
    return match["distro"].lower(), match["date"], int(match["hour"])


def gunzip(content: bytes) -> tuple[bytes, str | None]:
    """Inflate every gzip member; on damage return what was inflated so far and the error."""
    if not content:
        return b"", "zero-byte file (not gzip)"
    if content[:2] != b"\x1f\x8b":
        return b"", "not a gzip file (bad magic bytes)"
    out: list[bytes] = []
    data = content
    while data:
        inflater = zlib.decompressobj(31)
        try:
            out.append(inflater.decompress(data))
            if not inflater.eof:
                out.append(inflater.flush())
                return b"".join(out), "truncated gzip (unexpected end of file)"
        except zlib.error as exc:
            return b"".join(out), f"corrupt gzip: {exc}"
        data = inflater.unused_data
        # Concatenated gzip members are legal; trailing zero padding is not a member.
        if data and data.strip(b"\x00") == b"":
            break
    return b"".join(out), None


def _decode_lines(raw: bytes) -> tuple[list[str], set[int]]:
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


def _header_layout(header: str) -> tuple[int, list[int] | None]:
    """For a `#Fields:` line: (declared count, None if it is a prefix of LOG_FIELDS else positions).

    Positions map each declared column to its index in LOG_FIELDS (-1 for unknown names), so
    lines of a reordered header can be rewritten into the canonical order.
    """
    names = header.split(":", 1)[1].split()
    if tuple(names) == LOG_FIELDS[: len(names)]:
        return len(names), None
    return len(names), [FIELD_INDEX.get(name, -1) for name in names]


def _reorder(line: str, declared: int, positions: list[int]) -> str | None:
    """Rewrite a line of a non-canonical header into canonical order; None if the count is wrong."""
    values = line.split("\t")
    if len(values) == declared + 1 and values[-1] == "":
        values.pop()
    if len(values) != declared:
        return None
    canonical = ["-"] * N_FIELDS
    for value, pos in zip(values, positions, strict=True):
        if pos >= 0:
            canonical[pos] = value
    return "\t".join(canonical)


def read_lines(content: bytes) -> FileLines:
    """All data lines of one raw file with their 1-based line numbers and field counts."""
    result = FileLines(digest=hashlib.sha256(content).hexdigest())
    raw, result.damage = gunzip(content)
    texts, bad_utf8 = _decode_lines(raw)
    truncated_tail = result.damage is not None and not raw.endswith(b"\n")
    if raw.endswith(b"\n"):
        texts.pop()  # the empty string after the final newline is not a line
    declared, positions = N_FIELDS, None  # no header: assume the 33-field order
    last = len(texts) - 1
    for i, text in enumerate(texts):
        if text[:1] == "#":
            if text.startswith("#Fields:"):
                declared, positions = _header_layout(text)
            continue
        if not text.strip():
            continue  # blank lines carry no request
        reason: str | None = None
        n = declared
        if i in bad_utf8:
            reason = "invalid UTF-8 bytes"
        elif truncated_tail and i == last:
            reason = "incomplete last line of a damaged gzip"
        elif positions is not None:
            rewritten = _reorder(text, declared, positions)
            if rewritten is None:
                reason = f"column count check: header declares {declared} fields"
            else:
                text, n = rewritten, N_FIELDS
        result.lines.append(text.rstrip("\r"))
        result.line_numbers.append(i + 1)
        result.n_fields.append(n)
        result.reasons.append(reason)
    return result


def file_batch(path: str, content: bytes, privacy: PrivacyOptions = NO_PRIVACY) -> pa.RecordBatch:
    """PARSED_SCHEMA rows for one file: a marker row (line_no NULL, value = sha256, reason =
    damage) followed by every data line, typed, with its reject reason."""
    distro, date, _hour = parse_file_name(path) or ("unknown", "0000-00-00", -1)
    parsed = read_lines(content)
    columns = parse_file_lines(parsed.lines, parsed.n_fields, parsed.reasons, date)
    apply_privacy(columns, privacy)
    rejected = pc.is_valid(columns["reason"])
    line_values = pc.if_else(rejected, pa.array(parsed.lines, pa.string()), pa.scalar(None, pa.string()))
    n = len(parsed.lines)
    meta = {
        "source_file": pa.array([path] * (n + 1), pa.string()),
        "line_no": pa.array([None, *parsed.line_numbers], pa.int64()),
        "distro": pa.array([distro] * (n + 1), pa.string()),
        "dt": pa.array([date] * (n + 1), pa.string()),
        "reason": pa.concat_arrays([pa.array([parsed.damage], pa.string()), columns.pop("reason")]),
        "value": pa.concat_arrays([pa.array([parsed.digest], pa.string()), line_values]),
    }
    arrays = []
    for f in PARSED_SCHEMA.fields:
        if f.name in meta:
            arrays.append(meta[f.name])
        else:
            column = columns[f.name]
            arrays.append(pa.concat_arrays([pa.nulls(1, column.type), column]))
    return pa.RecordBatch.from_arrays(arrays, names=PARSED_SCHEMA.fieldNames())


def read_binary_batches(
    batches: Iterator[pa.RecordBatch], privacy: PrivacyOptions = NO_PRIVACY
) -> Iterator[pa.RecordBatch]:
    """mapInArrow function over Spark's binaryFile rows (path, modificationTime, length, content)."""
    for batch in batches:
        paths = batch.column("path").to_pylist()
        contents = batch.column("content")
        for i, path in enumerate(paths):
            yield file_batch(path, contents[i].as_py() or b"", privacy)
