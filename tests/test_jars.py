"""Jars resolved once, off the console (spark_jobs/jars.py), and the Spark driver's quiet console."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from spark_jobs import jars, session

PACKAGES = ["io.delta:delta-spark_4.1_2.13:4.4.0", "org.apache.hadoop:hadoop-aws:3.4.2"]
ROOT = Path(__file__).resolve().parents[1]


def jar_files(folder: Path, count: int) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"j{i}.jar" for i in range(count)]
    for path in paths:
        path.write_bytes(b"PK")
    return ",".join(path.as_uri() for path in paths)


def test_a_resolved_list_is_used_without_resolving(tmp_path: Path) -> None:
    listing = jar_files(tmp_path / "jars", 3)
    jars.remember_jars(listing, PACKAGES, tmp_path)

    def must_not_run(packages: list[str], log: Path) -> None:
        raise AssertionError("resolved again")

    assert jars.ensure_resolved(PACKAGES, resolve=must_not_run, ivy_dir=tmp_path) == listing


def test_resolves_once_with_one_announcement(tmp_path: Path) -> None:
    calls: list[tuple[list[str], Path]] = []
    said: list[str] = []

    def resolver(packages: list[str], log: Path) -> None:  # what the child process leaves behind
        calls.append((packages, log))
        jars.remember_jars(jar_files(tmp_path / "jars", 2), packages, tmp_path)

    first = jars.ensure_resolved(PACKAGES, resolve=resolver, ivy_dir=tmp_path, announce=said.append)
    again = jars.ensure_resolved(PACKAGES, resolve=resolver, ivy_dir=tmp_path, announce=said.append)
    assert first == again and len(first.split(",")) == 2
    assert calls == [(PACKAGES, tmp_path / "cdnlake-jars.log")]
    assert len(said) == 1 and str(tmp_path / "cdnlake-jars.log") in said[0] and "700 MB" in said[0]


def test_a_vanished_jar_means_resolving_again(tmp_path: Path) -> None:
    listing = jar_files(tmp_path / "jars", 2)
    jars.remember_jars(listing, PACKAGES, tmp_path)
    (tmp_path / "jars" / "j1.jar").unlink()
    assert jars.cached_jars(PACKAGES, tmp_path) is None


def test_failed_resolution_names_the_log(tmp_path: Path) -> None:
    with pytest.raises(jars.JarResolutionError, match=r"see .*cdnlake-jars\.log"):
        jars.ensure_resolved(PACKAGES, resolve=lambda packages, log: None, ivy_dir=tmp_path, announce=lambda t: None)


def test_non_file_jars_are_not_remembered(tmp_path: Path) -> None:
    jars.remember_jars("https://repo.example/x.jar", PACKAGES, tmp_path)
    assert not jars.jar_list_file(PACKAGES, tmp_path).exists()


def test_driver_logging_options_keep_the_callers() -> None:
    conf = {"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"}
    session._with_driver_logging(conf, "/tmp/x/spark.log")
    options = conf["spark.driver.extraJavaOptions"].split()
    assert options[0] == "-XX:TieredStopAtLevel=1"
    assert options[1] == f"-Dlog4j2.configurationFile={(ROOT / 'spark_jobs' / 'log4j2.properties').as_uri()}"
    assert options[2] == "-Dcdnlake.spark.log=/tmp/x/spark.log"


QUIET_DRIVER = textwrap.dedent("""
    import sys
    from pyspark.sql import Window, functions as F
    from spark_jobs.session import build_session
    spark = build_session("local[1]", log_file=sys.argv[1], extra_conf={
        "spark.ui.enabled": "false", "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"})
    # A window without partitions: Spark logs "WARN WindowExec: No Partition Defined".
    rows = spark.range(3).withColumn("n", F.row_number().over(Window.orderBy("id"))).collect()
    print("rows", len(rows))
    spark.stop()
""")


def test_driver_console_shows_errors_only_and_the_file_has_the_rest(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "spark.log"
    log.parent.mkdir()
    done = subprocess.run([sys.executable, "-c", QUIET_DRIVER, str(log)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**__import__("os").environ, "SPARK_LOCAL_IP": "127.0.0.1"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "rows 3"
    assert done.stderr == ""  # no Ivy, no WARN, no "Setting default log level", no JVM incubator warning
    text = log.read_text()
    assert "WARN WindowExec: No Partition Defined for Window operation" in text
    assert "INFO SparkContext: Running Spark version" in text
