"""Top lists of a report day: objects, referrer domains, edge locations, viewers' devices/OS/browsers/countries.

Spark groups the day's rows two ways, side by side: per object (the top ones taken in order, no
full sort) and per combination of the small dimensions, rolled up to one row per value of each.
The ranking and the four lists' rows (stats_top_lists) are then built on the driver: a few
thousand rows, where a Spark sort, window and job per table cost seconds of fixed cost each.
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spark_jobs.contract import TOP_LIST_COLUMNS
from spark_jobs.measures import MEASURES, measure_aggs

TOP_OBJECTS, TOP_REFERRERS, TOP_VIEWERS, TOP_COUNTRIES = 50, 25, 10, 15
# Host of an absolute URL (`scheme://[user@]host[:port]/...`); anything else has no domain.
_HOST_RE = r"^[A-Za-z][A-Za-z0-9+.\-]*://(?:[^/?#@]*@)?(\[[^\]/]*\]|[^/?#:]+)"

# Each small dimension: the column it ranks and how many rows it keeps (None: all of them).
SMALL_DIMENSIONS: dict[str, tuple[str, int | None]] = {
    "referrer": ("referrer_domain", TOP_REFERRERS),
    "edge_location": ("edge_location", None),
    "device_type": ("device_type", None),
    "os": ("os", TOP_VIEWERS),
    "browser": ("browser", TOP_VIEWERS),
    "country": ("c_country", TOP_COUNTRIES),  # standard logging v2 rows only
}
_SMALL = [key for key, _ in SMALL_DIMENSIONS.values()]

REPORT_KEYS = "report_date STRING, report_tz STRING"
_RENAMED = {"request_count": "requests", "hit_count": "hits", "miss_count": "misses", "bytes_requested": "bytes",
            "incomplete_count": "incomplete", **{f"http{n}xx_count": f"http{n}xx" for n in (2, 3, 4, 5)}}  # fmt: skip


def with_referrer_domain(df: DataFrame) -> DataFrame:
    host = F.lower(F.regexp_extract("cs_referer", _HOST_RE, 1))
    return df.withColumn("referrer_domain", F.nullif(host, F.lit("")))


def agg_combinations(day: DataFrame) -> DataFrame:
    """The measures per combination of the small dimensions (thousands of rows, not millions):
    each dimension's values are rolled up from them (agg_small_dimensions)."""
    if "c_country" not in day.columns:  # a cdn_logs made before standard logging v2 was read
        day = day.withColumn("c_country", F.lit(None).cast("string"))
    rows = day.select(
        "referrer_domain", F.col("x_edge_location").alias("edge_location"), "device_type", "os", "browser",
        "c_country", "sc_bytes", "sc_status", "status_class", "x_edge_result_type", "x_edge_response_result_type",
    )  # fmt: skip
    return rows.groupBy(*_SMALL).agg(*measure_aggs())


def agg_small_dimensions(combinations: DataFrame) -> DataFrame:
    """(dimension, value, measures) per value of each small dimension, from the combinations.

    Requests without a referrer domain or a country (legacy rows) are not listed under them.
    """
    dimension: Column = F.lit(None).cast("string")
    for name, (key, _) in SMALL_DIMENSIONS.items():
        dimension = F.when(F.grouping(key) == 0, F.lit(name)).otherwise(dimension)
    rolled = combinations.groupingSets([[k] for k in _SMALL], *_SMALL)
    # Outside its own grouping set every key is NULL, so coalesce picks the grouped one.
    small = rolled.agg(dimension.alias("dimension"), *[F.sum(m).alias(m) for m in MEASURES])
    small = small.select("dimension", F.coalesce(*_SMALL).alias("value"), *MEASURES)
    return small.where(~F.col("dimension").isin("referrer", "country") | F.col("value").isNotNull())


def top_objects_rows(day: DataFrame, limit: int = TOP_OBJECTS) -> pd.DataFrame:
    """The `limit` objects with most requests (ties: distro, then uri), in rank order."""
    order = [F.col("request_count").desc(), F.col("distro").asc_nulls_first(), F.col("value").asc_nulls_last()]
    objects = day.groupBy("distro", F.col("cs_uri_stem").alias("value")).agg(*measure_aggs())
    rows = objects.orderBy(*order).limit(limit).collect()  # taken in order: no sort of every object
    return pd.DataFrame([r.asDict() for r in rows], columns=["distro", "value", *MEASURES])


def ranked(rows: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """Rows by requests desc, then value (NULL last), cut to `limit`, with a 1-based rank.

    Python orders str by code point, as Spark orders UTF-8 bytes: the same order.
    """
    ordered = rows.sort_values(["request_count", "value"], ascending=[False, True], na_position="last",
                               kind="stable")  # fmt: skip
    ordered = ordered.head(limit) if limit is not None else ordered
    return ordered.assign(rank=range(1, len(ordered) + 1)).reset_index(drop=True)


def _fields(schema: str) -> list[tuple[str, str]]:
    return [(field.split()[0], field.split()[1]) for field in schema.split(", ")]


def _shown(rows: pd.DataFrame, name: str, value_name: str | None) -> pd.DataFrame:
    """rows renamed to list `name`'s columns (hit_ratio computed), in its schema's order."""
    out = rows.rename(columns={**_RENAMED, **({"value": value_name} if value_name else {})})
    if len(out):
        out = out.assign(hit_ratio=out["hits"] / out["requests"])
    else:
        out = out.assign(hit_ratio=pd.Series(dtype="float64"))
    return out[[column for column, _ in _fields(TOP_LIST_COLUMNS[name])]]


def list_rows(objects: pd.DataFrame, small: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The four lists' rows from the top objects (in order) and the small dimensions' values."""
    of = {name: small[small["dimension"] == name] for name in SMALL_DIMENSIONS}
    top = {name: ranked(rows, SMALL_DIMENSIONS[name][1]) for name, rows in of.items()}
    objects = objects.assign(rank=range(1, len(objects) + 1))
    viewers = pd.concat([top[d] for d in ("device_type", "os", "browser", "country")], ignore_index=True)
    return {
        "top_objects": _shown(objects, "top_objects", "uri"),
        "top_referrers": _shown(top["referrer"], "top_referrers", "referrer_domain"),
        "edge_locations": _shown(top["edge_location"], "edge_locations", "edge_location"),
        "viewers": _shown(viewers, "viewers", None),
    }


def top_list_rows(day: DataFrame) -> dict[str, pd.DataFrame]:
    """The four lists' rows of the report day's rows: the objects and the small dimensions are two
    queries side by side (one scan grouped two ways, cached, ran 1 s longer warm on 2 cores:
    bench/RESULTS.md session 9)."""
    from concurrent.futures import ThreadPoolExecutor

    day = day.transform(with_referrer_domain)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="cdnlake-lists") as pool:
        objects = pool.submit(top_objects_rows, day)
        small = pool.submit(lambda: day.transform(agg_combinations).transform(agg_small_dimensions).toPandas())
        return list_rows(objects.result(), small.result().astype({m: "int64" for m in MEASURES}))


def _combined_fields() -> list[tuple[str, str]]:
    """`list`, then every list's columns once, in first-seen order (same name, same type in each)."""
    fields = {"list": "STRING"}
    for schema in TOP_LIST_COLUMNS.values():
        fields |= {column: kind for column, kind in _fields(schema) if column not in fields}
    return list(fields.items())


TOP_LISTS_SCHEMA = ", ".join([*(f"{c} {k}" for c, k in _combined_fields()), REPORT_KEYS])
# pandas dtypes that keep a list's absent columns NULL without turning its integers into floats.
_NULLABLE = {"BIGINT": "Int64", "INT": "Int32", "DOUBLE": "float64", "STRING": "object"}


def combined_rows(lists: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The lists' rows as stats_top_lists rows (without the report keys): a column a list does not
    have is NULL in its rows."""
    fields = _combined_fields()
    frames = [rows.assign(list=name) for name, rows in lists.items()]
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return rows.reindex(columns=[c for c, _ in fields]).astype({c: _NULLABLE[k] for c, k in fields})
