"""Why do requests miss the cache? Association rules (FPGrowth) over a sample of cdn_logs.

Each sampled request becomes a basket of items (`edge_location=NRT57-C1`, `hour=12`,
`device=mobile`, ..., `result=Miss`); the rules kept are those whose consequent is the result,
e.g. `{edge_location=NRT57-C1, hour=12, device=desktop} => {result=Miss}`, ranked by lift.
Also writes the top missed objects and the miss ratio per edge location of the range, exactly.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

from pyspark.ml.fpm import FPGrowth
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from spark_jobs import args as job_args
from spark_jobs.params import MissesParams
from spark_jobs.storage import table_path

# Item name -> column expression; the names are what the rules show (`name=value`).
ITEM_COLUMNS: dict[str, str] = {
    "edge_location": "x_edge_location",
    "hour": "hour",
    "device": "device_type",
    "os": "os",
    "browser": "browser",
    "status_class": "status_class",
    "content_type": "sc_content_type",
    "distro": "distro",
}
RESULT_ITEM = "result"
TOP_MISSED = 50


def date_range_predicate(start: dt.date, end: dt.date) -> str:
    days = [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    return "dt IN (" + ", ".join(f"'{d}'" for d in days) + ")"


def with_items(logs: DataFrame) -> DataFrame:
    """One basket per request: an item per attribute that has a value, plus the result."""
    items = [
        F.when(F.col(col).isNotNull(), F.concat(F.lit(f"{name}="), F.col(col).cast("string")))
        for name, col in ITEM_COLUMNS.items()
    ]
    result = F.concat(F.lit(f"{RESULT_ITEM}="), F.coalesce("x_edge_response_result_type", F.lit("Unknown")))
    return logs.select(F.array_compact(F.array(*items, result)).alias("items"))


def filter_result_rules(rules: DataFrame, results: list[str]) -> DataFrame:
    """Rules whose consequent is one of the results and whose antecedent holds no result item."""
    wanted = [f"{RESULT_ITEM}={r}" for r in results]
    is_result = F.exists("antecedent", lambda x: x.startswith(f"{RESULT_ITEM}="))
    return rules.where((F.size("consequent") == 1) & F.col("consequent")[0].isin(wanted) & ~is_result)


def agg_rules(baskets: DataFrame, min_support: float, min_confidence: float, results: list[str]) -> DataFrame:
    """FPGrowth rules with support, confidence, lift and count, best lift first."""
    total = baskets.count()
    model = FPGrowth(itemsCol="items", minSupport=min_support, minConfidence=min_confidence).fit(baskets)
    rules = filter_result_rules(model.associationRules, results)
    ordered = F.array_sort("antecedent")
    return (
        rules.select(
            F.array_join(ordered, ", ").alias("antecedent"),
            F.col("consequent")[0].alias("consequent"),
            F.col("support").cast("double").alias("support"),
            F.col("confidence").cast("double").alias("confidence"),
            F.col("lift").cast("double").alias("lift"),
            F.round(F.col("support") * total).cast("long").alias("count"),
            F.size("antecedent").alias("items"),
        )
        # Equal lift: the shorter antecedent is the clearer explanation.
        .orderBy(F.desc("lift"), F.asc("items"), F.desc("support"), F.asc("antecedent"))
        .drop("items")
    )


def agg_top_missed(logs: DataFrame) -> DataFrame:
    """Objects by miss count and by bytes from misses (exact, over the whole range)."""
    miss = F.col("x_edge_response_result_type") == "Miss"
    per_object = logs.groupBy("distro", F.col("cs_uri_stem").alias("uri")).agg(
        F.count("*").alias("requests"),
        F.count(F.when(miss, 1)).alias("misses"),
        F.sum(F.when(miss, F.coalesce("sc_bytes", F.lit(0)))).alias("bytes_missed"),
    )
    ranked = per_object.where("misses > 0").withColumns(
        {
            "miss_ratio": F.col("misses") / F.col("requests"),
            "rank_by_misses": F.row_number().over(Window.orderBy(F.desc("misses"), "uri")),
            "rank_by_bytes": F.row_number().over(Window.orderBy(F.desc("bytes_missed"), "uri")),
        }
    )
    return ranked.where((F.col("rank_by_misses") <= TOP_MISSED) | (F.col("rank_by_bytes") <= TOP_MISSED))


def agg_edge_miss_ratio(logs: DataFrame) -> DataFrame:
    miss = F.col("x_edge_response_result_type") == "Miss"
    return (
        logs.groupBy(F.col("x_edge_location").alias("edge_location"))
        .agg(F.count("*").alias("requests"), F.count(F.when(miss, 1)).alias("misses"))
        .withColumn("miss_ratio", F.col("misses") / F.col("requests"))
        .orderBy(F.desc("miss_ratio"), "edge_location")
    )


def _write(df: DataFrame, warehouse: str, table: str, start: dt.date, end: dt.date) -> None:
    keyed = df.withColumns({"range_start": F.lit(start.isoformat()), "range_end": F.lit(end.isoformat())})
    predicate = f"range_start = '{start.isoformat()}' AND range_end = '{end.isoformat()}'"
    (keyed.write.format("delta").mode("overwrite").option("replaceWhere", predicate)
     .partitionBy("range_start").save(table_path(warehouse, table)))  # fmt: skip


def run(spark: SparkSession, params: MissesParams) -> dict[str, Any]:
    started = time.monotonic()
    if params.end < params.start:
        raise ValueError(f"--end {params.end} is before --start {params.start}")
    logs = spark.read.format("delta").load(table_path(params.warehouse, "cdn_logs"))
    logs = logs.where(date_range_predicate(params.start, params.end))
    if params.distributions:
        logs = logs.where(F.col("distro").isin(params.distributions))
    sample = logs if params.sample_fraction >= 1.0 else logs.sample(fraction=params.sample_fraction, seed=params.seed)
    baskets = sample.transform(with_items).cache()
    results = ["Miss", "Error"] if params.include_error else ["Miss"]
    rules = agg_rules(baskets, params.min_support, params.min_confidence, results)
    _write(rules, params.warehouse, "miss_rules", params.start, params.end)
    _write(agg_top_missed(logs), params.warehouse, "miss_top_objects", params.start, params.end)
    _write(agg_edge_miss_ratio(logs), params.warehouse, "miss_edge_ratio", params.start, params.end)
    sampled = baskets.count()
    baskets.unpersist()
    top = [r.asDict() for r in rules.limit(5).collect()]
    return {"start": params.start.isoformat(), "end": params.end.isoformat(), "sampled_requests": sampled,
            "top_rules": top, "seconds": round(time.monotonic() - started, 2)}  # fmt: skip


def fraction(value: str) -> float:
    number = float(value)
    if not 0 < number <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1]: {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="analyze_misses", description=__doc__)
    parser.add_argument("--start", type=job_args.iso_date, required=True)
    parser.add_argument("--end", type=job_args.iso_date, required=True)
    parser.add_argument("--warehouse", type=job_args.location, required=True)
    parser.add_argument("--distributions", type=job_args.distro_list, default=None)
    parser.add_argument("--sample-fraction", type=fraction, default=0.01)
    parser.add_argument("--min-support", type=fraction, default=0.0005)
    parser.add_argument("--min-confidence", type=fraction, default=0.3)
    parser.add_argument("--include-error", action="store_true", help="also rules explaining Error results")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--result-file", default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    job_args.run_main(build_parser(), run, argv, MissesParams)


if __name__ == "__main__":
    main()
