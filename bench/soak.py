"""`make soak`: seven consecutive generated days through the daily pipeline, then all seven again.

One process runs `cdn-daily` (the Prefect flow, as `cdnlake run` does) for each date of the week in
order, then re-runs every date. It checks that the second pass leaves every Delta table with
exactly the rows of the first (per-run columns `ingest_run` and `ingested_at` aside) and records
the resident memory of the whole process tree (this Python process, the Spark JVM, the PySpark
workers, the temporary Prefect server) after each date, to show whether memory stays flat.

    .venv/bin/python bench/soak.py [--rows 200000] [--distributions 3] [--start 2024-06-01]
                                   [--days 7] [--out bench/out/soak]

Prints one line per date and a summary; writes `<out>/soak.json`. Exit code 1 when a run failed
or the passes' tables differ. `<out>` keeps landing/, warehouse/, reports/ and outbox/ for a look
(e.g. `cdnlake analyze-misses --start ... --end ... --warehouse <out>/warehouse --reports <out>/reports`).
Not part of `make test`: at the default size it takes about an hour on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/soak.py` from the Makefile
    sys.path.insert(0, str(ROOT))

from bench.memory import tree_memory  # noqa: E402  (after the sys.path line)

PER_RUN_COLUMNS = ("ingest_run", "ingested_at")  # differ by design between two runs of the same input
MB = 1024 * 1024


# ---------------------------------------------------------------- memory of the process tree
def jvm_heap_after_gc(runner: Any) -> int | None:
    """Bytes of the Spark driver's Java heap still in use after a full GC (None without a session).

    The JVM keeps the heap it has grown to (up to spark.driver.memory), so its RSS says little
    about a leak; the live heap after a collection does.
    """
    spark = getattr(runner, "_spark", None)  # the in-process runner's session, once a job started it
    if spark is None:
        return None
    jvm = spark.sparkContext._jvm
    jvm.java.lang.System.gc()
    heap = jvm.java.lang.Runtime.getRuntime()
    return int(heap.totalMemory() - heap.freeMemory())


# ---------------------------------------------------------------- table digests
def _canonical(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(
        json.dumps({k: v for k, v in r.items() if k not in PER_RUN_COLUMNS}, sort_keys=True, default=repr) for r in rows
    )


def table_digests(warehouse: str) -> dict[str, dict[str, list[Any]]]:
    """{table: {partition value: [rows, sha256 of the sorted canonical rows]}} for every table.

    Runs in its own process (`--digest`), so reading the tables never counts in the soak's memory.
    """
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    from spark_jobs.contract import TABLES

    digests: dict[str, dict[str, list[Any]]] = {}
    for table in TABLES:
        path = Path(warehouse) / table
        if not (path / "_delta_log").is_dir():
            continue
        delta = DeltaTable(str(path))
        key = next((c for c in ("dt", "report_date") if c in delta.metadata().partition_columns), None)
        values = [None] if key is None else sorted(set(delta.to_pyarrow_table(columns=[key])[key].to_pylist()))
        digests[table] = {}
        for value in values:
            data = delta.to_pyarrow_table() if key is None else delta.to_pyarrow_table(filters=[(key, "=", value)])
            if key is not None:
                data = data.filter(pc.equal(data[key], value))
            rows = _canonical(data.to_pylist())
            digests[table][str(value)] = [len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest()]
    return digests


def digests_in_subprocess(warehouse: Path) -> dict[str, dict[str, list[Any]]]:
    out = subprocess.run([sys.executable, __file__, "--digest", str(warehouse)], check=True, capture_output=True,
                         text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    return json.loads(out.stdout)


def differences(first: dict[str, dict[str, list[Any]]], second: dict[str, dict[str, list[Any]]]) -> list[str]:
    found = []
    for table in sorted(set(first) | set(second)):
        a, b = first.get(table, {}), second.get(table, {})
        for part in sorted(set(a) | set(b)):
            if a.get(part) != b.get(part):
                found.append(f"{table} {part}: pass 1 {a.get(part)} != pass 2 {b.get(part)}")
    return found


# ---------------------------------------------------------------- the soak
def generate(landing: Path, dates: list[dt.date], distributions: int, rows: int, seed: int) -> int:
    from cdnlake.demo import generate_days

    started = time.perf_counter()
    generated = generate_days(landing, dates, distributions, [rows] * len(dates), seed)
    lines = sum(g.lines_written for g in generated.values())
    files = sum(len(g.files) for g in generated.values())
    print(f"generated {len(dates)} days x {distributions} distributions: {files:,} files, {lines:,} lines "
          f"in {time.perf_counter() - started:.0f} s -> {landing}", flush=True)  # fmt: skip
    return lines


def run_passes(settings: Any, dates: list[dt.date]) -> list[dict[str, Any]]:
    from cdnlake.prefect_defaults import local_prefect
    from cdnlake.services import build_services, use_services
    from flows.daily import cdn_daily

    services = build_services(settings)  # one runner (one SparkSession) for every pass, as a long-lived worker
    records: list[dict[str, Any]] = []
    print(f"{'pass':>4} {'date':<10} {'status':<9} {'seconds':>8} {'tree RSS MB':>12} {'python':>7} {'jvm':>7} "
          f"{'workers':>8} {'prefect':>8} {'procs':>6} {'heap after GC':>14}", flush=True)  # fmt: skip
    with local_prefect(verbose=False), use_services(services):
        for number in (1, 2):
            for day in dates:
                started = time.perf_counter()
                status, error = "completed", None
                try:
                    cdn_daily(date=day)
                except Exception as exc:  # keep going: the soak reports every date
                    status, error = "FAILED", f"{type(exc).__name__}: {exc}"[:300]
                seconds = time.perf_counter() - started
                memory = tree_memory()
                memory["heap_after_gc"] = jvm_heap_after_gc(services.runner) or 0
                records.append({"pass": number, "date": day.isoformat(), "status": status, "error": error,
                                "seconds": round(seconds, 1), "memory": memory})  # fmt: skip
                print(f"{number:>4} {day.isoformat():<10} {status:<9} {seconds:>8.1f} {memory['total'] / MB:>12.0f} "
                      f"{memory.get('python', 0) / MB:>7.0f} {memory.get('jvm', 0) / MB:>7.0f} "
                      f"{memory.get('workers', 0) / MB:>8.0f} {memory.get('prefect', 0) / MB:>8.0f} "
                      f"{memory['processes']:>6} {memory['heap_after_gc'] / MB:>14.0f}", flush=True)  # fmt: skip
                if error:
                    print(f"     {error}", flush=True)
            if number == 1:
                records.append({"digests_pass_1": digests_in_subprocess(Path(settings.warehouse))})
    return records


def summarise(records: list[dict[str, Any]], second: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    runs = [r for r in records if "date" in r]
    first_digests = next(r["digests_pass_1"] for r in records if "digests_pass_1" in r)
    diffs = differences(first_digests, second)
    rss = [r["memory"]["total"] / MB for r in runs]
    pass2 = [r["memory"]["total"] / MB for r in runs if r["pass"] == 2]
    heap = [r["memory"]["heap_after_gc"] / MB for r in runs]
    summary = {
        "runs": len(runs),
        "failed": [f"pass {r['pass']} {r['date']}: {r['error']}" for r in runs if r["status"] != "completed"],
        "tables": {t: sum(v[0] for v in parts.values()) for t, parts in second.items()},
        "table_differences": diffs,
        "rss_mb": {
            "first": round(rss[0]),
            "last": round(rss[-1]),
            "max": round(max(rss)),
            "min": round(min(rss)),
            "pass2_first": round(pass2[0]),
            "pass2_last": round(pass2[-1]),
            "heap_after_gc_first": round(heap[0]),
            "heap_after_gc_last": round(heap[-1]),
            "heap_after_gc_max": round(max(heap)),
        },  # fmt: skip
        "seconds": {
            "pass1": round(sum(r["seconds"] for r in runs if r["pass"] == 1)),
            "pass2": round(sum(r["seconds"] for r in runs if r["pass"] == 2)),
        },  # fmt: skip
    }
    return summary, diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="log lines per day (default 200,000)")
    parser.add_argument("--distributions", type=int, default=3)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2024, 6, 1))
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "soak")
    parser.add_argument("--digest", metavar="WAREHOUSE", help=argparse.SUPPRESS)  # internal: print table digests
    args = parser.parse_args(argv)
    if args.digest:
        sys.stdout.write(json.dumps(table_digests(args.digest)))
        return 0

    from cdnlake.settings import load_settings

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    out: Path = args.out
    shutil.rmtree(out, ignore_errors=True)
    dates = [args.start + dt.timedelta(days=i) for i in range(args.days)]
    lines = generate(out / "landing", dates, args.distributions, args.rows, args.seed)
    # Generated days carry ~0.1% malformed lines on purpose: a sampled file could trip the check
    # stage's column-count alert, which would stop a date; the soak is about running, not alerting.
    locations = {name: str(out / name) for name in ("landing", "warehouse", "reports", "outbox")}
    settings = load_settings(source=locations.pop("landing"), on_anomaly="continue", **locations)
    started = time.perf_counter()
    records = run_passes(settings, dates)
    second = digests_in_subprocess(out / "warehouse")
    summary, diffs = summarise(records, second)
    summary |= {"dates": [dates[0].isoformat(), dates[-1].isoformat()], "rows_per_day": args.rows,
                "lines": lines, "wall_s": round(time.perf_counter() - started)}  # fmt: skip
    (out / "soak.json").write_text(json.dumps({"summary": summary, "runs": [r for r in records if "date" in r]},
                                              indent=2, default=str))  # fmt: skip
    m = summary["rss_mb"]
    print(f"\n{summary['runs']} runs ({len(summary['failed'])} failed) over {lines:,} lines in {summary['wall_s']} s "
          f"(pass 1 {summary['seconds']['pass1']} s, pass 2 {summary['seconds']['pass2']} s)")  # fmt: skip
    print(f"process tree RSS: first date {m['first']} MB, last date {m['last']} MB (min {m['min']}, max {m['max']}); "
          f"pass 2 from {m['pass2_first']} to {m['pass2_last']} MB")  # fmt: skip
    print(f"Spark driver heap in use after a full GC: first date {m['heap_after_gc_first']} MB, last date "
          f"{m['heap_after_gc_last']} MB (max {m['heap_after_gc_max']})")  # fmt: skip
    print("tables identical between the passes: " + ("yes" if not diffs else f"NO ({len(diffs)} partitions differ)"))
    for line in diffs[:20]:
        print("  " + line)
    print(f"rows per table: {summary['tables']}")
    print(f"details: {out / 'soak.json'}")
    return 1 if summary["failed"] or diffs else 0


if __name__ == "__main__":
    sys.exit(main())
