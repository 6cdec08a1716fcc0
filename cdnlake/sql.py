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

from spark_jobs.contract import LEGACY_TOP_LIST_TABLES, TABLES, table_path
from spark_jobs.storage import table_exists

DEFAULT_LIMIT = 50
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PARAM_VALUE = re.compile(r"^[A-Za-z0-9_.:\-/ ]{0,200}$")  # no quotes: a value cannot end a SQL literal
# Read-only is decided on Spark's parsed (unresolved) plan, not on the text: the parser knows
# where literals and comments end, so nothing can hide a second statement or a write. Commands
# are refused except these, which only show metadata; so are functions that call into the JVM.
_READ_ONLY_COMMANDS = frozenset({
    "ShowTables", "ShowTablesExtended", "ShowViews", "ShowColumns", "ShowFunctions", "ShowPartitions",
    "ShowTableProperties", "ShowCreateTable", "ShowNamespaces", "ShowCatalogs", "ShowCurrentNamespace",
    "DescribeRelation", "DescribeColumn", "DescribeFunction", "DescribeNamespace", "ExplainCommand",
})  # fmt: skip
_JVM_FUNCTIONS = frozenset({"reflect", "java_method", "try_reflect"})
# Writes that the parser does not represent as a Command (INSERT is a parsed statement).
_WRITE_PREFIXES = ("InsertInto", "AppendData", "Overwrite", "ReplaceData", "WriteDelta", "MergeInto",
                   "DeleteFrom", "UpdateTable", "CreateTable", "ReplaceTable", "Call", "Execute")  # fmt: skip
_COMMAND = "org.apache.spark.sql.catalyst.plans.logical.Command"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class QueryError(ValueError):
    """The query cannot be run as asked; the message says why."""


def _seq(scala_seq: Any) -> list[Any]:
    return [scala_seq.apply(i) for i in range(scala_seq.size())]


def _short(node: Any) -> str:
    return str(node.getClass().getSimpleName()).rstrip("$")


def _expressions(expression: Any) -> list[Any]:
    found = [expression]
    for child in _seq(expression.children()):
        found += _expressions(child)
    return found


def _refusal(spark: Any, plan: Any) -> str | None:
    """Why `plan` (and every plan inside it) is not read-only, or None."""
    command = spark._jvm.java.lang.Class.forName(_COMMAND)
    pending = [plan]
    while pending:
        node = pending.pop()
        name = _short(node)
        writes = name.startswith(_WRITE_PREFIXES) or "Procedure" in name
        if writes or (command.isInstance(node) and name not in _READ_ONLY_COMMANDS):
            return name
        if name == "ExplainCommand":
            pending.append(node.logicalPlan())
        pending += _seq(node.children())
        for expression in (e for top in _seq(node.expressions()) for e in _expressions(top)):
            kind = _short(expression)
            if kind == "UnresolvedFunction":
                function = str(_seq(expression.nameParts())[-1]).lower()
                if function in _JVM_FUNCTIONS:
                    return f"{function}()"
            if kind in ("ScalarSubquery", "Exists", "ListQuery", "LateralSubquery"):
                pending.append(expression.plan())
    return None


def check_read_only(spark: Any, sql: str) -> str:
    """The statement of `sql` if Spark parses it as one read-only query, else QueryError.

    Parsing runs nothing: a refused statement changes nothing.
    """
    statement = sql.strip().rstrip(";").strip()
    if not statement:
        raise QueryError("empty query")
    try:
        plan = spark._jsparkSession.sessionState().sqlParser().parsePlan(statement)
    except Exception as exc:  # py4j wraps the ParseException; its first line says where
        text = str(getattr(exc, "java_exception", exc)).strip().splitlines()
        raise QueryError(f"cannot parse the query (one statement at a time): {text[0] if text else exc}") from None
    refused = _refusal(spark, plan)
    if refused:
        raise QueryError(f"read-only queries only (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN): {refused} is not allowed")
    return statement


def escape_control(value: Any) -> Any:
    """Control characters of a text value as \\xNN, so a result cannot drive the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value) if isinstance(value, str) else value


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


def register_views(spark: Any, warehouse: str,
                   tables: tuple[str, ...] = (*TABLES, *LEGACY_TOP_LIST_TABLES.values())) -> list[str]:  # fmt: skip
    """A temp view per existing table (named as the table; an older warehouse's per-list top tables
    too, while they exist); returns the names registered."""
    found = []
    for table in tables:
        if table_exists(spark, warehouse, table):
            spark.read.format("delta").load(table_path(warehouse, table)).createOrReplaceTempView(table)
            found.append(table)
    return found


def run_query(spark: Any, warehouse: str, sql: str) -> Any:
    """The Spark DataFrame of a read-only query over the warehouse's views (lazy: nothing read yet)."""
    statement = check_read_only(spark, sql)
    views = register_views(spark, warehouse)
    if not views:
        raise QueryError(f"no tables under {warehouse}: run `cdnlake ingest` or `cdnlake run` first")
    return spark.sql(statement)


def render(df: Any, limit: int = DEFAULT_LIMIT) -> str:
    """The first `limit` rows as an aligned text table, with a note when there are more."""
    head = df.limit(limit + 1).toPandas()
    if head.empty:
        return "(no rows)\n" + "  ".join(df.columns)
    shown = head.head(limit).map(escape_control)  # a value cannot move the cursor or retitle the terminal
    text = shown.to_string(index=False, max_colwidth=80)
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
    from cdnlake.runners.local import InProcessRunner, build_runner

    runner = build_runner(settings) if settings.spark_runner != "kubernetes" else None
    if not isinstance(runner, InProcessRunner):
        runner = InProcessRunner("local[*]", settings.spark_driver_memory, log_dir=settings.log_dir)
    return runner.session()
