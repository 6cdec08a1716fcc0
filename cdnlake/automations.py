"""Silence is an alert: Prefect automations that notify when cdn-daily is late, unfinished or crashed.

The flow itself reports every failure inside a stage (Slack, SMS). What it cannot report is a run
that never starts (worker down, work pool paused), never finishes (hung driver, node lost) or
dies outside a stage (OOM-killed pod: Prefect marks it Crashed). The Prefect server sees those,
so they are automations, declared here and applied with `cdnlake automations apply`:

- `cdnlake: cdn-daily late`: a scheduled cdn-daily run was not picked up on time (Late state);
- `cdnlake: cdn-daily not completed by HH:MM`: a cdn-daily run that became Pending (or Late) at the
  scheduled time has not Completed by CDNLAKE_COMPLETION_DEADLINE (in the schedule's time zone);
- `cdnlake: no cdn-daily completed for 26 hours`: catches a paused or deleted schedule, where no
  run exists to be late;
- `cdnlake: flow run crashed`: any cdnlake flow run (daily, re-run, backfill) Crashed.

Each sends through the Prefect notification block CDNLAKE_AUTOMATION_BLOCK (`block-type/name`,
e.g. `slack-webhook/cdnlake-ops`; create it once in the UI or with `prefect block create`).
Applying is idempotent: an automation with the same name is replaced.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

DAILY_FLOW = "cdn-daily"
FLOWS = ("cdn-daily", "cdn-rerun", "cdn-backfill")
DAILY_DEPLOYMENTS = ("cdn-daily", "cdn-daily-local")
NO_COMPLETION_HOURS = 26  # a day and a margin: the schedule fires once a day
PREFECT_YAML = Path(__file__).resolve().parent.parent / "prefect.yaml"

_BODY = (
    "{{ flow.name }} run {{ flow_run.name }} ({{ flow_run.state.name }}): {{ flow_run|ui_url }}\n"
    "What to do: README, section Failure modes."
)


def schedule_time(prefect_yaml: Path = PREFECT_YAML, deployment: str = DAILY_FLOW) -> tuple[dt.time, str]:
    """(time of day, time zone) of the deployment's daily cron in prefect.yaml (`M H * * *`)."""
    spec = yaml.safe_load(prefect_yaml.read_text(encoding="utf-8"))
    found = [d for d in spec.get("deployments", []) if d.get("name") == deployment]
    if not found or not found[0].get("schedules"):
        raise ValueError(f"{prefect_yaml}: no schedule for deployment {deployment!r}")
    schedule = found[0]["schedules"][0]
    minute, hour, *rest = str(schedule["cron"]).split()
    if not (minute.isdigit() and hour.isdigit()) or rest != ["*", "*", "*"]:
        raise ValueError(f"{prefect_yaml}: {deployment} cron {schedule['cron']!r} is not a daily `M H * * *`")
    return dt.time(int(hour), int(minute)), str(schedule.get("timezone", "UTC"))


def seconds_until(deadline: str, start: dt.time) -> int:
    """Seconds from the scheduled start to the deadline `HH:MM` (the next day when earlier)."""
    hours, minutes = (int(p) for p in deadline.split(":"))
    gap = (hours * 60 + minutes - start.hour * 60 - start.minute) % (24 * 60)
    if gap == 0:
        raise ValueError(f"completion deadline {deadline} is the scheduled start itself")
    return gap * 60


def _flow_runs(related: dict[str, Any]) -> dict[str, Any]:
    return {"match": {"prefect.resource.id": "prefect.flow-run.*"}, "match_related": related}


def automation_specs(deadline: str, start: dt.time, schedule_tz: str) -> list[dict[str, Any]]:
    """The automations as plain dicts (trigger and the notification's subject), without actions."""
    daily = {"prefect.resource.role": "deployment", "prefect.resource.name": list(DAILY_DEPLOYMENTS)}
    flows = {"prefect.resource.role": "flow", "prefect.resource.name": list(FLOWS)}
    within = seconds_until(deadline, start)
    return [
        {"name": "cdnlake: cdn-daily late", "subject": "cdnlake: cdn-daily did not start on time",
         "trigger": {**_flow_runs(daily), "posture": "Reactive", "expect": ["prefect.flow-run.Late"],
                     "threshold": 1, "within": 0}},
        {"name": f"cdnlake: cdn-daily not completed by {deadline}",
         "subject": f"cdnlake: cdn-daily not completed by {deadline} ({schedule_tz})",
         "trigger": {**_flow_runs(daily), "posture": "Proactive",
                     "after": ["prefect.flow-run.Pending", "prefect.flow-run.Late"],
                     "expect": ["prefect.flow-run.Completed"], "for_each": ["prefect.resource.id"],
                     "threshold": 1, "within": within}},
        {"name": f"cdnlake: no cdn-daily completed for {NO_COMPLETION_HOURS} hours",
         "subject": f"cdnlake: no cdn-daily run completed for {NO_COMPLETION_HOURS} hours (schedule paused?)",
         "trigger": {**_flow_runs(daily), "posture": "Proactive", "expect": ["prefect.flow-run.Completed"],
                     "threshold": 1, "within": NO_COMPLETION_HOURS * 3600}},
        {"name": "cdnlake: flow run crashed", "subject": "cdnlake: a flow run crashed outside its stages",
         "trigger": {**_flow_runs(flows), "posture": "Reactive", "expect": ["prefect.flow-run.Crashed"],
                     "threshold": 1, "within": 0}},
    ]  # fmt: skip


def _block_id(client: Any, slug: str) -> Any:
    block_type, _, name = slug.partition("/")
    if not block_type or not name:
        raise ValueError(f"CDNLAKE_AUTOMATION_BLOCK: `block-type/name`, e.g. slack-webhook/cdnlake-ops (got {slug!r})")
    return client.read_block_document_by_name(name, block_type).id


def apply_automations(settings: Any, prefect_yaml: Path = PREFECT_YAML) -> list[str]:
    """Create (or replace, by name) the automations on the current Prefect API; returns their names."""
    from prefect.client.orchestration import get_client
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger

    if not settings.automation_block:
        raise ValueError("CDNLAKE_AUTOMATION_BLOCK is empty: name the Prefect notification block the automations "
                         "send through (`block-type/name`, e.g. slack-webhook/cdnlake-ops)")  # fmt: skip
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        # Without it Prefect would start a throwaway local server and the automations would vanish with it.
        raise ValueError("PREFECT_API_URL is not set: point it at the Prefect server the automations belong on")
    start, schedule_tz = schedule_time(prefect_yaml)
    with get_client(sync_client=True) as client:
        block = _block_id(client, settings.automation_block)
        existing = {a.name: a for a in client.read_automations()}
        names = []
        for spec in automation_specs(settings.completion_deadline, start, schedule_tz):
            automation = AutomationCore(
                name=spec["name"], description=spec["subject"], trigger=EventTrigger(**spec["trigger"]),
                actions=[SendNotification(block_document_id=block, subject=spec["subject"], body=_BODY)],
            )  # fmt: skip
            if spec["name"] in existing:
                client.update_automation(existing[spec["name"]].id, automation)
            else:
                client.create_automation(automation)
            names.append(spec["name"])
    return names
