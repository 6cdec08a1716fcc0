"""Sample standard logging v2 deliveries (w3c, JSON lines, Parquet) from the generator's lines.

v2 keys carry the distribution and the hour in their suffix path, plain
(`AWSLogs/<account>/CloudFront/<DIST>/<YYYY>/<MM>/<DD>/<HH>/part-<id>.gz`) or Hive-style
(`.../DistributionId=<DIST>/year=<YYYY>/month=<MM>/day=<DD>/hour=<HH>/...`); the file names say
nothing, so a reader must use the path. Each file declares the lines' fields plus v2's default
additions, `c-country` and `cache-behavior-path-pattern`.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import pathlib
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from spark_jobs.log_fields import mangle

FORMATS = ("legacy", "w3c", "json", "parquet")
V2_EXTRA = ("c-country", "cache-behavior-path-pattern")
ACCOUNT = "123456789012"
# Viewer country by the edge location's airport code (viewers are served near where they are).
_COUNTRY = {"NRT": "JP", "KIX": "JP", "TPE": "TW", "HKG": "HK", "ICN": "KR", "SIN": "SG", "LAX": "US",
            "SFO": "US", "SEA": "US", "FRA": "DE"}  # fmt: skip
_EXTENSION = {"w3c": "gz", "json": "gz", "parquet": "parquet"}
_HIVE_NAMES = ("DistributionId", "year", "month", "day", "hour")


def v2_key(
    root: pathlib.Path, distro: str, date: dt.date, hour: int, unique: str, fmt: str, hive: bool
) -> pathlib.Path:
    """Where a v2 delivery of one distribution and UTC hour lands under `root`."""
    parts = (distro, f"{date:%Y}", f"{date:%m}", f"{date:%d}", f"{hour:02d}")
    if hive:
        parts = tuple(f"{k}={v}" for k, v in zip(_HIVE_NAMES, parts, strict=True))
    return root.joinpath("AWSLogs", ACCOUNT, "CloudFront", *parts, f"part-{unique}.{_EXTENSION[fmt]}")


def _extra_values(line: str) -> str:
    """c-country (from the edge location) and the cache behavior (from the URI) of one line."""
    fields = line.split("\t")
    edge = fields[2] if len(fields) > 2 else ""
    uri = fields[7] if len(fields) > 7 else ""
    pattern = "*.m3u8" if uri.endswith(".m3u8") else "*.mpd" if uri.endswith(".mpd") else "Default (*)"
    return f"{_COUNTRY.get(edge[:3], '-')}\t{pattern}"


def _records(header: Sequence[str], lines: list[str]) -> list[dict[str, str] | None]:
    """Each line as a record by field name; None where the line does not fit the header."""
    out: list[dict[str, str] | None] = []
    for line in lines:
        values = line.split("\t")
        out.append(dict(zip(header, values, strict=True)) if len(values) == len(header) else None)
    return out


def write_v2_file(path: pathlib.Path, fmt: str, fields: Sequence[str], lines: list[str],
                  repeat_header_at: int | None = None) -> None:
    """One v2 delivery of the generator's lines (their fields plus V2_EXTRA).

    A line that does not fit its header (the generator's malformed `truncated`/`extra_column`
    kinds) stays malformed: a broken JSON record, or in Parquet a row without `sc-status`.
    """
    header = (*fields, *V2_EXTRA)
    lines = [f"{line}\t{_extra_values(line)}" for line in lines]
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "w3c":  # no #Version line: that is how v2 text differs from legacy
        rows = [f"#Fields: {' '.join(header)}", *lines]
        if repeat_header_at is not None:
            rows.insert(repeat_header_at + 1, rows[0])
        path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode(), 1, mtime=0))
        return
    records = _records(header, lines)
    if fmt == "json":
        text = [json.dumps(r, ensure_ascii=False) if r else json.dumps(line)[: len(line) // 2]
                for r, line in zip(records, lines, strict=True)]  # fmt: skip
        path.write_bytes(gzip.compress(("\n".join(text) + "\n").encode(), 1, mtime=0))
        return
    columns = {mangle(f): [(r or {}).get(f, "-") for r in records] for f in header}
    columns[mangle("sc-status")] = [r["sc-status"] if r else "-" for r in records]
    pq.write_table(pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()}), path)
