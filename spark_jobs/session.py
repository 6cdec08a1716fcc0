"""The one place a SparkSession is built: Delta + hadoop-aws jars matched to the pinned pyspark."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pyspark
from pyspark.sql import SparkSession

# delta-spark 4.4.1 is on PyPI but its jars never reached Maven Central: the newest Delta for
# Spark 4.1 there is 4.4.0 (artifact name carries the Spark minor version). The Python package is
# pinned to the same 4.4.0 so DeltaTable's Python API matches the jar.
DELTA_VERSION = "4.4.0"
# hadoop-aws must equal the hadoop-client jars bundled in pyspark (3.4.2 for pyspark 4.1.x).
HADOOP_VERSION = "3.4.2"
MIN_JAVA = 17


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
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java or not os.path.exists(java):
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


def _jar_list_file(packages: list[str]) -> Path:
    digest = hashlib.sha256(",".join(packages).encode()).hexdigest()[:16]
    return Path.home() / ".ivy2.5.2" / f"cdnlake-jars-{digest}.txt"


def cached_jars(packages: list[str]) -> str | None:
    """Local jar paths resolved by an earlier session, if all still exist.

    Resolving `spark.jars.packages` through Ivy costs 10-20 s on every start even with a warm
    cache; handing Spark the already-resolved files skips it.
    """
    listing = _jar_list_file(packages)
    if not listing.is_file():
        return None
    jars = listing.read_text().strip()
    paths = [j.removeprefix("file://") for j in jars.split(",") if j]
    return jars if paths and all(os.path.isfile(p) for p in paths) else None


def remember_jars(spark: SparkSession, packages: list[str]) -> None:
    jars = spark.sparkContext.getConf().get("spark.jars", "")
    if jars and all(j.startswith("file:") for j in jars.split(",")):
        with contextlib.suppress(OSError):
            _jar_list_file(packages).write_text(jars)


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
) -> SparkSession:
    """Build (or reuse) the process's SparkSession with Delta Lake and S3 support."""
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
    packages = conf.get("spark.jars.packages", "").split(",")
    jars = cached_jars(packages) if master and master.startswith("local") else None
    if jars and "spark.jars.packages" in conf:
        conf = local_class_path(conf, jars)
    if master is not None:  # under spark-submit the submitter's Java options stand
        conf = with_utc_jvms(conf)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if not jars and master and master.startswith("local"):
        remember_jars(spark, packages)
    spark.sparkContext.setLogLevel("WARN")
    return spark
