"""Static checks of k8s/: schemas, least-privilege RBAC, no secrets, agreement with the code."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from cdnlake.runners.k8s_manifest import LOOP_JOB
from cdnlake.runners.kubernetes import AppConfig, spark_application
from cdnlake.runners.local import JOBS
from cdnlake.settings import Settings, load_settings

K8S = Path(__file__).resolve().parents[1] / "k8s"
NAMESPACE = "cdnlake"
DNS_LABEL = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}


def obj(api_version: str, namespaced: bool = True, **props: Any) -> dict[str, Any]:
    """Schema of one Kubernetes object kind (the fields cdnlake uses, as the API defines them)."""
    metadata = {
        "type": "object",
        "properties": {"name": DNS_LABEL, "namespace": {"const": NAMESPACE}, "labels": STRINGS, "annotations": STRINGS},
        "required": ["name", "namespace"] if namespaced else ["name"],
    }
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", *props.pop("required", [])],
        "properties": {"apiVersion": {"const": api_version}, "metadata": metadata, **props},
    }


POD = {
    "type": "object",
    "required": ["cores", "memory", "serviceAccount"],
    "properties": {"cores": {"type": "integer", "minimum": 1}, "memory": {"type": "string", "pattern": r"^\d+[kmgt]$"},
                   "instances": {"type": "integer", "minimum": 1}, "serviceAccount": DNS_LABEL},
}  # fmt: skip
SPARK_APP = obj("sparkoperator.k8s.io/v1beta2", required=["spec"], spec={
    "type": "object",
    # Required by the v1beta2 CRD (api/v1beta2/sparkapplication_types.go: no omitempty).
    "required": ["type", "sparkVersion", "mainApplicationFile", "driver", "executor"],
    "properties": {"type": {"enum": ["Java", "Python", "Scala", "R"]}, "mode": {"enum": ["cluster", "client"]},
                   "mainApplicationFile": {"type": "string", "pattern": "^local:///opt/cdnlake/spark_jobs/"},
                   "arguments": {"type": "array", "items": {"type": "string"}}, "sparkConf": STRINGS,
                   "restartPolicy": {"properties": {"type": {"enum": ["Never", "Always", "OnFailure"]}}},
                   "driver": POD, "executor": POD},
})  # fmt: skip
SPARK_APP["properties"]["metadata"]["required"] = ["namespace"]  # templates use generateName
RULE_KEYS = ("apiGroups", "resources", "verbs")
RULE = {"type": "object", "required": list(RULE_KEYS), "additionalProperties": False,
        "properties": {k: {"type": "array", "items": {"type": "string"}} for k in RULE_KEYS}}  # fmt: skip
SCHEMAS = {
    "Namespace": obj("v1", namespaced=False),
    "ServiceAccount": obj("v1", automountServiceAccountToken={"type": "boolean"}),
    "ConfigMap": obj("v1", required=["data"], data=STRINGS),
    "Role": obj("rbac.authorization.k8s.io/v1", required=["rules"], rules={"type": "array", "items": RULE}),
    "RoleBinding": obj("rbac.authorization.k8s.io/v1", required=["subjects", "roleRef"], subjects={
        "type": "array", "minItems": 1,
        "items": {"required": ["kind", "name", "namespace"], "properties": {
            "kind": {"const": "ServiceAccount"}, "namespace": {"const": NAMESPACE}}}},
        roleRef={"required": ["apiGroup", "kind", "name"], "properties": {"kind": {"const": "Role"}}}),
    "SparkApplication": SPARK_APP,
}  # fmt: skip
KUSTOMIZATION = {
    "type": "object",
    "required": ["apiVersion", "kind", "resources"],
    "properties": {"apiVersion": {"const": "kustomize.config.k8s.io/v1beta1"}, "kind": {"const": "Kustomization"},
                   "resources": {"type": "array", "items": {"type": "string"}},
                   "patches": {"type": "array", "items": {"oneOf": [{"required": ["path"]}, {"required": ["patch"]}]}}},
}  # fmt: skip


def load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def all_yaml() -> list[Path]:
    return sorted(p for p in K8S.rglob("*") if p.suffix in (".yaml", ".yml"))


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes object (not kustomizations or Helm values) with its file."""
    return [(p, d) for p in all_yaml() if p.name != "kustomization.yaml" and "helm" not in p.parts for d in load(p)]


def objects(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for p, d in manifests() if d["kind"] == kind and "base" in p.parts}


def settings_data(overlay: str | None = None) -> dict[str, str]:
    data = dict(objects("ConfigMap")["cdnlake-settings"]["data"])
    if overlay:
        data.update(load(K8S / "overlays" / overlay / "settings.yaml")[0]["data"])
    return data


def test_every_yaml_parses_and_every_object_matches_its_schema() -> None:
    assert len(all_yaml()) >= 12
    for path, doc in manifests():
        assert doc.get("kind") in SCHEMAS, f"{path}: unexpected kind {doc.get('kind')} (no cluster-wide objects)"
        try:
            jsonschema.validate(doc, SCHEMAS[doc["kind"]])
        except jsonschema.ValidationError as exc:
            pytest.fail(f"{path.relative_to(K8S)}: {exc.message} at {list(exc.absolute_path)}")


def test_kustomizations_reference_existing_files() -> None:
    kustomizations = sorted(K8S.rglob("kustomization.yaml"))
    assert {p.parent.name for p in kustomizations} == {"base", "dev", "prod"}
    for path in kustomizations:
        (doc,) = load(path)
        jsonschema.validate(doc, KUSTOMIZATION)
        for ref in doc["resources"] + [p["path"] for p in doc.get("patches", []) if "path" in p]:
            assert (path.parent / ref).exists(), f"{path}: missing {ref}"
        for inline in (p["patch"] for p in doc.get("patches", []) if "patch" in p):
            assert yaml.safe_load(inline)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) not installed")
@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_overlays_build_with_kustomize(overlay: str) -> None:
    """The real kustomize (kubectl kustomize, offline) renders each overlay into valid objects."""
    out = subprocess.run(["kubectl", "kustomize", str(K8S / "overlays" / overlay)],
                         capture_output=True, text=True, check=True, timeout=60).stdout  # fmt: skip
    docs = [d for d in yaml.safe_load_all(out) if d]
    for doc in docs:
        jsonschema.validate(doc, SCHEMAS[doc["kind"]])
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == f"cdnlake-{overlay}"
    accounts = [d for d in docs if d["kind"] == "ServiceAccount"]
    assert len(accounts) == 2 and all("eks.amazonaws.com/role-arn" in a["metadata"]["annotations"] for a in accounts)
    (config,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert config["data"] == settings_data(overlay)
    assert load_settings(config["data"]).environment == {"dev": "development", "prod": "production"}[overlay]


def test_rbac_is_namespaced_and_least_privilege() -> None:
    assert not re.search(r"kind:\s*Cluster", "".join(p.read_text() for p in all_yaml()))
    roles = {name: sorted((tuple(r["apiGroups"]), tuple(sorted(r["resources"])), frozenset(r["verbs"]))
                          for r in role["rules"]) for name, role in objects("Role").items()}  # fmt: skip
    spark_verbs = frozenset({"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"})
    assert roles["cdnlake-spark-driver"] == [(("",), ("configmaps", "persistentvolumeclaims", "pods", "services"),
                                              spark_verbs)]  # fmt: skip
    assert roles["cdnlake-prefect"] == sorted([
        (("",), ("pods", "pods/log", "pods/status"), frozenset({"get", "list", "watch"})),
        (("batch",), ("jobs",), frozenset({"get", "list", "watch", "create", "update", "patch", "delete"})),
        (("sparkoperator.k8s.io",), ("sparkapplications",), frozenset({"create", "get", "delete"})),
    ])  # fmt: skip
    bindings = {b["roleRef"]["name"]: [s["name"] for s in b["subjects"]] for b in objects("RoleBinding").values()}
    assert bindings == {"cdnlake-spark-driver": ["cdnlake-spark"], "cdnlake-prefect": ["cdnlake-prefect"]}
    assert set(objects("ServiceAccount")) == {"cdnlake-spark", "cdnlake-prefect"}
    assert Settings().k8s_service_account == "cdnlake-spark"


def test_no_secret_values_anywhere() -> None:
    for path in K8S.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}", text), path
            assert not re.search(r"(?i)(secret_?access_?key|session_?token|password|apiKey|webhook_url)\s*[:=]", text)
            assert "hooks.slack.com" not in text and "kind: Secret" not in text, path
    for overlay in (None, "dev", "prod"):
        assert not {k for k in settings_data(overlay) if "SLACK" in k or "SECRET" in k}


@pytest.mark.parametrize("overlay", [None, "dev", "prod"])
def test_settings_config_maps_are_valid_cdnlake_settings(overlay: str | None) -> None:
    data = settings_data(overlay)
    known = {"CDNLAKE_" + f.upper() for f in Settings.__dataclass_fields__}
    assert set(data) <= known, set(data) - known  # a misspelt key would be silently ignored
    settings = load_settings(data)  # invalid values raise ConfigError
    assert settings.spark_runner == "kubernetes" and settings.k8s_namespace == NAMESPACE
    assert settings.k8s_service_account in objects("ServiceAccount")
    assert settings.warehouse.startswith("s3://") and settings.source.startswith("s3://")


def test_overlays_annotate_both_service_accounts_for_irsa() -> None:
    for overlay in ("dev", "prod"):
        (doc,) = load(K8S / "overlays" / overlay / "kustomization.yaml")
        (irsa,) = [p for p in doc["patches"] if "patch" in p]
        assert irsa["target"] == {"kind": "ServiceAccount", "labelSelector": "cdnlake.io/irsa=true"}
        (op,) = yaml.safe_load(irsa["patch"])
        assert re.fullmatch(r"arn:aws:iam::\d{12}:role/cdnlake-\w+", op["value"]["eks.amazonaws.com/role-arn"])
    assert all(sa["metadata"]["labels"]["cdnlake.io/irsa"] == "true" for sa in objects("ServiceAccount").values())


@pytest.mark.parametrize("job", [*JOBS, LOOP_JOB])
def test_spark_application_templates_match_the_runner(job: str) -> None:
    (doc,) = load(K8S / "spark-apps" / f"{job}.yaml")
    # The run's one application (spark_jobs/job_loop.py) is named after the run, not a job.
    prefix = "cdnlake-run-" if job == LOOP_JOB else f"cdnlake-{job.replace('_', '-')}-"
    assert doc["metadata"]["generateName"] == prefix
    built = spark_application(job, doc["spec"]["arguments"], "x", AppConfig())
    assert (doc["apiVersion"], doc["kind"]) == (built["apiVersion"], built["kind"])
    assert doc["spec"] == built["spec"], f"regenerate: python -m cdnlake.runners.kubernetes {job} <arguments>"
    # One image placeholder everywhere: settings default, the settings ConfigMap, the templates.
    assert doc["spec"]["image"] == Settings().k8s_image == settings_data()["CDNLAKE_K8S_IMAGE"]
    # The arguments are valid for the job module the template runs.
    importlib.import_module(f"spark_jobs.{job}").build_parser().parse_args(doc["spec"]["arguments"])


def test_prefect_worker_values_and_job_template() -> None:
    (values,) = load(K8S / "helm" / "prefect-worker-values.yaml")
    assert values["serviceAccount"] == {"create": False, "name": "cdnlake-prefect"}
    assert values["role"] == {"create": False} and values["rolebinding"] == {"create": False}
    assert values["worker"]["config"]["type"] == "kubernetes" and values["worker"]["config"]["workPool"]
    assert values["worker"]["apiConfig"] in ("server", "cloud", "selfHosted")
    template = json.loads(values["worker"]["config"]["baseJobTemplate"]["configuration"])
    variables = template["variables"]["properties"]
    placeholders = set(re.findall(r"\{\{ *(\w+) *\}\}", json.dumps(template["job_configuration"])))
    assert placeholders <= set(variables), placeholders - set(variables)
    assert variables["service_account_name"]["default"] == "cdnlake-prefect"
    assert variables["namespace"]["default"] == NAMESPACE
    assert variables["image"]["default"] == Settings().k8s_image
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    # What Prefect's Kubernetes worker requires of a job manifest.
    assert (pod["restartPolicy"], pod["parallelism"], pod["completions"]) == ("Never", 1, 1)
    (container,) = pod["containers"]
    assert container["name"] == "prefect-job" and container["args"] == "{{ command }}"
    assert {"configMapRef": {"name": "cdnlake-settings"}} in container["envFrom"]
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_spark_operator_values_watch_only_the_cdnlake_namespace() -> None:
    (values,) = load(K8S / "helm" / "spark-operator-values.yaml")
    assert values["spark"] == {"jobNamespaces": [NAMESPACE], "serviceAccount": {"create": False},
                               "rbac": {"create": False}}  # fmt: skip
    assert values["webhook"]["enable"] is True  # applies securityContext/env/fsGroup to Spark pods


ALLOWED_ACTIONS = {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket", "s3:ListBucketMultipartUploads",
                   "s3:AbortMultipartUpload", "ses:SendRawEmail", "ses:SendEmail", "sns:Publish"}  # fmt: skip


def test_iam_policy_is_limited_to_the_data_prefixes_and_sending() -> None:
    policy = json.loads((K8S / "iam" / "cdnlake-policy.json").read_text())
    prod = settings_data("prod")
    prefixes = {
        k: prod[k].split("://", 1)[1].rstrip("/") for k in ("CDNLAKE_SOURCE", "CDNLAKE_WAREHOUSE", "CDNLAKE_REPORTS")
    }
    actions: set[str] = set()
    for st in policy["Statement"]:
        assert st["Effect"] == "Allow" and "NotAction" not in st and "NotResource" not in st
        acts, resources = set(st["Action"]), st["Resource"]
        actions |= acts
        assert all("*" not in a for a in acts) and "*" not in resources
        objects_ = [r.removeprefix("arn:aws:s3:::") for r in resources if r.startswith("arn:aws:s3:::") and "/" in r]
        for r in objects_:
            assert r.removesuffix("/*") in prefixes.values(), r
            if r.removesuffix("/*") == prefixes["CDNLAKE_SOURCE"]:
                assert acts == {"s3:GetObject"}  # raw logs are read, never changed
        if "s3:ListBucket" in acts:
            allowed = st["Condition"]["StringLike"]["s3:prefix"]
            assert all(p.rstrip("*").rstrip("/") in {v.split("/", 1)[1] for v in prefixes.values()} for p in allowed)
        if acts & {"ses:SendRawEmail", "sns:Publish"}:
            assert all(":identity/" in r or r == prod.get("CDNLAKE_SNS_TOPIC_ARN") for r in resources)
    assert actions == ALLOWED_ACTIONS


def test_irsa_trust_policy_admits_only_the_two_service_accounts() -> None:
    (statement,) = json.loads((K8S / "iam" / "trust-policy.json").read_text())["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    equals = statement["Condition"]["StringEquals"]
    (sub,) = [v for k, v in equals.items() if k.endswith(":sub")]
    assert sorted(sub) == [f"system:serviceaccount:{NAMESPACE}:{sa}" for sa in sorted(objects("ServiceAccount"))]
    assert [v for k, v in equals.items() if k.endswith(":aud")] == ["sts.amazonaws.com"]
