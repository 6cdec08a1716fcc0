"""A class-data-sharing archive of the local driver JVM (Java's AppCDS), made once by `make install`.

A local driver loads ~20,000 classes of Spark, Delta and Hadoop from their jars, verifying each,
in every new process: 5-6 s of a cold `cdnlake run` before its first row (bench/RESULTS.md,
session 8: session start 6.6 -> 3.5 s, the first Delta write, read and Python job 1-1.3 s less
each). Java 17 can write the classes a run loaded into an archive at exit
(`-XX:ArchiveClassesAtExit`) and map them at the next start (`-XX:SharedArchiveFile`).

The archive is made by a child process running a tiny ingest and aggregate (the daily path's
classes; spark_jobs/class_archive_workload.py) and named by what it depends on (the java binary,
pyspark, the interpreter, the resolved jars), so a new JDK or jar set gets a new one. A stale or
damaged archive is never fatal: the JVM then ignores it, and the `-Xlog` options below keep it
from saying so on the console. Only local drivers use it (a cluster's driver has another class
path; executors start elsewhere).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyspark

from spark_jobs.jars import IVY_DIR, java_executable

# The JVM says when it cannot use an archive (a JDK update, a jar replaced): speed only, not news.
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"
DUMP_ENV = "CDNLAKE_CLASS_ARCHIVE_DUMP"  # set in the child that writes the archive: no archive read there
LOG_NAME = "cdnlake-class-archive.log"

# Two requests in the 33-field format (AWS's documentation's), for the workload that loads the classes.
_FIELDS = ("date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) "
           "cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header "
           "cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type "
           "cs-protocol-version fle-status fle-encrypted-fields c-port time-to-first-byte "
           "x-edge-detailed-result-type sc-content-type sc-content-len sc-range-start sc-range-end")  # fmt: skip
_LINE = ("2019-12-04\t21:02:{s}\tLAX1\t392\t192.0.2.100\tGET\td111111abcdef8.cloudfront.net\t/index.html\t{status}\t-\t"
         "Mozilla/5.0%20(Windows%20NT%2010.0;%20Win64;%20x64)\t-\t-\t{result}\tREQ{s}\td111111abcdef8.cloudfront.net\t"
         "https\t23\t0.001\t-\tTLSv1.2\tECDHE-RSA-AES128-GCM-SHA256\t{result}\tHTTP/2.0\t-\t-\t11040\t0.001\t{result}\t"
         "text/html\t78\t-\t-")  # fmt: skip
SAMPLE_DATE = dt.date(2019, 12, 4)


def archive_path(jars: str, ivy_dir: Path = IVY_DIR) -> Path | None:
    """Where the archive for this JDK, pyspark and jar set lives (None without Java)."""
    java = java_executable()
    if java is None:
        return None
    java = os.path.realpath(java)  # /usr/bin/java is a link: the JDK it points at is what counts
    stamp = os.stat(java)
    key = "\n".join([java, str(stamp.st_size), str(stamp.st_mtime_ns), pyspark.__version__, sys.executable, jars])
    return ivy_dir / f"cdnlake-classes-{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsa"


def java_options(jars: str, ivy_dir: Path = IVY_DIR) -> str:
    """The driver's Java options that map the archive, or "" when there is none (or it is being made)."""
    if os.environ.get(DUMP_ENV):
        return ""
    path = archive_path(jars, ivy_dir)
    return f"-XX:SharedArchiveFile={path} {QUIET}" if path and path.is_file() else ""


def write_sample(source: Path) -> None:
    """One gzip file of the sample date: two loaded lines, a Miss and a Hit, and a reject."""
    lines = ["#Version: 1.0", f"#Fields: {_FIELDS}",
             _LINE.format(s="31", status="200", result="Hit"), _LINE.format(s="32", status="404", result="Miss"),
             "not a log line"]  # fmt: skip
    source.mkdir(parents=True, exist_ok=True)
    with gzip.open(source / f"E2SAMPLE.{SAMPLE_DATE.isoformat()}-21.archive.gz", "wt", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


def ensure_archive(jars: str, ivy_dir: Path = IVY_DIR, python: str = sys.executable) -> tuple[Path | None, float]:
    """Make the archive if it is missing: (its path or None when it could not be made, seconds).
    `python`: the interpreter of the child that makes it."""
    started = time.monotonic()
    path = archive_path(jars, ivy_dir)
    if path is None or path.is_file():
        return path, 0.0
    # Made beside its final place, so the rename is atomic: a session never maps a half-written file.
    with tempfile.TemporaryDirectory(prefix="cdnlake-archive-", dir=ivy_dir) as tmp:
        partial = Path(tmp) / "classes.jsa"
        env = {**os.environ, DUMP_ENV: str(partial)}
        with open(ivy_dir / LOG_NAME, "wb") as log:  # the JVM's archive warnings: a page of them
            done = subprocess.run([python, "-m", "spark_jobs.class_archive_workload", tmp], env=env, stdout=log,
                                  stderr=subprocess.STDOUT, check=False, timeout=600)  # fmt: skip
        if done.returncode != 0 or not partial.is_file():
            return None, time.monotonic() - started
        os.replace(partial, path)
    return path, time.monotonic() - started


def dump_options() -> str:
    """In the dumping child: write the loaded classes at exit to the path its parent chose."""
    target = os.environ.get(DUMP_ENV)
    return f"-XX:ArchiveClassesAtExit={target}" if target else ""
