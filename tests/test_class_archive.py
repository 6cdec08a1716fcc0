"""The local driver's class archive (spark_jobs/class_archive.py): named by what it depends on, used
when present, never fatal or noisy when it cannot be used."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from spark_jobs import class_archive, session
from spark_jobs.jars import cached_jars, java_executable

JARS = "file:///ivy/a.jar,file:///ivy/b.jar"


def test_options_only_when_the_archive_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(class_archive.DUMP_ENV, raising=False)
    assert class_archive.java_options(JARS, tmp_path) == ""
    path = class_archive.archive_path(JARS, tmp_path)
    assert path is not None and path.parent == tmp_path and path.suffix == ".jsa"
    path.write_bytes(b"x")
    assert class_archive.java_options(JARS, tmp_path) == f"-XX:SharedArchiveFile={path} {class_archive.QUIET}"
    # The child that writes an archive maps none (Java cannot map one archive while dumping another).
    monkeypatch.setenv(class_archive.DUMP_ENV, str(tmp_path / "new.jsa"))
    assert class_archive.java_options(JARS, tmp_path) == ""
    assert class_archive.dump_options() == f"-XX:ArchiveClassesAtExit={tmp_path / 'new.jsa'}"


def test_another_jar_set_gets_another_archive(tmp_path: Path) -> None:
    assert class_archive.archive_path(JARS, tmp_path) != class_archive.archive_path(JARS + ",file:///c.jar", tmp_path)


def test_an_unusable_archive_is_ignored_silently(tmp_path: Path) -> None:
    """A damaged or stale archive (a JDK update, other jars): the JVM runs, and says nothing about it."""
    java = java_executable()
    assert java is not None
    damaged = tmp_path / "damaged.jsa"
    damaged.write_bytes(b"\0" * 4096)
    source = tmp_path / "Hello.java"
    source.write_text('public class Hello { public static void main(String[] a) { System.out.println("ran"); } }')
    options = f"-XX:SharedArchiveFile={damaged} {class_archive.QUIET}".split()
    done = subprocess.run([java, *options, str(source)], capture_output=True, text=True, check=False, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, "ran\n", "")


def test_the_install_made_the_archive_and_the_session_maps_it(spark: Any) -> None:
    """`make install` (python -m spark_jobs.session) made the archive for this machine's jars, and the
    test session's driver was started with it."""
    jars = cached_jars(session.jar_packages())
    assert jars, "make install resolves the jars"
    path = class_archive.archive_path(jars)
    assert path is not None and path.is_file(), f"make install makes {path}"
    arguments = list(spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert f"-XX:SharedArchiveFile={path}" in arguments


def test_a_failed_archive_is_reported_not_raised(tmp_path: Path) -> None:
    """A child that could not write the archive: no archive, no exception, the log kept."""
    path, _ = class_archive.ensure_archive(JARS, tmp_path, python="/bin/false")
    assert path is None
    assert (tmp_path / class_archive.LOG_NAME).is_file()
    assert not list(tmp_path.glob("*.jsa"))
