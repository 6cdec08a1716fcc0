"""The Prefect automations that alert on silence: their triggers, from prefect.yaml and the deadline.

Applying them on a Prefect server is tested in tests/test_flow.py (it has the module's server).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from prefect.events.schemas.automations import EventTrigger, Posture

from cdnlake.automations import automation_specs, schedule_time, seconds_until
from cdnlake.settings import load_settings


def test_the_daily_schedule_is_read_from_prefect_yaml() -> None:
    assert schedule_time() == (dt.time(8, 30), "Asia/Taipei")


def test_deadline_seconds_from_the_scheduled_start() -> None:
    assert seconds_until("10:30", dt.time(8, 30)) == 2 * 3600
    assert seconds_until("00:15", dt.time(23, 45)) == 30 * 60  # past midnight
    with pytest.raises(ValueError, match="scheduled start itself"):
        seconds_until("08:30", dt.time(8, 30))


@pytest.mark.parametrize(("text", "problem"), [
    ("deployments: [{name: cdn-daily}]", "no schedule"),
    ("deployments: [{name: cdn-daily, schedules: [{cron: '*/5 * * * *'}]}]", "not a daily"),
    ("deployments: []", "no schedule"),
])  # fmt: skip
def test_a_schedule_that_is_not_daily_is_refused(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "prefect.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=problem):
        schedule_time(path)


def test_the_four_triggers() -> None:
    deadline = load_settings(env={"CDNLAKE_COMPLETION_DEADLINE": "11:00"}).completion_deadline
    specs = {s["name"]: s for s in automation_specs(deadline, dt.time(8, 30), "Asia/Taipei")}
    triggers = {name: EventTrigger(**s["trigger"]) for name, s in specs.items()}  # Prefect accepts each
    late = triggers["cdnlake: cdn-daily late"]
    assert late.posture == Posture.Reactive and late.expect == {"prefect.flow-run.Late"}
    unfinished = triggers["cdnlake: cdn-daily not completed by 11:00"]
    assert unfinished.posture == Posture.Proactive and unfinished.within == dt.timedelta(hours=2, minutes=30)
    assert unfinished.after == {"prefect.flow-run.Pending", "prefect.flow-run.Late"}
    assert unfinished.expect == {"prefect.flow-run.Completed"} and unfinished.for_each == {"prefect.resource.id"}
    assert triggers["cdnlake: no cdn-daily completed for 26 hours"].within == dt.timedelta(hours=26)
    crashed = triggers["cdnlake: flow run crashed"]
    assert crashed.expect == {"prefect.flow-run.Crashed"}
    assert specs["cdnlake: flow run crashed"]["trigger"]["match_related"]["prefect.resource.name"] == [
        "cdn-daily", "cdn-rerun", "cdn-backfill"]  # fmt: skip
    assert "11:00 (Asia/Taipei)" in specs["cdnlake: cdn-daily not completed by 11:00"]["subject"]
