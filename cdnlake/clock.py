"""The wall clock, in one place: aware UTC (stages, notifications) and its ISO text (lock owners)."""

from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def utc_stamp() -> str:
    """Now as `YYYY-MM-DDTHH:MM:SSZ` (what a lock file records)."""
    return utc_now().strftime("%Y-%m-%dT%H:%M:%SZ")
