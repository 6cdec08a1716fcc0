"""What a raw log file's name and key say: distribution, UTC date and hour.

Legacy files are named `<DIST>.<YYYY-MM-DD-HH>.<unique>.gz`. Standard logging v2 deliveries may be
named the same way (any extension), or carry the distribution and time only in their key's
suffix path, plain (`.../E123ABC/2025/02/16/10/...`) or Hive-style
(`.../DistributionId=E123ABC/year=2025/month=02/day=16/hour=10/...`, any case of the names).
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
from dataclasses import dataclass

_NAME_RE = re.compile(r"^(?P<distro>[A-Za-z0-9]{1,64})\.(?P<date>\d{4}-\d{2}-\d{2})-(?P<hour>\d{2})\.[^/]+$")
# A CloudFront distribution id as a plain path segment: `E` and upper-case letters or digits.
_DISTRO_SEGMENT_RE = re.compile(r"^E[A-Z0-9]{5,63}$")
_HIVE_NAMES = {
    "distributionid": "distro", "year": "year", "yyyy": "year", "month": "month", "mm": "month",
    "day": "day", "dd": "day", "hour": "hour", "hh": "hour",
}  # fmt: skip
_WIDTHS = {"year": 4, "month": 2, "day": 2, "hour": 2}
# Files that are never logs even inside a log folder (markers, manifests, checksums).
_NOT_LOGS = re.compile(r"(^[._])|(\.(json|txt|md|csv|crc|manifest|tmp)$)|(_SUCCESS$)", re.IGNORECASE)


@dataclass(frozen=True)
class LogKey:
    """Distribution (lower case), UTC date (YYYY-MM-DD) and hour; None where the key does not say."""

    distro: str | None
    date: str | None
    hour: int | None


def _valid_date(year: str, month: str, day: str) -> str | None:
    try:
        return dt.date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        return None


def _from_hive(segments: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for segment in segments:
        name, equals, value = segment.partition("=")
        key = _HIVE_NAMES.get(name.lower())
        if equals and key and value:
            found[key] = value
    return found


def _from_plain(segments: list[str]) -> dict[str, str]:
    """A `YYYY/MM/DD[/HH]` run of segments and an `E...` distribution id segment."""
    found: dict[str, str] = {}
    for i in range(len(segments) - 2):
        year, month, day = segments[i : i + 3]
        if len(year) == 4 and year.isdigit() and len(month) == len(day) == 2 and (month + day).isdigit():
            found.update(year=year, month=month, day=day)
            hour = segments[i + 3] if i + 3 < len(segments) else ""
            if len(hour) == 2 and hour.isdigit():
                found["hour"] = hour
            break
    for segment in segments:
        if _DISTRO_SEGMENT_RE.match(segment):
            found["distro"] = segment
    return found


def parse_log_key(path: str) -> LogKey | None:
    """The file name's distribution/date/hour, else the key path's; None for a file that is no log."""
    folder, name = posixpath.split(path.split("://", 1)[-1])
    if not name or _NOT_LOGS.search(name):
        return None
    match = _NAME_RE.match(name)
    if match and _valid_date(*match["date"].split("-")):
        return LogKey(match["distro"].lower(), match["date"], int(match["hour"]))
    segments = [s for s in folder.split("/") if s]
    found = _from_plain(segments) | _from_hive(segments)
    date = None
    if all(k in found and len(found[k]) == _WIDTHS[k] and found[k].isdigit() for k in ("year", "month", "day")):
        date = _valid_date(found["year"], found["month"], found["day"])
    hour = found.get("hour", "")
    distro = found.get("distro")
    return LogKey(
        distro.lower() if distro and distro.isalnum() else None,
        date,
        int(hour) if len(hour) == 2 and hour.isdigit() and int(hour) < 24 else None,
    )


def parse_file_name(path: str) -> tuple[str, str, int] | None:
    """(lower-case distro, date, hour) when the name or key gives all three, else None."""
    key = parse_log_key(path)
    if key is None or key.distro is None or key.date is None or key.hour is None:
        return None
    return key.distro, key.date, key.hour


def escape_glob(path: str) -> str:
    """A path Hadoop's globbing reads literally (`[`, `]`, `*`, `?`, `{`, `}` and `\\` escaped)."""
    return re.sub(r"([\[\]*?{}\\])", r"\\\1", path)


def listed_as(path: str, modified: dt.date, wanted: set[str]) -> tuple[str, str, int] | None:
    """(distro, date, hour) under which a listed file is ingested for one of the `wanted` dates, or
    None if it is not a log file of those dates.

    A key without a date (a v2 suffix path with the distribution only) is read for the date it was
    written and the one before (CloudFront delivers up to 24 h late); its rows of another date are
    rejects of that read and loaded by the other date's. Without a distribution the rows land under
    `unknown`.
    """
    key = parse_log_key(path)
    if key is None:
        return None
    distro, hour = key.distro or "unknown", -1 if key.hour is None else key.hour
    if key.date is not None:
        return (distro, key.date, hour) if key.date in wanted else None
    if key.distro is None:
        return None  # neither a date nor a distribution: not a log delivery
    for day in (modified, modified - dt.timedelta(days=1)):
        if day.isoformat() in wanted:
            return distro, day.isoformat(), hour
    return None
