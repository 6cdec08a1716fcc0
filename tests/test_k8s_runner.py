"""KubernetesRunner against fake Kubernetes APIs: manifest, naming, polling, failures, cleanup."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from cdnlake.runners import kubernetes as k8s_runner
from cdnlake.runners.kubernetes import (
    AppConfig,
    KubernetesRunner,
    PodResources,
    parse_result,
    run_name,
    spark_application,
)
from cdnlake.runners.local import JOBS, JobFailedError, build_runner
from cdnlake.settings import load_settings
from cdnlake.storage import LocalStore
from spark_jobs.params import AggregateParams, CompactParams, IngestParams, ListedFile

PARAMS = IngestParams(dt.date(2024, 7, 13), source="s3a://logs/cf", warehouse="s3a://bucket/warehouse")
ARGS = PARAMS.to_argv()
RESULT = {"date": "2024-07-13", "files": 3, "loaded": 5, "rejected": 0, "per_distro": {"e1": {"loaded": 5}}}
# What run_main prints (indented JSON) followed by the lines Spark logs while shutting down.
DRIVER_LOG = (
    "26/07/14 00:00:01 WARN NativeCodeLoader: Unable to load native-hadoop library\n"
    + json.dumps(RESULT, indent=2)
    + "\n26/07/14 00:01:00 INFO SparkContext: Successfully stopped SparkContext {x}\n"
    + "26/07/14 00:01:01 INFO ShutdownHookManager: Shutdown hook called\n"
)


class FakeCustomObjects:
    """Returns the scripted states one poll at a time; records every call."""

    def __init__(self, states: list[str], error: str = "", pod: str = "the-driver", fail_get: int = 0) -> None:
        self.states, self.error, self.pod, self.fail_get = list(states), error, pod, fail_get
        self.created: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.polls = 0

    def create_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, body: Any) -> Any:
        assert (group, version, plural) == ("sparkoperator.k8s.io", "v1beta2", "sparkapplications")
        assert ns == body["metadata"]["namespace"]
        self.created.append(body)
        return body

    def get_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str) -> Any:
        self.polls += 1
        if self.fail_get:
            self.fail_get -= 1
            raise ApiException(status=503, reason="Service Unavailable")
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        status: dict[str, Any] = {"applicationState": {"state": state}}
        if self.error:
            status["applicationState"]["errorMessage"] = self.error
        if state not in ("", "SUBMITTED", "SUBMISSION_FAILED"):
            status["driverInfo"] = {"podName": self.pod}
        return {"metadata": {"name": name}, "status": status}

    def delete_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str) -> Any:
        self.deleted.append(name)
        return {}


class FakeCore:
    def __init__(self, text: str = DRIVER_LOG) -> None:
        self.text = text
        self.reads: list[tuple[str, int]] = []

    def read_namespaced_pod_log(self, name: str, namespace: str, tail_lines: int) -> str:
        self.reads.append((name, tail_lines))
        if name != "the-driver":
            raise ApiException(status=404, reason="Not Found")
        return "\n".join(self.text.splitlines()[-tail_lines:])


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def make_runner(api: FakeCustomObjects, core: FakeCore, timeout_s: float = 60, **kw: Any) -> KubernetesRunner:
    clock = Clock()
    return KubernetesRunner(
        api, core, "cdnlake", "registry.example/cdnlake:1.2.3", "cdnlake-spark", 3, timeout_s, poll_s=5,
        clock=clock, sleep=clock.sleep, **kw,
    )  # fmt: skip


@pytest.fixture
def manifest() -> dict[str, Any]:
    sizes = {"driver": PodResources(1, "2g"), "executor": PodResources(4, "8g")}
    config = AppConfig(
        image="registry.example/cdnlake:1.2.3", executor_instances=3, aws_region="ap-northeast-1", **sizes
    )
    return spark_application("ingest", ARGS, "cdnlake-ingest-2024-07-13-abcd1234", config)


def test_manifest_kind_image_and_entry_point(manifest: dict[str, Any]) -> None:
    assert manifest["apiVersion"] == "sparkoperator.k8s.io/v1beta2" and manifest["kind"] == "SparkApplication"
    assert manifest["metadata"] == {"name": "cdnlake-ingest-2024-07-13-abcd1234", "namespace": "cdnlake",
                                    "labels": {"app.kubernetes.io/name": "cdnlake"}}  # fmt: skip
    spec = manifest["spec"]
    assert (spec["type"], spec["mode"], spec["image"]) == ("Python", "cluster", "registry.example/cdnlake:1.2.3")
    assert spec["mainApplicationFile"] == "local:///opt/cdnlake/spark_jobs/ingest.py"
    assert spec["arguments"] == ARGS
    assert spec["sparkVersion"].startswith("4.")
    assert spec["restartPolicy"] == {"type": "Never"} and spec["timeToLiveSeconds"] > 0


def test_manifest_resources_and_service_account(manifest: dict[str, Any]) -> None:
    driver, executor = manifest["spec"]["driver"], manifest["spec"]["executor"]
    assert (driver["cores"], driver["memory"]) == (1, "2g")
    assert (executor["cores"], executor["memory"], executor["instances"]) == (4, "8g", 3)
    for pod in (driver, executor):
        assert pod["serviceAccount"] == "cdnlake-spark"  # executors read S3 through IRSA too
        assert pod["podSecurityContext"]["runAsNonRoot"] is True and pod["podSecurityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["allowPrivilegeEscalation"] is False
        assert {"name": "AWS_REGION", "value": "ap-northeast-1"} in pod["env"]
    assert "dynamicAllocation" not in manifest["spec"]


def test_dynamic_allocation_when_a_maximum_is_set() -> None:
    spec = spark_application("compact", ARGS, "n", AppConfig(executor_instances=2, max_executors=10))["spec"]
    assert spec["dynamicAllocation"] == {"enabled": True, "initialExecutors": 2, "minExecutors": 1, "maxExecutors": 10}


def test_spark_conf_delta_and_s3a_web_identity(manifest: dict[str, Any]) -> None:
    from spark_jobs.session import base_conf

    conf = manifest["spec"]["sparkConf"]
    assert all(isinstance(v, str) for v in conf.values())
    assert conf["spark.hadoop.fs.s3a.aws.credentials.provider"] == (
        "software.amazon.awssdk.auth.credentials.WebIdentityTokenFileCredentialsProvider"
    )
    assert conf["spark.hadoop.fs.s3a.endpoint.region"] == "ap-northeast-1"
    session = base_conf(None)  # the same Delta wiring as every local session
    for key in ("spark.sql.extensions", "spark.sql.catalog.spark_catalog", "spark.hadoop.fs.s3.impl"):
        assert conf[key] == session[key]
    # Jars are baked into the image: nothing is resolved or downloaded when the driver starts.
    assert "spark.jars.packages" not in conf and conf["spark.jars.ivySettings"].startswith("/opt/cdnlake/")


def test_manifest_carries_no_secrets(manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest).lower()
    for word in ("secret", "access.key", "accesskey", "access_key", "password", 'token":', "session.token"):
        assert word not in text
    assert not re.search(r"akia[0-9a-z]{16}", text)  # an AWS access key id


def test_run_name_is_a_unique_dns_label() -> None:
    names = {run_name("ingest", ARGS) for _ in range(50)}
    assert len(names) == 50
    for name in names:
        assert name.startswith("cdnlake-ingest-2024-07-13-")
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63
    name = run_name("analyze_misses", ["--start=2024-07-01", "--end", "2024-07-13"], suffix="abcd1234")
    assert name == "cdnlake-analyze-misses-2024-07-01-abcd1234"
    long = run_name("ingest", ["--date", "X" * 200 + "--__"], suffix="abcd1234")
    assert len(long) <= 63 and len(long + "-driver") <= 63  # the driver pod name fits too
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", long) and "--" not in long


def test_polls_through_states_to_completed_and_returns_the_result() -> None:
    api, core = FakeCustomObjects(["", "SUBMITTED", "RUNNING", "RUNNING", "SUCCEEDING", "COMPLETED"]), FakeCore()
    result = make_runner(api, core).run_job(PARAMS)
    assert result == RESULT
    assert api.polls == 6
    (created,) = api.created
    assert api.deleted == [created["metadata"]["name"]]
    assert core.reads and core.reads[-1][0] == "the-driver"


def test_failure_carries_state_reason_and_log_tail() -> None:
    api = FakeCustomObjects(["SUBMITTED", "RUNNING", "FAILED"], error="driver container failed with ExitCode: 1")
    core = FakeCore("line 1\nTraceback (most recent call last):\nValueError: bad partition\n")
    with pytest.raises(JobFailedError) as info:
        make_runner(api, core).run_job(CompactParams(PARAMS.date, PARAMS.warehouse))
    message = str(info.value)
    assert "FAILED: driver container failed with ExitCode: 1" in message and message.startswith("compact: ")
    assert "ValueError: bad partition" in message  # the driver's log tail
    assert len(api.deleted) == 1


def test_submission_failure_without_driver_pod_still_reports() -> None:
    api = FakeCustomObjects(["SUBMISSION_FAILED"], error="failed to run spark-submit", pod="absent")
    with pytest.raises(JobFailedError, match="SUBMISSION_FAILED: failed to run spark-submit") as info:
        make_runner(api, FakeCore()).run_job(PARAMS)
    assert "unavailable" in str(info.value) and len(api.deleted) == 1


def test_timeout_raises_and_cleans_up() -> None:
    api, core = FakeCustomObjects(["SUBMITTED", "RUNNING"]), FakeCore("still working\n")
    with pytest.raises(JobFailedError, match=r"timed out after 60s \(last state RUNNING\)") as info:
        make_runner(api, core, timeout_s=60).run_job(AggregateParams(PARAMS.date, PARAMS.warehouse))
    assert "still working" in str(info.value)
    assert api.polls == 13 and len(api.deleted) == 1  # 0, 5, ... 60 s


def test_transient_api_errors_are_retried() -> None:
    api = FakeCustomObjects(["RUNNING", "COMPLETED"], fail_get=3)
    assert make_runner(api, FakeCore()).run_job(PARAMS) == RESULT


def test_completed_without_result_is_an_error() -> None:
    api = FakeCustomObjects(["COMPLETED"])
    with pytest.raises(JobFailedError, match="no JSON result"):
        make_runner(api, FakeCore("just logs\n{not json\n")).run_job(PARAMS)
    assert len(api.deleted) == 1


def test_cleanup_happens_even_when_polling_crashes() -> None:
    class Boom(FakeCustomObjects):
        def get_namespaced_custom_object(self, *a: Any) -> Any:
            raise KeyboardInterrupt

    api = Boom(["RUNNING"])
    with pytest.raises(KeyboardInterrupt):
        make_runner(api, FakeCore()).run_job(PARAMS)
    assert len(api.deleted) == 1


def test_failed_delete_does_not_hide_the_result(caplog: pytest.LogCaptureFixture) -> None:
    class Sticky(FakeCustomObjects):
        def delete_namespaced_custom_object(self, *a: Any) -> Any:
            raise ApiException(status=403, reason="Forbidden")

    assert make_runner(Sticky(["COMPLETED"]), FakeCore()).run_job(PARAMS) == RESULT
    assert "could not delete" in caplog.text


def test_invalid_parameters_are_rejected_before_anything_is_created() -> None:
    api = FakeCustomObjects(["COMPLETED"])
    with pytest.raises(ValueError, match="not an acceptable location"):
        make_runner(api, FakeCore()).run_job(PARAMS.replace(warehouse="s3a://bucket/x'; DROP"))
    assert not api.created and not api.deleted


def test_parse_result_takes_the_last_json_object() -> None:
    assert parse_result(DRIVER_LOG) == RESULT
    assert parse_result('{"a": 1}\nlog\n{"b": 2}\nINFO {"c": 3}\n') == {"b": 2}
    assert parse_result("no json here") is None
    assert parse_result('{"truncated": ') is None


@pytest.fixture
def fake_kubernetes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    from kubernetes import client, config

    calls: list[str] = []

    def no_cluster() -> None:
        calls.append("incluster")
        raise config.ConfigException("not in a cluster")

    monkeypatch.setattr(config, "load_incluster_config", no_cluster)
    monkeypatch.setattr(config, "load_kube_config", lambda: calls.append("kubeconfig"))
    monkeypatch.setattr(client, "CustomObjectsApi", lambda: "custom-api")
    monkeypatch.setattr(client, "CoreV1Api", lambda: "core-api")
    yield calls


def test_build_runner_kubernetes_builds_from_settings(fake_kubernetes: list[str]) -> None:
    settings = load_settings({}, spark_runner="kubernetes", k8s_namespace="etl", k8s_image="img:9",
                             k8s_executor_instances=5, k8s_timeout_s=99, aws_region="eu-west-1")  # fmt: skip
    runner = build_runner(settings)
    assert isinstance(runner, KubernetesRunner)
    assert fake_kubernetes == ["incluster", "kubeconfig"]  # falls back to the local kubeconfig
    assert (runner.api, runner.core, runner.timeout_s) == ("custom-api", "core-api", 99)
    c = runner.config
    assert (c.namespace, c.image, c.service_account, c.executor_instances) == ("etl", "img:9", "cdnlake-spark", 5)
    assert c.aws_region == "eu-west-1" and c.driver.memory == settings.k8s_driver_memory == "4g"


def test_every_job_has_a_module_path() -> None:
    for job in JOBS:
        spec = spark_application(job, ["--date", "2024-01-01"], run_name(job, []), AppConfig())["spec"]
        assert spec["mainApplicationFile"] == f"local:///opt/cdnlake/spark_jobs/{job}.py"
    assert k8s_runner.MAX_NAME + len("-driver") == 63


def test_hash_key_reaches_the_ingest_driver_from_the_secret_not_the_spec(fake_kubernetes: list[str]) -> None:
    key = "k8s-hash-key-value-zq7"
    settings = load_settings({}, spark_runner="kubernetes", anonymize_ip="hash", ip_hash_key=key)
    runner = build_runner(settings)
    assert isinstance(runner, KubernetesRunner)
    ingest = spark_application("ingest", ["--date", "2024-01-01"], "n", runner.config)
    assert {"name": "CDNLAKE_IP_HASH_KEY", "valueFrom": {"secretKeyRef": {
        "name": "cdnlake-secrets", "key": "CDNLAKE_IP_HASH_KEY"}}} in ingest["spec"]["driver"]["env"]  # fmt: skip
    assert key not in json.dumps(ingest)  # by reference only: the value is in no manifest
    aggregate = spark_application("aggregate", ["--date", "2024-01-01"], "n", runner.config)
    assert "CDNLAKE_IP_HASH_KEY" not in json.dumps(aggregate)  # only the job that hashes gets it
    plain = build_runner(load_settings({}, spark_runner="kubernetes"))
    assert "CDNLAKE_IP_HASH_KEY" not in json.dumps(spark_application("ingest", [], "n", plain.config))


def test_build_runner_kubernetes_puts_run_folders_under_the_warehouse(fake_kubernetes: list[str]) -> None:
    runner = build_runner(load_settings({}, spark_runner="kubernetes", warehouse="s3a://bucket/wh/"))
    assert isinstance(runner, KubernetesRunner) and runner.runs_store is not None
    store = runner.runs_store()  # made on first use: a per-job run never builds an S3 client for it
    assert store.location == "s3://bucket/wh/_cdnlake_runs"
    assert store.uri("app-1") == "s3://bucket/wh/_cdnlake_runs/app-1"  # the driver reads it through s3a


# ---------------------------------------------------------------- the ingest's file list (issue 15, item 4)
LISTED = tuple(ListedFile(f"s3://logs/cf/E1ABC.2024-07-13-{h:02d}.a{i}.gz", 1000 + i, 1720828800000 + h)
               for h in range(24) for i in range(100))  # fmt: skip


def test_a_listed_ingest_reads_its_files_from_a_document_next_to_the_warehouse(tmp_path: Path) -> None:
    """2,400 files do not go on the driver's command line: the runner writes them as JSON into the
    warehouse's run folders and passes --files-from; the document holds exactly the listed files."""
    store = LocalStore(tmp_path / "warehouse")
    api = FakeCustomObjects(["COMPLETED"])
    result = make_runner(api, FakeCore(), runs_store=lambda: store).run_job(PARAMS.replace(files=LISTED))
    assert result == RESULT
    (created,) = api.created
    arguments = created["spec"]["arguments"]
    at = arguments.index("--files-from")
    uri = arguments[at + 1]
    (key,) = store.list("file-lists/")
    assert uri == store.uri(key) and key.startswith("file-lists/2024-07-13-")
    written = json.loads((tmp_path / "warehouse" / key).read_text(encoding="utf-8"))
    assert len(written) == 2400 and written[0] == {"uri": "s3://logs/cf/E1ABC.2024-07-13-00.a0.gz", "size": 1000,
                                                   "modified_ms": 1720828800000}  # fmt: skip
    assert sum(len(a) for a in arguments) < 500  # the command line stays small
    assert not any("E1ABC" in a for a in arguments)


def test_a_listed_ingest_without_a_store_fails_before_submitting() -> None:
    api = FakeCustomObjects(["COMPLETED"])
    with pytest.raises(JobFailedError, match="a file list needs the warehouse's run folders"):
        make_runner(api, FakeCore()).run_job(PARAMS.replace(files=LISTED[:1]))
    assert api.created == []


def test_an_unlisted_ingest_goes_unchanged(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "warehouse")
    api = FakeCustomObjects(["COMPLETED"])
    make_runner(api, FakeCore(), runs_store=lambda: store).run_job(PARAMS)
    assert api.created[0]["spec"]["arguments"] == ARGS and store.list("") == []
