"""Turn raw CloudFront .gz files into one row per data line (runs inside Spark's Python workers).

Decompression happens here rather than in Hadoop's codec because a damaged gzip must keep the
lines read before the damage (Hadoop's reader fails the whole task), and because ISA-L inflates
about 4x faster than the JVM's gzip in the pip pyspark (PERFORMANCE-NOTES).
"""

from __future__ import annotations

import hashlib
import zlib as stdlib_zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spark_jobs.arrow_parse import parse_tokens
from spark_jobs.log_keys import parse_file_name, parse_log_key
from spark_jobs.privacy import PrivacyOptions, apply_privacy
from spark_jobs.record_tokens import tokenize_json, tokenize_parquet
from spark_jobs.schema import PARSED_SCHEMA
from spark_jobs.text_tokens import tokenize_text
from spark_jobs.tokens import Tokens
from spark_jobs.useragent import user_agent_columns

try:  # ISA-L is a drop-in, much faster zlib; fall back to the standard library.
    from isal import isal_zlib as zlib
except ImportError:  # pragma: no cover - isal is a declared dependency
    import zlib  # type: ignore[no-redef]

_PARQUET_MAGIC = b"PAR1"
__all__ = ["ReaderOptions", "file_batch", "gunzip", "parse_file_name", "read_binary_batches", "read_tokens"]

# Tests and tools that read files directly keep values as they are; the ingest job passes its own.
NO_PRIVACY = PrivacyOptions(ip_mode="none", keep_cookies=True)
_CHUNK = 1 << 20  # compressed bytes inflated per call
_RECOVERY_STEP = 256  # ... and per call when finding how far a damaged member inflates


@dataclass(frozen=True)
class ReaderOptions:
    """How the ingest job reads files: privacy, the v2 text delimiter, and the date given to rows
    of a file whose name and key carry none (it was listed for that date)."""

    privacy: PrivacyOptions = NO_PRIVACY
    delimiter: str = "\t"
    default_date: str = "0000-00-00"
    # A file with more rejected lines than this leaves them out of its batch (its marker still
    # counts them): the ingest collects the inline ones on the driver and reads such a file again
    # for its rejects, so a file of garbage never floods the driver. None: every line.
    inline_rejects: int | None = None


def _inflate_until_error(member: bytes, good_until: int) -> bytes:
    """Output of a damaged member up to its damage: the bytes before `good_until` inflated whole,
    then in steps of _RECOVERY_STEP and, in the step that fails, byte by byte, so every byte
    inflated before the damage is kept."""
    inflater = stdlib_zlib.decompressobj(31)
    out = [inflater.decompress(member[:good_until])]
    for at in range(good_until, len(member), _RECOVERY_STEP):
        saved = inflater.copy()
        try:
            out.append(inflater.decompress(member[at : at + _RECOVERY_STEP]))
        except stdlib_zlib.error:
            for i in range(at, min(at + _RECOVERY_STEP, len(member))):
                try:
                    out.append(saved.decompress(member[i : i + 1]))
                except stdlib_zlib.error:
                    break
            break
    return b"".join(out)


def _inflate_member(data: bytes) -> tuple[bytes, bytes, str | None]:
    """(output, bytes after this member, damage) for the gzip member at the start of `data`."""
    inflater = zlib.decompressobj(31)
    out: list[bytes] = []
    for at in range(0, len(data), _CHUNK):
        try:
            out.append(inflater.decompress(data[at : at + _CHUNK]))
        except zlib.error as exc:  # type: ignore[misc]  # isal's stub types its error loosely
            # The failing call's output is lost with it: inflate again, in small steps there.
            return _inflate_until_error(data, at), b"", f"corrupt gzip: {exc}"
        if inflater.eof:
            return b"".join(out), inflater.unused_data + data[at + _CHUNK :], None
    out.append(inflater.flush())
    return b"".join(out), b"", "truncated gzip (unexpected end of file)"


def gunzip(content: bytes) -> tuple[bytes, str | None]:
    """Inflate every gzip member; on damage return what was inflated before it and the error."""
    if not content:
        return b"", "zero-byte file (not gzip)"
    if content[:2] != b"\x1f\x8b":
        return b"", "not a gzip file (bad magic bytes)"
    out: list[bytes] = []
    data = content
    while data:
        inflated, data, damage = _inflate_member(data)
        out.append(inflated)
        if damage:
            return b"".join(out), damage
        # Concatenated gzip members are legal; trailing zero padding is not a member.
        if data and data.strip(b"\x00") == b"":
            break
    return b"".join(out), None


def read_tokens(content: bytes, delimiter: str = "\t") -> tuple[Tokens, str | None, str]:
    """(tokens, damage, sha256) of one raw file, its format found from its bytes, not its name:
    Parquet by its `PAR1` magic, else gzip text: JSON lines if it starts with `{`, else a log."""
    digest = hashlib.sha256(content).hexdigest()
    if content[:4] == _PARQUET_MAGIC:
        return *tokenize_parquet(content), digest
    raw, damage = gunzip(content)
    if raw[:4] == _PARQUET_MAGIC and damage is None:
        return *tokenize_parquet(raw), digest
    if raw.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{":
        return tokenize_json(raw, damage is not None), damage, digest
    return tokenize_text(raw, damage is not None, delimiter), damage, digest


def _rejected_text(tokens: Tokens, rejected: pa.Array, n_rejected: int) -> pa.Array:
    """Each line's raw text where it is rejected, else NULL (only the rejected lines' text is read)."""
    if not n_rejected:
        return pa.nulls(len(tokens), pa.string())
    taken = tokens.text.take(pa.array(np.flatnonzero(rejected.to_numpy(zero_copy_only=False))))
    if isinstance(taken, pa.ChunkedArray):
        taken = taken.combine_chunks()
    return pc.replace_with_mask(pa.nulls(len(tokens), pa.string()), rejected, taken)


def file_batch(path: str, content: bytes, options: ReaderOptions = ReaderOptions()) -> pa.RecordBatch:
    """PARSED_SCHEMA rows for one file: a marker row (line_no NULL, value = sha256, reason =
    damage, file_lines/file_rejected = its accounting) followed by every data line or record,
    typed, with its reject reason (rejected lines left out past `options.inline_rejects`)."""
    key = parse_log_key(path)
    distro = (key and key.distro) or "unknown"
    date = (key and key.date) or options.default_date
    tokens, damage, digest = read_tokens(content, options.delimiter)
    columns = parse_tokens(tokens, date)
    apply_privacy(columns, options.privacy)
    columns |= user_agent_columns(columns["cs_user_agent"])
    rejected = pc.is_valid(columns["reason"])
    n, n_rejected = len(tokens), pc.sum(rejected).as_py() or 0
    meta = {
        "source_file": pa.repeat(pa.scalar(path, pa.string()), n + 1),
        "line_no": pa.concat_arrays([pa.nulls(1, pa.int64()), pa.array(tokens.line_numbers, pa.int64())]),
        "distro": pa.repeat(pa.scalar(distro, pa.string()), n + 1),
        "dt": pa.repeat(pa.scalar(date, pa.string()), n + 1),
        "reason": pa.concat_arrays([pa.array([damage], pa.string()), columns.pop("reason")]),
        "value": pa.concat_arrays([pa.array([digest], pa.string()), _rejected_text(tokens, rejected, n_rejected)]),
        "file_lines": pa.array([n], pa.int64()),
        "file_rejected": pa.array([n_rejected], pa.int64()),
    }  # fmt: skip
    arrays = []
    for f in PARSED_SCHEMA.fields:
        column = meta[f.name] if f.name in meta else columns[f.name]
        if f.name in ("file_lines", "file_rejected"):
            column = pa.concat_arrays([column, pa.nulls(n, pa.int64())])
        elif f.name not in meta:
            column = pa.concat_arrays([pa.nulls(1, column.type), column])
        arrays.append(column)
    batch = pa.RecordBatch.from_arrays(arrays, names=PARSED_SCHEMA.fieldNames())
    if options.inline_rejects is not None and n_rejected > options.inline_rejects:
        keep = pa.concat_arrays([pa.array([True]), pc.invert(rejected)])
        batch = batch.filter(keep)
    return batch


def read_binary_batches(
    batches: Iterator[pa.RecordBatch], options: ReaderOptions = ReaderOptions()
) -> Iterator[pa.RecordBatch]:
    """mapInArrow function over Spark's binaryFile rows (path, modificationTime, length, content)."""
    for batch in batches:
        paths = batch.column("path").to_pylist()
        contents = batch.column("content")
        for i, path in enumerate(paths):
            yield file_batch(path, contents[i].as_py() or b"", options)
