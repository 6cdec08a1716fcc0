"""Device type, OS and browser from User-Agents, classified inside the file reader's worker.

A file holds thousands of requests but only dozens of distinct User-Agents, so the maintained
ua-parser (uap-core regexes) runs over each batch's distinct values (cached across batches) and the
result is expanded back with one `take`: no per-row Python, and no second pass over the day's rows
to collect the agents and join them back (what the ingest did before: bench/RESULTS.md session 6).
"""

from __future__ import annotations

from functools import lru_cache

import pyarrow as pa
import pyarrow.compute as pc
from ua_parser import parse

_TV_MARKERS = ("smart-tv", "smarttv", "tizen", "webos", "web0s", "crkey", "appletv", "roku", "bravia",
               "hbbtv", "aft", "android tv", "googletv")  # fmt: skip
_TV_OS = {"Tizen", "webOS", "Chromecast", "tvOS", "Roku", "Android TV", "Fire OS"}
_DESKTOP_OS = {"Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "Fedora", "FreeBSD", "macOS"}
_MOBILE_OS = {"iOS", "Android", "iPadOS", "Windows Phone", "HarmonyOS", "KaiOS"}


@lru_cache(maxsize=65536)
def classify(user_agent: str | None) -> tuple[str, str, str]:
    """(device_type, os, browser); device_type is mobile, tablet, tv, desktop, bot or other."""
    if not user_agent:
        return "unknown", "Unknown", "Unknown"
    result = parse(user_agent)
    os_family = result.os.family if result.os else "Other"
    browser = result.user_agent.family if result.user_agent else "Other"
    device = result.device.family if result.device else "Other"
    lowered = user_agent.lower()
    if device == "Spider" or "bot" in lowered or "spider" in lowered or "crawler" in lowered:
        kind = "bot"
    elif os_family in _TV_OS or any(marker in lowered for marker in _TV_MARKERS):
        kind = "tv"
    elif device == "iPad" or ("android" in lowered and "mobile" not in lowered and os_family == "Android"):
        kind = "tablet"
    elif os_family in _MOBILE_OS:
        kind = "mobile"
    elif os_family in _DESKTOP_OS:
        kind = "desktop"
    else:
        kind = "other"
    return kind, os_family, browser


def user_agent_columns(agents: pa.Array) -> dict[str, pa.Array]:
    """device_type, os and browser for each value of a (decoded) User-Agent column."""
    encoded = pc.dictionary_encode(agents, null_encoding="encode")
    details = [classify(agent) for agent in encoded.dictionary.to_pylist()]
    return {name: pa.array([d[i] for d in details], pa.string()).take(encoded.indices)
            for i, name in enumerate(("device_type", "os", "browser"))}  # fmt: skip
