"""prefect.yaml, checked statically: it must deploy what the flows accept, on time, without secrets."""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow
from prefect.client.schemas.schedules import CronSchedule

ROOT = Path(__file__).resolve().parents[1]
CONFIG: dict[str, Any] = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
DEPLOYMENTS: dict[str, dict[str, Any]] = {d["name"]: d for d in CONFIG["deployments"]}
PRODUCTION = ("cdn-daily", "cdn-rerun", "cdn-backfill")

# Keys whose values would be credentials, and values that look like credentials whatever the key.
SECRET_KEY = re.compile(r"(secret|password|passwd|token|webhook|api[_-]?key|access[_-]?key|private)", re.I)
SECRET_VALUE = re.compile(
    r"(hooks\.slack\.com|xox[abpr]-|AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|-----BEGIN|pnu_[A-Za-z0-9]{20,}"
    r"|[A-Za-z0-9/+]{40})"
)


def load_flow(entrypoint: str) -> Flow:  # type: ignore[type-arg]
    path, _, name = entrypoint.partition(":")
    assert (ROOT / path).is_file(), f"entrypoint file missing: {path}"
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    flow = getattr(module, name)
    assert isinstance(flow, Flow), f"{entrypoint} is not a Prefect flow"
    return flow


def walk(node: Any, trail: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [item for key, value in node.items() for item in walk(value, f"{trail}.{key}")]
    if isinstance(node, list):
        return [item for i, value in enumerate(node) for item in walk(value, f"{trail}[{i}]")]
    return [(trail, node)]


def test_the_three_production_deployments_and_their_local_twins() -> None:
    assert set(PRODUCTION) <= set(DEPLOYMENTS)
    for name in PRODUCTION:
        assert f"{name}-local" in DEPLOYMENTS


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_entrypoint_is_a_flow_that_accepts_the_parameters(name: str) -> None:
    deployment = DEPLOYMENTS[name]
    flow = load_flow(deployment["entrypoint"])
    signature = inspect.signature(flow.fn)
    parameters = deployment.get("parameters") or {}
    signature.bind_partial(**parameters)  # raises TypeError for a parameter the flow does not have
    # Paths never come as parameters (SPEC section 6): the settings come from CDNLAKE_*.
    assert not {"source", "warehouse", "reports", "settings"} & set(parameters)


def required(name: str) -> set[str]:
    flow = load_flow(DEPLOYMENTS[name]["entrypoint"])
    params = inspect.signature(flow.fn).parameters.values()
    return {p.name for p in params if p.default is inspect.Parameter.empty}


def test_flow_names_and_required_parameters() -> None:
    assert load_flow(DEPLOYMENTS["cdn-daily"]["entrypoint"]).name == "cdn-daily"
    assert required("cdn-daily") == set()  # the schedule gives no parameters: yesterday is the default
    assert required("cdn-rerun") == {"date"}
    assert required("cdn-backfill") == {"start", "end"}
    for name in ("cdn-rerun", "cdn-backfill"):
        assert not {"date", "start", "end"} & set(DEPLOYMENTS[name].get("parameters") or {})


def test_daily_schedule_is_0830_taipei_and_manual_ones_have_none() -> None:
    (schedule,) = DEPLOYMENTS["cdn-daily"]["schedules"]
    assert schedule["cron"] == "30 8 * * *"
    assert schedule["timezone"] == "Asia/Taipei"
    assert schedule.get("active", True) is True
    parsed = CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])  # Prefect's own validation
    assert parsed.timezone == "Asia/Taipei"
    for name in ("cdn-rerun", "cdn-backfill", "cdn-rerun-local", "cdn-backfill-local"):
        assert not DEPLOYMENTS[name].get("schedules")
    assert dt.time(8, 30) == dt.time(*map(int, reversed(schedule["cron"].split()[:2])))


def test_work_pools_kubernetes_for_production_process_for_local() -> None:
    for name, deployment in DEPLOYMENTS.items():
        pool = deployment["work_pool"]
        expected = "cdnlake-local" if name.endswith("-local") else "cdnlake-k8s"
        assert pool["name"] == expected, name
        if expected == "cdnlake-k8s":
            variables = pool["job_variables"]
            assert variables["backoff_limit"] == 0  # Prefect retries; Kubernetes must not re-run the flow
            assert variables["image"] and variables["namespace"] and variables["service_account_name"]
            assert variables["env"]["CDNLAKE_SPARK_RUNNER"] == "kubernetes"


def test_no_secrets_inline() -> None:
    text = (ROOT / "prefect.yaml").read_text(encoding="utf-8")
    for trail, value in walk(CONFIG):
        if value in (None, "", False, True) or isinstance(value, int | float):
            continue
        assert not SECRET_KEY.search(trail.rsplit(".", 1)[-1]), f"secret-like key with a value: {trail}"
        assert not SECRET_VALUE.search(str(value)), f"secret-like value at {trail}"
    assert "SLACK_WEBHOOK_URL:" not in text and "AWS_SECRET_ACCESS_KEY" not in text


def test_checker_catches_secret_looking_values() -> None:
    assert SECRET_VALUE.search("https://hooks.slack.com/services/T0/B0/abc")
    assert SECRET_VALUE.search("AKIAIOSFODNN7EXAMPLE")
    assert SECRET_KEY.search("CDNLAKE_SLACK_WEBHOOK_URL")
    assert not SECRET_VALUE.search("s3://example-cdnlake/warehouse")


# What an operator may choose per run (SPEC section 6); everything else comes from CDNLAKE_*.
OPERATOR_PARAMETERS = {
    "cdn_daily": {"date", "distributions", "resend_email"},
    "cdn_rerun": {"date", "distributions", "resend_email"},
    "cdn_backfill": {"start", "end", "distributions", "resend_email", "concurrency"},
    "cdn_weekly_misses": {"end"},
}


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_deployed_parameter_schema_is_only_what_an_operator_chooses(name: str) -> None:
    """The schema Prefect stores for the deployment (what the UI and API accept) has nothing else:
    no settings, locations, recipients, images or Spark configuration."""
    entrypoint = DEPLOYMENTS[name]["entrypoint"]
    flow = load_flow(entrypoint)
    schema = flow.parameters.model_dump()
    assert set(schema["properties"]) == OPERATOR_PARAMETERS[entrypoint.partition(":")[2]]
    assert "definitions" not in schema or not schema["definitions"]  # no nested object (a Settings) either
