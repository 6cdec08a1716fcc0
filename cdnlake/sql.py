"""`cdnlake sql`: ad-hoc, read-only SQL over the warehouse tables with Spark.

Every table that exists under the warehouse (cdn_logs, cdn_logs_rejects, ingest_files, the
statistics tables) becomes a temporary view of the same name, read from its Delta log. A filter
on a partition column (`dt`, `distro`, `report_date`) prunes files before anything is read: a
query on one date reads that date's files only.

Queries may use `${name}` placeholders (`${date}` in the shipped docs/queries/*.sql), filled
from `--date` and `--param name=value` before Spark sees the text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spark_jobs.contract import TABLES, table_path
from spark_jobs.storage import table_exists

DEFAULT_LIMIT = 50
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PARAM_VALUE = re.compile(r"^[A-Za-z0-9_.:\-/ ]{0,200}$")  # no quotes: a value cannot end a SQL literal
_FIRST_WORDS = ("select", "with", "show", "describe", "desc", "explain", "values", "table", "from")
# Statements that would change a table or the session's catalog. Temp views are path-based, so a
# stray DELETE or DROP would act on the warehouse itself; this is a guard against accidents, not
# a security boundary (whoever runs `cdnlake sql` can already write the warehouse).
_WRITES = re.compile(
    r"\b(insert|update|delete|merge|drop|create|alter|truncate|optimize|vacuum|restore|refresh|msck|"
    r"cache|uncache|load|set|reset|add|grant|revoke|repair|convert|clone)\b",
    re.IGNORECASE,
)


class QueryError(ValueError):
    """The query cannot be run as asked; the message says why."""


def _strip_literals_and_comments(sql: str) -> str:
    """The SQL without string literals, quoted identifiers and comments (for keyword checks only)."""
    sql = re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.DOTALL)
    return re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`", "''", sql)


def check_read_only(sql: str) -> str:
    """The single statement of `sql` (trailing `;` removed), or QueryError if it could write."""
    code = _strip_literals_and_comments(sql).strip().rstrip(";").strip()
    if not code:
        raise QueryError("empty query")
    if ";" in code:
        raise QueryError("one statement at a time, please")
    first = code.split(None, 1)[0].lower().lstrip("(")
    if first not in _FIRST_WORDS:
        raise QueryError(f"read-only queries only (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN), not {first.upper()}")
    word = _WRITES.search(code)
    if word:
        raise QueryError(f"read-only queries only: {word.group(1).upper()} is not allowed")
    return sql.strip().rstrip(";").strip()


def substitute(sql: str, values: Mapping[str, str]) -> str:
    """Fill `${name}` placeholders; every one used needs a value, and values cannot contain quotes."""
    missing = sorted({m for m in _PLACEHOLDER.findall(sql) if m not in values})
    if missing:
        flags = ", ".join("--date" if m == "date" else f"--param {m}=..." for m in missing)
        raise QueryError(f"the query uses {', '.join('${' + m + '}' for m in missing)}: pass {flags}")
    for name, value in values.items():
        if not _PARAM_VALUE.match(value):
            raise QueryError(f"parameter {name}: only letters, digits, spaces and _ . : - / (got {value!r})")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], sql)


def parse_params(items: list[str] | None) -> dict[str, str]:
    params = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise QueryError(f"--param wants name=value, got {item!r}")
        params[name] = value
    return params


def register_views(spark: Any, warehouse: str, tables: tuple[str, ...] = TABLES) -> list[str]:
    """A temp view per existing table (named as the table); returns the names registered."""
    found = []
    for table in tables:
        if table_exists(spark, warehouse, table):
            spark.read.format("delta").load(table_path(warehouse, table)).createOrReplaceTempView(table)
            found.append(table)
    return found


def run_query(spark: Any, warehouse: str, sql: str) -> Any:
    """The Spark DataFrame of a read-only query over the warehouse's views (lazy: nothing read yet)."""
    statement = check_read_only(sql)
    views = register_views(spark, warehouse)
    if not views:
        raise QueryError(f"no tables under {warehouse}: run `cdnlake ingest` or `cdnlake run` first")
    return spark.sql(statement)


def render(df: Any, limit: int = DEFAULT_LIMIT) -> str:
    """The first `limit` rows as an aligned text table, with a note when there are more."""
    head = df.limit(limit + 1).toPandas()
    if head.empty:
        return "(no rows)\n" + "  ".join(df.columns)
    text = head.head(limit).to_string(index=False, max_colwidth=80)
    if len(head) > limit:
        text += f"\n(first {limit} rows; --limit N shows more, --out FILE writes them all)"
    return text


def write_result(df: Any, out: Path) -> int:
    """Write every row to a local .csv or .parquet file; returns the row count."""
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise QueryError(f"--out must end in .csv or .parquet, got {out.name!r}")
    # Ad-hoc results are usually aggregates: collecting them to one local file is what people want.
    frame = df.toPandas()
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        frame.to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False)
    return len(frame)


def session_for(settings: Any) -> Any:
    """A SparkSession in this process: the configured local/standalone one, else local[*].

    With the Kubernetes runner the jobs run in the cluster, but an interactive query is small
    and reads S3 directly from here.
    """
    from cdnlake.runners.local import InProcessRunner, runner_for

    runner = runner_for(settings) if settings.spark_runner != "kubernetes" else None
    if not isinstance(runner, InProcessRunner):
        runner = InProcessRunner("local[*]", settings.spark_driver_memory)
    return runner.session()
