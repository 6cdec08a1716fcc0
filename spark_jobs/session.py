"""The one place a SparkSession is built: Delta + hadoop-aws jars matched to the pinned pyspark."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pyspark
from pyspark.sql import SparkSession

from spark_jobs import class_archive
from spark_jobs.jars import IVY_DIR, JarResolutionError, ensure_resolved, java_executable

# delta-spark 4.4.1 is on PyPI but its jars never reached Maven Central: the newest Delta for
# Spark 4.1 there is 4.4.0 (artifact name carries the Spark minor version). The Python package is
# pinned to the same 4.4.0 so DeltaTable's Python API matches the jar.
DELTA_VERSION = "4.4.0"
# hadoop-aws must equal the hadoop-client jars bundled in pyspark (3.4.2 for pyspark 4.1.x).
HADOOP_VERSION = "3.4.2"
MIN_JAVA = 17
# The driver's log4j2 configuration: errors on the console, everything in the run's log file.
LOG4J2_CONFIG = Path(__file__).with_name("log4j2.properties")


class JavaNotFoundError(RuntimeError):
    """Java is missing or too old for Spark 4."""


def spark_minor() -> str:
    return ".".join(pyspark.__version__.split(".")[:2])


def jar_packages() -> list[str]:
    return [
        f"io.delta:delta-spark_{spark_minor()}_2.13:{DELTA_VERSION}",
        f"org.apache.hadoop:hadoop-aws:{HADOOP_VERSION}",
    ]


def check_java() -> int:
    """Return the Java major version, or raise a plain message when Spark cannot start."""
    java = java_executable()
    if java is None:
        raise JavaNotFoundError(
            "Java was not found: Spark 4 needs Java 17 or newer. Install it (e.g. `apt-get install "
            "openjdk-17-jre-headless`) or set JAVA_HOME."
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise JavaNotFoundError(f"Could not read the Java version from `{java} -version`: {out.strip()}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise JavaNotFoundError(
            f"Java {major} found at {java}, but Spark 4 needs Java {MIN_JAVA} or newer. "
            "Install a newer JDK/JRE or point JAVA_HOME at one."
        )
    return major


# Printed by the JVM itself, not log4j: Spark 4.1 always adds --add-modules=jdk.incubator.vector.
JVM_NOISE = (b"WARNING: Using incubator modules",)


def _forward_lines(read_fd: int, out_fd: int) -> None:
    with os.fdopen(read_fd, "rb") as source, os.fdopen(out_fd, "wb", buffering=0) as sink:
        for line in source:
            if not line.startswith(JVM_NOISE):
                sink.write(line)


@contextlib.contextmanager
def jvm_stderr_filtered() -> Iterator[None]:
    """A JVM started inside gets a pipe as stderr; a thread passes its lines on, minus JVM_NOISE.

    PySpark starts the driver JVM with this process's stderr and offers no way to change it.
    """
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    saved = os.dup(2)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    threading.Thread(target=_forward_lines, args=(read_fd, os.dup(saved)), daemon=True).start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's write end now lives on in the JVM only: EOF when it exits
        os.close(saved)


def driver_logging_options(log_file: str | None) -> str:
    """JVM options of a driver started by this process: cdnlake's log4j2 file and the run's log."""
    options = f"-Dlog4j2.configurationFile={LOG4J2_CONFIG.resolve().as_uri()}"
    return options + (f" -Dcdnlake.spark.log={Path(log_file).resolve()}" if log_file else "")


def _add_java_options(conf: dict[str, str], options: str) -> None:
    """Adds options to spark.driver.extraJavaOptions, keeping any the caller set."""
    key = "spark.driver.extraJavaOptions"
    conf[key] = " ".join(filter(None, [conf.get(key, ""), options]))


def _with_driver_logging(conf: dict[str, str], log_file: str | None) -> None:
    _add_java_options(conf, driver_logging_options(log_file))


# Spark catalog's default database directory (never holds a cdnlake table; see base_conf).
CATALOG_DIR = Path(tempfile.gettempdir()) / "cdnlake-spark-catalog"


def base_conf(master: str | None, shuffle_partitions: int = 8) -> dict[str, str]:
    """Settings every cdnlake session uses; callers may override any of them."""
    conf = {
        "spark.jars.packages": ",".join(jar_packages()),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        # 200 shuffle partitions made small aggregations slow on 2 cores (PERFORMANCE-NOTES).
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.parquet.compression.codec": "zstd",
        # Dictionary pages cost 3x the Parquet write time of cdn_logs (request ids, URIs, agents are
        # near-unique per file) and zstd alone made smaller files (bench/RESULTS.md).
        "spark.hadoop.parquet.enable.dictionary": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        # Nobody watches a batch job's web UI; its server and listeners cost start-up and per-job time.
        "spark.ui.enabled": "false",
        # Delta computes table snapshots with 50 partitions by default: far too many for the
        # small logs of daily partitions on a few cores (it dominated re-runs in profiling).
        "spark.databricks.delta.snapshotPartitions": "4",
        # Binary files are read whole. Spark's default 128 MB splits (of gz, plus 4 MB per file) make
        # cdn_logs files of ~100 MB at production volume and still give 2 cores 11 tasks for a 2M-line
        # day; 32 MB splits made 4x as many small files for OPTIMIZE to rewrite.
        "spark.sql.files.maxPartitionBytes": str(128 * 1024 * 1024),
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # cdnlake names tables by path only, yet a statement such as `ALTER TABLE delta.`<path>``
        # makes Spark's catalog create its default database, ./spark-warehouse, in whatever
        # directory the command runs from (a user's folder, a read-only image's work dir).
        "spark.sql.warehouse.dir": CATALOG_DIR.as_uri(),
        # A task writes its rows into one or two partitions (one distribution's files, one date):
        # with concurrent writers it streams them instead of sorting them by partition first, a sort
        # that ran out of a 3 GiB heap at 8M lines a day (bench/RESULTS.md).
        "spark.sql.maxConcurrentOutputFileWriters": "2",
        # s3a: credentials come from the default AWS chain (env, web identity/IRSA), never config.
        "spark.hadoop.fs.s3a.aws.credentials.provider": (
            "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider"
        ),
        "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
    }
    if master:  # under spark-submit the master is already set
        conf["spark.master"] = master
    if master and master.startswith(("local", "spark://")):
        # Workers on this machine must use this interpreter (pyarrow, isal, ua-parser live here).
        conf["spark.pyspark.python"] = sys.executable
        conf["spark.pyspark.driver.python"] = sys.executable
    return conf


# Delta 4.4 verifies the whole snapshot state on commit when the JVM's zone is not UTC (a laptop or
# pod with TZ set); the tables hold UTC anyway.
UTC_JAVA_OPTION = "-Duser.timezone=UTC"


def with_utc_jvms(conf: dict[str, str]) -> dict[str, str]:
    """conf with -Duser.timezone=UTC added to the driver's and executors' Java options (kept if present)."""
    for key in ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions"):
        current = conf.get(key, "")
        if "-Duser.timezone=" not in current:
            conf[key] = f"{UTC_JAVA_OPTION} {current}".strip()
    return conf


def _artifact(jar_name: str) -> str:
    """`jackson-databind` of `jackson-databind-2.13.5.jar` or Ivy's `com.fasterxml..._jackson-databind-2.13.5.jar`."""
    base = jar_name.split("_", 1)[1] if "_" in jar_name.split("-", 1)[0] else jar_name
    match = re.match(r"(.+?)-\d", base)
    return match[1] if match else base


def local_class_path(conf: dict[str, str], jars: str) -> dict[str, str]:
    """In local mode, the resolved jars on the driver's class path instead of spark.jars.

    Spark copies every spark.jars entry into the session's userFiles directory on the first job
    (700 MB, most of it the AWS SDK bundle); local executors share the driver's class path. That
    class path comes before Spark's own jars, so the artifacts Spark ships (Ivy also resolved older
    Jackson, Parquet, Hadoop client jars) are left out: with spark.jars Spark's copies won as well.
    """
    bundled = {_artifact(p.name) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    paths = [j.removeprefix("file://").removeprefix("file:") for j in jars.split(",") if j]
    paths = [p for p in paths if _artifact(os.path.basename(p)) not in bundled]
    current = conf.get("spark.driver.extraClassPath")
    conf["spark.driver.extraClassPath"] = os.pathsep.join([*paths, *([current] if current else [])])
    conf.pop("spark.jars.packages", None)
    return conf


def build_session(
    master: str | None = "local[*]",
    app_name: str = "cdnlake",
    extra_conf: Mapping[str, str] | None = None,
    log_file: str | None = None,
) -> SparkSession:
    """Build (or reuse) the process's SparkSession with Delta Lake and S3 support.

    A driver started here (local or standalone master) logs errors only to the console and
    everything to ``log_file`` (spark_jobs/log4j2.properties); its jars come from the list
    `make install` resolved (spark_jobs/jars.py), so Ivy never writes to the console.
    """
    check_java()
    if master and master.startswith(("local", "spark://")):
        # PySpark picks the worker interpreter from this variable, not from the conf alone.
        os.environ["PYSPARK_PYTHON"] = sys.executable
    builder = SparkSession.builder.appName(app_name)
    conf = base_conf(master)
    conf.update(extra_conf or {})
    if master is None:
        # Under spark-submit (Kubernetes, standalone submit) what the submitter set wins:
        # e.g. the web-identity credentials provider or a larger shuffle partition count.
        from pyspark import SparkConf

        submitted = SparkConf()
        conf = {k: v for k, v in conf.items() if not submitted.contains(k)}
    else:
        _with_driver_logging(conf, log_file)
    if master and master.startswith(("local", "spark://")) and "spark.jars.packages" in conf:
        # The jars `make install` resolved (spark_jobs/jars.py): Ivy never runs on the console.
        jars = ensure_resolved(conf["spark.jars.packages"].split(","))
        if master.startswith("local"):
            conf = local_class_path(conf, jars)
            _add_java_options(conf, class_archive.java_options(jars) or class_archive.dump_options())
        else:  # a cluster's executors fetch spark.jars from the driver
            conf["spark.jars"] = jars
            del conf["spark.jars.packages"]
    if master is not None:  # under spark-submit the submitter's Java options stand
        conf = with_utc_jvms(conf)
    for key, value in conf.items():
        builder = builder.config(key, value)
    if master is None:
        spark = builder.getOrCreate()
    else:
        with jvm_stderr_filtered():
            spark = builder.getOrCreate()
    if master is None:  # spark-submit's own log4j configuration is in charge
        spark.sparkContext.setLogLevel("WARN")
    return spark


# For the commits of the small statistics tables only (bench/RESULTS.md, session 7): Delta rebuilds a
# table's snapshot with a Spark query at each commit; for a table of a few files one partition is
# enough (cdn_logs keeps 4), and without adaptive execution that query is one job instead of three
# (AQE makes each shuffle stage a job of its own). Measured on 100-row tables: 5 -> 3 jobs a commit.
SMALL_TABLE_CONF = {"spark.databricks.delta.snapshotPartitions": "1", "spark.sql.adaptive.enabled": "false"}


def small_table_session(spark: SparkSession) -> SparkSession:
    """A copy of `spark`'s session (same settings, same SparkContext and Delta log cache) with
    SMALL_TABLE_CONF: what runs through its DataFrames gets them, the caller's session keeps its own."""
    clone = SparkSession(spark.sparkContext, spark._jsparkSession.cloneSession())
    for key, value in SMALL_TABLE_CONF.items():
        clone.conf.set(key, value)
    return clone


def running_task_counts() -> tuple[int, int] | None:
    """(tasks done, tasks) over the running stages of this process's Spark, or None when idle."""
    from pyspark import SparkContext

    context = SparkContext._active_spark_context
    if context is None:
        return None
    tracker = context.statusTracker()
    stages = [info for info in map(tracker.getStageInfo, tracker.getActiveStageIds()) if info is not None]
    if not stages:
        return None
    return sum(s.numCompletedTasks for s in stages), sum(s.numTasks for s in stages)


def main() -> int:
    """`python -m spark_jobs.session` (make install): Java checked, the jars resolved, one line."""
    started = time.monotonic()
    try:
        check_java()
        jars = ensure_resolved(jar_packages(), announce=lambda text: print(f"Spark/Delta jars: {text}", flush=True))
    except (JavaNotFoundError, JarResolutionError) as exc:
        print(f"Spark/Delta jars: {exc}", file=sys.stderr)
        return 1
    took = time.monotonic() - started
    print(f"Spark/Delta jars: {len(jars.split(','))} jars ready in {IVY_DIR} ({took:.0f} s)")
    archive, took = class_archive.ensure_archive(jars)
    if archive is None:  # a missing archive costs seconds per start, never a failure
        print(f"Spark/Delta jars: no class archive (see {IVY_DIR / class_archive.LOG_NAME}); Spark starts slower")
    elif took:
        print(f"Spark/Delta jars: class archive made for faster Spark starts ({took:.0f} s): {archive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
