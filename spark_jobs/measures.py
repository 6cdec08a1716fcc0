"""The measures of SPEC section 3 as Spark aggregate expressions (statistics and top lists share them)."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from spark_jobs import contract

# Order of stats_hourly's measure columns: the contract's measures (the CSV's, SPEC section 3, and
# refresh hits) plus the bytes served from cache, which the report derives a ratio from.
MEASURES: tuple[str, ...] = (*contract.MEASURES, "bytes_hit")
ERROR_TYPES = ("LimitExceeded", "CapacityExceeded", "Error")


def _bytes() -> Column:
    return F.coalesce(F.col("sc_bytes"), F.lit(0).cast("bigint"))


def conditions() -> dict[str, Column]:
    """SPEC section 3 row rules; a NULL condition (e.g. status 000 has no class) counts as false."""
    response = F.col("x_edge_response_result_type")
    return {
        "hit": response == "Hit",
        "miss": response == "Miss",
        "refresh_hit": response == "RefreshHit",
        "error": response.isin(*ERROR_TYPES),
        # The viewer went away during a successful response: the edge logs its own result as Error.
        "incomplete": F.col("sc_status").between(200, 299) & (F.col("x_edge_result_type") == "Error"),
        **{f"http{n}xx": F.col("status_class") == n for n in (2, 3, 4, 5)},
    }


def _bytes_if(condition: Column) -> Column:
    return F.sum(F.when(condition, _bytes()).otherwise(0))


def measure_aggs() -> list[Column]:
    """The MEASURES as aggregate expressions (all bigint)."""
    rule = conditions()
    counts = [F.count_if(rule[name]).alias(f"{name}_count") for name in rule]
    return [
        F.count(F.lit(1)).alias("request_count"),
        *counts,
        F.sum(_bytes()).alias("bytes_requested"),
        _bytes_if(rule["miss"]).alias("bytes_missed"),
        _bytes_if(rule["hit"]).alias("bytes_hit"),
    ]
