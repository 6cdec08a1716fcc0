"""Static checks of the Dockerfile and .dockerignore, and real runs of the files baked into the image."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pyspark
import pytest

from cdnlake.runners.kubernetes import APP_ROOT, IVY_SETTINGS
from spark_jobs.session import HADOOP_VERSION, jar_packages

ROOT = Path(__file__).resolve().parents[1]
IMAGE_FILES = ROOT / "k8s" / "image"
MAVEN = "https://repo1.maven.org/maven2/"
SPARK_JARS = Path(pyspark.__file__).parent / "jars"
IVY_CACHE = Path.home() / ".ivy2.5.2" / "cache"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines if line and line[0] != "#"]


def args_defaults() -> dict[str, str]:
    return dict(a.split("=", 1) for op, a in instructions() if op == "ARG" and "=" in a)


def env() -> dict[str, str]:
    pairs = [p for op, a in instructions() if op == "ENV" for p in a.split()]
    return dict(p.split("=", 1) for p in pairs)


def jar_adds() -> list[tuple[str, str]]:
    """(sha256, url) of every jar the image downloads at build time."""
    adds = [a for op, a in instructions() if op == "ADD"]
    found = [re.search(r"--checksum=sha256:([0-9a-f]{64}) (\S+\.jar) /jars/$", a) for a in adds]
    assert all(found), "every ADD is a checksummed jar"
    return [(m.group(1), m.group(2)) for m in found if m]


def coordinates(url: str) -> str:
    """group:artifact:version of a Maven Central URL."""
    *group, artifact, version, _ = url.removeprefix(MAVEN).split("/")
    return f"{'.'.join(group)}:{artifact}:{version}"


def test_base_images_are_pinned() -> None:
    stages: set[str] = set()
    defaults = args_defaults()
    for op, arg in instructions():
        if op != "FROM":
            continue
        image, *rest = arg.split()
        image = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], image)
        if rest:
            stages.add(rest[-1])
        if image in stages or image == "scratch":
            continue
        assert re.search(r":\d+\.\d+\.\d+", image), f"{image}: pin an exact version"
    assert defaults["PYTHON_IMAGE"].startswith("python:3.11.") and "slim" in defaults["PYTHON_IMAGE"]
    make_uv = re.search(r"UV_VERSION := (\S+)", (ROOT / "Makefile").read_text())
    assert make_uv and defaults["UV_IMAGE"].endswith(":" + make_uv.group(1))  # same uv as `make install`


def test_jars_match_the_session_and_are_checksummed() -> None:
    wanted = set(jar_packages())
    added = {coordinates(url): sha for sha, url in jar_adds()}
    assert all(url.startswith(MAVEN) for _, url in jar_adds())
    assert wanted <= set(added), f"missing {wanted - set(added)}"
    assert f"org.apache.hadoop:hadoop-aws:{HADOOP_VERSION}" in added
    assert (SPARK_JARS / f"hadoop-client-api-{HADOOP_VERSION}.jar").exists()  # hadoop-aws matches Spark's Hadoop
    # Never a second copy of what pyspark ships (two versions of one library on the classpath).
    shipped = {re.sub(r"-\d[\w.]*\.jar$", "", p.name) for p in SPARK_JARS.glob("*.jar")}
    assert not {c.split(":")[1] for c in added} & shipped


@pytest.mark.skipif(not IVY_CACHE.exists(), reason="no local Ivy cache to compare with")
def test_jar_checksums_match_the_jars_spark_resolves_locally() -> None:
    """The pinned sha256 values are those of the jars Spark's own resolution downloaded here."""
    checked = 0
    for sha, url in jar_adds():
        group, artifact, version = coordinates(url).split(":")
        cached = list((IVY_CACHE / group / artifact).glob(f"*/{artifact}-{version}.jar"))
        if cached:
            assert hashlib.sha256(cached[0].read_bytes()).hexdigest() == sha, url
            checked += 1
    assert checked == len(jar_adds())


def test_install_from_the_lock_file_as_a_non_root_user() -> None:
    runs = " ".join(a for op, a in instructions() if op == "RUN")
    assert "uv sync --frozen --no-dev" in runs and "pip install" not in runs
    assert "openjdk-17-jre-headless" in runs
    assert "fonts-" not in runs  # the PDF font comes from the locked venv (reporting/fonts.py), not apt
    users = [a for op, a in instructions() if op == "USER"]
    uid = re.sub(r"\$\{APP_UID\}", args_defaults()["APP_UID"], users[-1]).split(":")[0]
    assert uid not in ("root", "0") and int(uid) > 0
    assert [a for op, a in instructions() if op == "ENTRYPOINT"] == ['["/opt/entrypoint.sh"]']


def test_no_secrets_in_env_or_args() -> None:
    names = {**env(), **args_defaults()}
    assert not [k for k in names if re.search(r"(?i)secret|token|password|passwd|credential|access_?key|api_?key", k)]
    text = (ROOT / "Dockerfile").read_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}|hooks\.slack\.com|--mount=type=secret", text)


def test_paths_agree_with_the_runner_and_ivy_settings() -> None:
    e = env()
    spark_home = e["SPARK_HOME"]
    assert spark_home == f"{APP_ROOT}/.venv/lib/python3.11/site-packages/pyspark"
    copies = [a.split() for op, a in instructions() if op == "COPY"]
    assert ["--from=jars", "/jars/", f"{spark_home}/jars/"] in copies
    conf_copy = next(c for c in copies if "k8s/image/ivysettings.xml" in c)
    assert conf_copy[-1] == e["SPARK_CONF_DIR"] + "/"
    assert e["SPARK_CONF_DIR"] + "/ivysettings.xml" == IVY_SETTINGS  # what the SparkApplication points at
    ivy = (IMAGE_FILES / "ivysettings.xml").read_text()
    assert f'pattern="{spark_home}/jars/[artifact]-[revision].[ext]"' in ivy
    defaults = (IMAGE_FILES / "spark-defaults.conf").read_text()
    assert re.search(rf"^spark\.jars\.ivySettings\s+{re.escape(IVY_SETTINGS)}$", defaults, re.M)
    for copy in [c for c in copies if not c[0].startswith("--from")]:  # every local source exists
        for src in [c for c in copy[:-1] if not c.startswith("--")]:
            assert (ROOT / src).exists(), src


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore semantics for the patterns used here (last match wins, ! negates)."""
    result = False
    for pattern in patterns:
        negate, pat = pattern.startswith("!"), pattern.lstrip("!")
        variants = {pat, pat.removeprefix("**/")}
        parts = path.split("/")
        if any(fnmatch.fnmatch("/".join(parts[: i + 1]), v) for v in variants for i in range(len(parts))) or (
            pat.startswith("**/") and any(fnmatch.fnmatch(p, pat[3:]) for p in parts)
        ):
            result = not negate
    return result


def test_dockerignore_keeps_environments_data_and_credentials_out() -> None:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip()[:1] not in ("", "#")]
    for path in (".venv/bin/python", "data/landing/x.gz", ".git/config", ".env", "flows/.env", ".tools/bin/uv",
                 "flows/__pycache__/cli.cpython-311.pyc", "tests/test_ingest.py", "key.pem"):  # fmt: skip
        assert ignored(path, patterns), path
    for path in ("pyproject.toml", "uv.lock", "README.md", "cdnlake/cli.py", "spark_jobs/ingest.py",
                 "reporting/pdf.py", "k8s/image/entrypoint.sh", "k8s/image/ivysettings.xml"):  # fmt: skip
        assert not ignored(path, patterns), path


@pytest.fixture
def entrypoint(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The image's entrypoint with a stand-in tini that prints the command it would exec."""
    (tmp_path / "tini").write_text(
        '#!/bin/sh\n[ "$1" = -s ] && [ "$2" = -- ] || exit 9\nshift 2\nprintf "%s\\n" "$@"\n'
    )
    (tmp_path / "tini").chmod(0o755)
    environ = {"PATH": f"{tmp_path}:/usr/bin:/bin", "SPARK_HOME": "/spark", "JAVA_HOME": "/jre"}
    return IMAGE_FILES / "entrypoint.sh", environ


def run_entrypoint(entrypoint: tuple[Path, dict[str, str]], *args: str, **extra: str) -> list[str]:
    script, environ = entrypoint
    out = subprocess.run([str(script), *args], env={**environ, **extra}, capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def test_entrypoint_is_executable_bash() -> None:
    script = IMAGE_FILES / "entrypoint.sh"
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_entrypoint_driver_runs_spark_submit_in_client_mode(entrypoint: tuple[Path, dict[str, str]]) -> None:
    cmd = run_entrypoint(entrypoint, "driver", "--properties-file", "/opt/spark/conf/spark.properties",
                         "local:///opt/cdnlake/spark_jobs/ingest.py", "--date", "2024-07-13",
                         SPARK_DRIVER_BIND_ADDRESS="10.0.0.7")  # fmt: skip
    assert cmd[:5] == [
        "/spark/bin/spark-submit",
        "--conf",
        "spark.driver.bindAddress=10.0.0.7",
        "--deploy-mode",
        "client",
    ]
    assert cmd[5:] == ["--properties-file", "/opt/spark/conf/spark.properties",
                       "local:///opt/cdnlake/spark_jobs/ingest.py", "--date", "2024-07-13"]  # fmt: skip


def test_entrypoint_executor_starts_the_kubernetes_backend(entrypoint: tuple[Path, dict[str, str]]) -> None:
    cmd = run_entrypoint(
        entrypoint, "executor", SPARK_JAVA_OPT_1="-Dspark.b=2", SPARK_JAVA_OPT_0="-Dspark.a=1",
        SPARK_EXECUTOR_MEMORY="4g", SPARK_DRIVER_URL="spark://CoarseGrainedScheduler@drv:7078", SPARK_EXECUTOR_ID="3",
        SPARK_EXECUTOR_CORES="2", SPARK_APPLICATION_ID="spark-1", SPARK_EXECUTOR_POD_IP="10.0.0.9",
        SPARK_RESOURCE_PROFILE_ID="0", SPARK_EXECUTOR_POD_NAME="app-exec-3", SPARK_CONF_DIR="/opt/spark/conf",
    )  # fmt: skip
    assert cmd[:5] == ["/jre/bin/java", "-Dspark.a=1", "-Dspark.b=2", "-Xms4g", "-Xmx4g"]
    assert cmd[5:8] == [
        "-cp",
        "/opt/spark/conf:/spark/jars/*",
        "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend",
    ]
    flags = dict(zip(cmd[8::2], cmd[9::2], strict=True))
    assert flags == {"--driver-url": "spark://CoarseGrainedScheduler@drv:7078", "--executor-id": "3", "--cores": "2",
                     "--app-id": "spark-1", "--hostname": "10.0.0.9", "--resourceProfileId": "0",
                     "--podName": "app-exec-3"}  # fmt: skip


def test_entrypoint_passes_other_commands_through(entrypoint: tuple[Path, dict[str, str]]) -> None:
    assert run_entrypoint(entrypoint, "prefect", "flow-run", "execute") == ["prefect", "flow-run", "execute"]


@pytest.mark.skipif(not IVY_CACHE.exists(), reason="needs the jars from the local Ivy cache")
def test_image_ivy_settings_resolve_the_session_packages_offline(tmp_path: Path) -> None:
    """A real spark-submit with the image's ivysettings.xml finds jar_packages() in a jars folder."""
    jars = tmp_path / "jars"
    jars.mkdir()
    for group, artifact, version in (p.split(":") for p in jar_packages()):
        (jars / f"{artifact}-{version}.jar").symlink_to(next((IVY_CACHE / group / artifact).glob("*/*.jar")))
    settings = (IMAGE_FILES / "ivysettings.xml").read_text()
    (tmp_path / "ivysettings.xml").write_text(re.sub(r'pattern="[^"]*/jars/', f'pattern="{jars}/', settings))
    (tmp_path / "noop.py").write_text("print('resolved')\n")
    spark_home = Path(pyspark.__file__).parent
    ivy_conf = [f"spark.jars.ivySettings={tmp_path / 'ivysettings.xml'}", f"spark.jars.ivy={tmp_path / 'ivy'}"]
    cmd = [str(spark_home / "bin" / "spark-submit"), "--packages", ",".join(jar_packages()),
           "--conf", ivy_conf[0], "--conf", ivy_conf[1], str(tmp_path / "noop.py")]  # fmt: skip
    environ = {
        **os.environ,
        "SPARK_HOME": str(spark_home),
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    out = subprocess.run(cmd, env=environ, capture_output=True, text=True, timeout=240, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("resolved")
    assert out.stderr.count("in image-jars") == len(jar_packages()) and "central" not in out.stderr
