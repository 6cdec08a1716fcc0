"""Start-up settings of the SparkSession and the early start of the in-process runner (one test uses a JVM)."""

from __future__ import annotations

import contextlib
import tempfile
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import pyspark
import pytest

from cdnlake.runners import local as runner
from spark_jobs import session


def test_artifact_names_of_ivy_and_spark_jars() -> None:
    assert session._artifact("com.fasterxml.jackson.core_jackson-databind-2.13.5.jar") == "jackson-databind"
    assert session._artifact("jackson-databind-2.21.2.jar") == "jackson-databind"
    assert session._artifact("io.delta_delta-spark_4.1_2.13-4.4.0.jar") == "delta-spark_4.1_2.13"
    assert session._artifact("org.wildfly.openssl_wildfly-openssl-2.1.4.Final.jar") == "wildfly-openssl"
    assert session._artifact("log4j-slf4j2-impl-2.25.3.jar") == "log4j-slf4j2-impl"


def test_local_class_path_keeps_only_what_spark_does_not_ship() -> None:
    shipped = next((Path(pyspark.__file__).parent / "jars").glob("jackson-databind-*.jar")).name
    jars = f"file:///ivy/io.delta_delta-spark_4.1_2.13-4.4.0.jar,file:///ivy/com.fasterxml.jackson.core_{shipped}"
    conf = session.local_class_path({"spark.jars.packages": "x", "spark.driver.extraClassPath": "/mine.jar"}, jars)
    # An older Jackson first on the class path broke Spark's own start (Scala module version check).
    assert conf["spark.driver.extraClassPath"].split(":") == [
        "/ivy/io.delta_delta-spark_4.1_2.13-4.4.0.jar",
        "/mine.jar",
    ]
    assert "spark.jars.packages" not in conf and "spark.jars" not in conf


def test_jvms_run_in_utc_and_keep_other_java_options() -> None:
    conf = session.with_utc_jvms({"spark.driver.extraJavaOptions": "-XX:+UseSerialGC"})
    assert conf["spark.driver.extraJavaOptions"] == "-Duser.timezone=UTC -XX:+UseSerialGC"
    assert conf["spark.executor.extraJavaOptions"] == "-Duser.timezone=UTC"
    chosen = {"spark.driver.extraJavaOptions": "-Duser.timezone=Asia/Tokyo"}  # a user's explicit choice stands
    assert session.with_utc_jvms(chosen)["spark.driver.extraJavaOptions"] == "-Duser.timezone=Asia/Tokyo"
    assert session.base_conf("local[2]")["spark.ui.enabled"] == "false"


class CountingRunner(runner.InProcessRunner):
    """An in-process runner whose 'session' is an object, built on the first call that gets the lock."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__("local[2]")
        self.builds: list[str] = []
        self.fail = fail
        self.release = threading.Event()

    def session(self) -> Any:
        with self._lock:
            if self._spark is None:
                self.builds.append(threading.current_thread().name)
                self.release.wait(5)
                if self.fail:
                    raise RuntimeError("Java was not found")
                self._spark = object()
            return self._spark


def test_session_is_built_once_in_the_background_and_jobs_wait_for_it() -> None:
    fake = CountingRunner()
    thread = fake.start_in_background()
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(fake.session()))
    waiter.start()
    fake.release.set()
    thread.join(5)
    waiter.join(5)
    assert fake.builds == ["cdnlake-spark-start"] and got == [fake._spark]


def test_a_failed_background_start_is_raised_by_the_first_job() -> None:
    fake = CountingRunner(fail=True)
    fake.release.set()
    fake.start_in_background().join(5)  # the thread swallows it: nobody would see it there
    with pytest.raises(RuntimeError, match="Java was not found"):
        fake.session()
    assert len(fake.builds) == 2


def test_no_early_start_on_kubernetes() -> None:
    class Submitting:  # a runner that submits jobs elsewhere (Kubernetes): no session here to start
        def run_job(self, params: object) -> dict[str, object]:
            return {}

        def application(self, run_id: str = "") -> contextlib.AbstractContextManager[None]:
            return contextlib.nullcontext()

    assert runner.start_spark_early(Submitting()) is None


def test_a_statement_on_a_table_path_writes_nothing_in_the_working_directory(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ALTER TABLE delta.`<path>`` (cdn_logs gaining columns or properties) used to make Spark's
    catalog create ./spark-warehouse wherever the command ran (found by tests run in parallel)."""
    table, work = tmp_path / "table", tmp_path / "work"
    work.mkdir()
    spark.range(2).write.format("delta").save(str(table))
    monkeypatch.chdir(work)
    spark.sql(f"ALTER TABLE delta.`{table}` SET TBLPROPERTIES ('cdnlake.test' = '1')")
    assert list(work.iterdir()) == []
    location = Path(urllib.parse.urlparse(spark.catalog.getDatabase("default").locationUri).path)
    assert location.is_relative_to(tempfile.gettempdir()), location
