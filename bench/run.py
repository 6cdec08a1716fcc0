"""`make bench`: cdnlake's ingest and statistics against DuckDB and `zcat` on the same day of logs.

Prints one table (seconds, rows/s, uncompressed MB/s per core, peak RSS and PSS of the whole
process tree, output size, ratio to DuckDB) and checks that both engines' hourly statistics agree.
Options: --rows N (default 2,000,000), --scaling (0.5M, 2M, 8M lines: time and memory per row).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/run.py` from the Makefile
    sys.path.insert(0, str(ROOT))

from bench.memory import tree_memory  # noqa: E402  (after the sys.path line)

OUT = ROOT / "bench" / "out"
DATE = dt.date(2024, 5, 1)
CORES = os.cpu_count() or 1


def run_measured(cmd: list[str], extra_env: dict[str, str] | None = None) -> tuple[float, dict[str, int], str]:
    """(wall seconds, peak {"rss", "pss"} of the process tree in bytes, stdout) of a command."""
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYTHONPATH": str(ROOT), **(extra_env or {})}
    started = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as errors:  # its tail is shown if the command fails
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors, text=True, env=env, cwd=ROOT)
        peak = {"rss": 0, "pss": 0}

        def poll() -> None:
            # Sampling must not slow the measured command: one /proc pass per second, PSS (costly,
            # see bench/memory.py) every other second; ~2% of one core.
            samples = 0
            while proc.poll() is None:
                with_pss = samples % 2 == 0
                memory = tree_memory(proc.pid, pss=with_pss)
                peak["rss"] = max(peak["rss"], memory["total"])
                if with_pss:
                    peak["pss"] = max(peak["pss"], memory["pss"])
                samples += 1
                time.sleep(1.0)

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        out, _ = proc.communicate()
        watcher.join()
        if proc.returncode:
            errors.seek(0)
            tail = "".join(errors.readlines()[-30:])
            raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n{tail}")
    return time.perf_counter() - started, peak, out


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def generate(rows: int) -> Path:
    from cdnlake.sample_logs import generate_logs

    landing = OUT / f"landing-{rows}"
    if not (landing / ".done").exists():
        generate_logs(DATE, 3, rows, 1, landing, files_per_hour=4, progress=True)
        (landing / ".done").touch()
    return landing


def uncompressed_bytes(landing: Path) -> int:
    total = 0
    for f in landing.rglob("*.gz"):
        with gzip.open(f, "rb") as handle:
            while chunk := handle.read(1 << 20):
                total += len(chunk)
    return total


def bench_day(rows: int, full_run: bool = False) -> dict[str, object]:
    landing = generate(rows)
    files = sorted(str(f) for f in landing.rglob("*.gz"))
    raw_mb = uncompressed_bytes(landing) / 1e6
    work = OUT / f"work-{rows}"
    subprocess.run(["rm", "-rf", str(work)], check=True)
    work.mkdir(parents=True)
    zcat_s, zcat_rss, _ = run_measured(["sh", "-c", "zcat " + " ".join(files) + " > /dev/null"])
    fast_wall, fast_rss, fast_out = run_measured(
        [sys.executable, "-m", "bench.engines", "duckdb-fast", str(landing), str(work)]
    )
    duck_wall, duck_rss, duck_out = run_measured(
        [sys.executable, "-m", "bench.engines", "duckdb", str(landing), str(work)]
    )
    spark_wall, spark_rss, spark_out = run_measured(
        [sys.executable, "-m", "bench.engines", "spark", str(landing), str(work), DATE.isoformat()]
    )
    run_wall = run_rss = run_error = None
    if full_run:
        run_env = {"CDNLAKE_OUTBOX": str(work / "outbox")}
        try:  # a failure is reported below the engines' table, not instead of it
            run_wall, run_rss, _ = run_measured(
                [str(Path(sys.executable).parent / "cdnlake"), "run", "--date", DATE.isoformat(), "--source",
                 str(landing), "--warehouse", str(work / "run-warehouse"), "--reports", str(work / "run-reports")],
                run_env,
            )  # fmt: skip
        except RuntimeError as exc:
            run_error = str(exc)
    run_stages = None
    summary_file = work / "run-reports" / DATE.isoformat() / "summary.json"
    if run_wall and summary_file.exists():  # where the run's time went, as the run itself measured it
        run_stages = json.loads(summary_file.read_text()).get("stage_seconds")
    duck = json.loads(duck_out.split("RESULT ", 1)[1])
    fast = json.loads(fast_out.split("RESULT ", 1)[1])
    spark = json.loads(spark_out.split("RESULT ", 1)[1])
    agree = duck["hourly"] == spark["hourly"]
    return {
        "rows": rows, "files": len(files), "raw_mb": raw_mb, "gz_mb": dir_size(landing) / 1e6,
        "zcat_s": zcat_s, "zcat_rss": zcat_rss, "fast": fast, "fast_rss": fast_rss, "fast_wall": fast_wall,
        "fast_agrees": fast["hourly"] == duck["hourly"], "duck": duck, "duck_rss": duck_rss, "duck_wall": duck_wall,
        "spark": spark, "spark_rss": spark_rss, "spark_wall": spark_wall, "agree": agree,
        "run_wall": run_wall, "run_rss": run_rss, "run_error": run_error, "run_stages": run_stages,
        "duck_out_mb": dir_size(work / "duckdb_parquet") / 1e6,
        "fast_out_mb": dir_size(work / "duckdb_fast_parquet") / 1e6,
        "spark_out_mb": dir_size(work / "warehouse" / "cdn_logs") / 1e6,
    }  # fmt: skip


def print_table(r: dict) -> None:
    rows, raw_mb = r["rows"], r["raw_mb"]
    duck, fast, spark = r["duck"], r["fast"], r["spark"]
    # Every ratio is against DuckDB's fast form (typed read_csv), the anchor a user would pick instead.
    lines = [
        ("zcat (floor)", r["zcat_s"], r["zcat_rss"], None, None),
        ("DuckDB fast: read_csv -> Parquet", fast["ingest_s"], r["fast_rss"], r["fast_out_mb"], None),
        ("DuckDB fast: hourly statistics", fast["stats_s"], None, None, None),
        ("DuckDB reference (string_split)", duck["ingest_s"], r["duck_rss"], r["duck_out_mb"], fast["ingest_s"]),
        ("Spark JVM start-up", spark["startup_s"], None, None, None),
        ("cdnlake ingest -> Delta", spark["ingest_s"], r["spark_rss"], r["spark_out_mb"], fast["ingest_s"]),
        ("cdnlake compact (OPTIMIZE)", spark["compact_s"], None, None, None),
        ("cdnlake statistics (all tables)", spark["stats_s"], None, None, fast["stats_s"]),
    ]
    print(f"\n{rows:,} lines, {r['files']} files, {r['gz_mb']:.0f} MB gz, {raw_mb:.0f} MB of log text, {CORES} cores")
    print(f"{'step':34} {'seconds':>8} {'rows/s':>11} {'MB/s/core':>10} {'peak RSS':>9} {'peak PSS':>9} "
          f"{'output':>8} {'vs DuckDB':>9}")  # fmt: skip
    for name, secs, memory, out_mb, ref in lines:
        rate = f"{rows / secs:,.0f}" if secs else "-"
        mbps = f"{raw_mb / secs / CORES:.1f}" if secs else "-"
        rss_s, pss_s = (f"{memory[k] / 2**30:.2f} GiB" if memory else "" for k in ("rss", "pss"))
        out_s = f"{out_mb:.0f} MB" if out_mb else ""
        ratio = f"{secs / ref:.2f}x" if ref else ""
        print(f"{name:34} {secs:8.2f} {rate:>11} {mbps:>10} {rss_s:>9} {pss_s:>9} {out_s:>8} {ratio:>9}")
    print(f"whole Spark process (start-up + all steps): {r['spark_wall']:.1f} s wall")
    if r.get("run_error"):
        print(f"`cdnlake run` FAILED: {r['run_error']}")
    if r.get("run_wall"):
        anchor = fast["ingest_s"] + fast["stats_s"]
        print(
            f"`cdnlake run` for the date (JVM, Prefect, all stages, report, e-mail): {r['run_wall']:.1f} s wall "
            f"= {r['run_wall'] / anchor:.2f}x DuckDB fast ingest + hourly ({anchor:.1f} s; target <= 50 s and "
            f"<= 6.5x), peak RSS {r['run_rss']['rss'] / 2**30:.2f} GiB, PSS {r['run_rss']['pss'] / 2**30:.2f} GiB"
        )
        if r.get("run_stages"):
            print("  stage seconds (summary.json):", r["run_stages"])
    print(f"files per cdn_logs partition after compaction: {spark.get('files_per_partition')}")
    print("statistics agree exactly between DuckDB (reference) and cdnlake:", "YES" if r["agree"] else "NO")
    print(
        "DuckDB fast form's hourly statistics equal the reference's:",
        "yes"
        if r["fast_agrees"]
        else "no (it drops what does not fit its typed schema instead of applying cdnlake's rules)",
    )
    print(f"machine load (1/5/15 min) after this day: {os.getloadavg()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--scaling", action="store_true", help="also run 0.5M and 8M lines")
    parser.add_argument("--full-run", action="store_true", help="also time the whole `cdnlake run` of the day")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    sizes = [500_000, args.rows, 8_000_000] if args.scaling else [args.rows]
    results = []
    for rows in sizes:
        result = bench_day(rows, full_run=args.full_run and rows == args.rows)
        print_table(result)
        results.append(result)
    if args.scaling:
        print("\nscaling: lines, ingest us/row, statistics us/row, peak RSS bytes/row, peak PSS bytes/row")
        for r in results:
            s = r["spark"]
            print(f"{r['rows']:>10,} {s['ingest_s'] / r['rows'] * 1e6:8.2f} {s['stats_s'] / r['rows'] * 1e6:8.2f} "
                  f"{r['spark_rss']['rss'] / r['rows']:8.0f} {r['spark_rss']['pss'] / r['rows']:8.0f}")  # fmt: skip
    (OUT / "results.json").write_text(json.dumps(results, indent=2, default=str))
    return 0 if all(r["agree"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
