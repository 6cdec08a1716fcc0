"""The Delta and hadoop-aws jars, resolved once and outside the console.

Spark resolves `spark.jars.packages` with Ivy on every start (10-20 s even with a warm cache) and
prints Ivy's whole log, proxy and "host not found" warnings included, which reads as a failure.
So the jars are resolved once, by spark-submit in a child process whose output goes to a log file
(`make install` runs `python -m spark_jobs.session`; a session that finds no list does it too), and
every later session gets the resolved files as `spark.jars`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# Spark 4's default Ivy home (spark.jars.ivy): the jars land where a plain spark-submit puts them.
IVY_DIR = Path.home() / ".ivy2.5.2"
LOG_NAME = "cdnlake-jars.log"
FIRST_DOWNLOAD = "about 700 MB from Maven Central, 610 MB of it the AWS SDK bundle that s3a needs"

Resolver = Callable[[list[str], Path], None]


def java_executable() -> str | None:
    """The `java` Spark will start: $JAVA_HOME/bin/java, else the first on PATH (None if neither exists)."""
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    return java if java and os.path.exists(java) else None


class JarResolutionError(RuntimeError):
    """The jars could not be resolved; the message names the log with Ivy's output."""


def jar_list_file(packages: Sequence[str], ivy_dir: Path = IVY_DIR) -> Path:
    digest = hashlib.sha256(",".join(packages).encode()).hexdigest()[:16]
    return ivy_dir / f"cdnlake-jars-{digest}.txt"


def cached_jars(packages: Sequence[str], ivy_dir: Path = IVY_DIR) -> str | None:
    """The comma-separated `file:` URIs resolved earlier for `packages`, if every file still exists."""
    listing = jar_list_file(packages, ivy_dir)
    if not listing.is_file():
        return None
    jars = listing.read_text().strip()
    paths = [j.removeprefix("file://") for j in jars.split(",") if j]
    return jars if paths and all(os.path.isfile(p) for p in paths) else None


def remember_jars(jars: str, packages: Sequence[str], ivy_dir: Path = IVY_DIR) -> None:
    if jars and all(j.startswith("file:") for j in jars.split(",")):
        with contextlib.suppress(OSError):
            ivy_dir.mkdir(parents=True, exist_ok=True)
            jar_list_file(packages, ivy_dir).write_text(jars)


def resolve_in_child(packages: list[str], log: Path) -> None:
    """spark-submit resolves the packages and runs this file (`--emit`), which records the jars;
    no SparkContext is started. Its output and the JVM's go to `log`."""
    import pyspark

    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}  # fmt: skip
    command = [str(submit), "--master", "local[1]", "--packages", ",".join(packages),
               str(Path(__file__).resolve()), "--emit", *packages]  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
        out.flush()
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                       check=False, timeout=3600)  # fmt: skip


def ensure_resolved(packages: list[str], resolve: Resolver = resolve_in_child, ivy_dir: Path = IVY_DIR,
                    announce: Callable[[str], None] | None = None) -> str:  # fmt: skip
    """The resolved jars of `packages` (`spark.jars` value), resolving them first if needed."""
    jars = cached_jars(packages, ivy_dir)
    if jars:
        return jars
    log = ivy_dir / LOG_NAME
    say = announce or (lambda text: print(text, file=sys.stderr, flush=True))
    say(f"resolving the Spark/Delta jars into {ivy_dir} (the first time: {FIRST_DOWNLOAD}); Ivy's log: {log}")
    resolve(packages, log)
    jars = cached_jars(packages, ivy_dir)
    if not jars:
        raise JarResolutionError(
            f"could not resolve the Spark/Delta jars {', '.join(packages)}: see {log} "
            "(Java 17+ installed? Maven Central reachable, directly or through a proxy?)"
        )
    return jars


def _emit(packages: list[str]) -> None:
    """Run by spark-submit: its JVM holds the resolved jars in `spark.jars`; record them."""
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # connects to spark-submit's JVM; no SparkContext is created
    remember_jars(SparkConf().get("spark.jars", ""), packages)


def main(argv: Sequence[str] | None = None) -> int:
    """spark-submit runs this file with `--emit PACKAGE...` (see resolve_in_child)."""
    parser = argparse.ArgumentParser(prog="spark_jobs/jars.py")
    parser.add_argument("--emit", nargs="+", metavar="PACKAGE", required=True)
    _emit(parser.parse_args(argv).emit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
