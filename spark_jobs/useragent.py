"""Device type, OS and browser from User-Agents: parse the few distinct agents, then join.

A day holds millions of requests but only thousands of distinct User-Agents, so the maintained
ua-parser (uap-core regexes) runs on the driver over the distinct values and the result is
broadcast-joined back: no per-row Python on the hot path.
"""

from __future__ import annotations

from functools import lru_cache

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType
from ua_parser import parse

UA_SCHEMA = StructType(
    [
        StructField("cs_user_agent", StringType(), False),
        StructField("device_type", StringType(), False),
        StructField("os", StringType(), False),
        StructField("browser", StringType(), False),
    ]
)

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


def agent_table(spark: SparkSession, agents: list[str]) -> DataFrame:
    """A small DataFrame of parsed agents, ready for a broadcast join."""
    rows = [(agent, *classify(agent)) for agent in agents if agent is not None]
    return spark.createDataFrame(rows, UA_SCHEMA)


def with_user_agent_details(df: DataFrame, agents: DataFrame) -> DataFrame:
    """Add device_type, os and browser by joining on the decoded User-Agent."""
    joined = df.join(F.broadcast(agents), on="cs_user_agent", how="left")
    return joined.withColumns(
        {
            "device_type": F.coalesce("device_type", F.lit("unknown")),
            "os": F.coalesce("os", F.lit("Unknown")),
            "browser": F.coalesce("browser", F.lit("Unknown")),
        }
    )
