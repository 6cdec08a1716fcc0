"""The daily run's operations side: alerts and month usage from the statistics tables, late files.

Reads stats_hourly with delta-rs (no Spark work is added to the run), converts to the report's
time zone, and hands pandas frames to the pure rules of reporting/alerts.py and reporting/usage.py.
Also delivers the alerts: one WARNING line each (console, Slack) and the severe ones by SNS.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Protocol

import pandas as pd

from cdnlake import report_data
from cdnlake.integrations import aws
from cdnlake.late_files import IngestPlan, describe, lines_added
from cdnlake.settings import Settings
from reporting.alerts import HISTORY_DAYS, Alert, Thresholds, traffic_alerts
from reporting.operations import LateFiles, Operations
from reporting.usage import month_usage

log = logging.getLogger(__name__)
_HOURLY = ["request_count", "hit_count", "http5xx_count", "bytes_requested"]
_SMS_LIMIT = 1400


def thresholds(settings: Settings) -> Thresholds:
    return Thresholds(
        five_xx_pct=settings.alert_5xx_pct, min_requests=settings.alert_min_requests,
        hit_ratio_drop_points=settings.alert_hit_ratio_drop_points, silent_days=settings.alert_silent_days,
        volume_low=settings.alert_volume_low, volume_high=settings.alert_volume_high,
        committed_gbps=settings.alert_committed_gbps,
    )  # fmt: skip


def local_hourly(warehouse: Any, day: dt.date, tz: str, distributions: list[str] | None) -> pd.DataFrame:
    """stats_hourly per distro, local date and hour from min(month start, D-7) to D (`warehouse`: a
    location or aws.warehouse(settings), as report_data.read_table takes)."""
    first = min(day.replace(day=1), day - dt.timedelta(days=HISTORY_DAYS))
    start, end = report_data.utc_range(day, tz, days=(day - first).days + 1)
    rows = report_data.read_table(warehouse, "stats_hourly", [("dt", "in", report_data.utc_dates(start, end))])
    if rows.empty:
        return pd.DataFrame(columns=["distro", "date", "hour", *_HOURLY])
    if distributions:
        rows = rows[rows["distro"].isin(distributions)]
    local = report_data._local_times(rows, tz)  # the report's own UTC -> local shift
    rows = rows.assign(date=local.dt.strftime("%Y-%m-%d"), hour=local.dt.hour.astype(int))
    rows = rows[(rows["date"] >= first.isoformat()) & (rows["date"] <= day.isoformat())]
    return rows.groupby(["distro", "date", "hour"], as_index=False)[_HOURLY].sum()


def build_operations(settings: Settings, day: dt.date, distributions: list[str] | None, peak: dict[str, Any],
                     late: dict[str, Any] | None, warehouse: Any = None) -> Operations:  # fmt: skip
    """Alerts and month usage of day D from the statistics; `late` is late_files_summary()'s dict.

    `warehouse`: the run's warehouse reader (cdnlake.services), else one built from the settings."""
    where = warehouse if warehouse is not None else aws.warehouse(settings)
    hourly = local_hourly(where, day, settings.report_tz, distributions)
    alerts = traffic_alerts(hourly, day, peak, thresholds(settings))
    daily = hourly.groupby("date")["bytes_requested"].sum() if not hourly.empty else pd.Series(dtype="int64")
    usage = month_usage(day, {str(d): int(b) for d, b in daily.items()})
    return Operations(alerts=alerts, usage=usage, late=LateFiles.from_dict(late))


def late_files_summary(plan: IngestPlan, ingested: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """JSON-friendly account of the late files of a run (LateFiles.from_dict reads it)."""
    added = lines_added(plan, ingested)
    removed = {d: c.removed for d, c in plan.changes.items() if c.removed}
    return {"refreshed": plan.refreshed(), "lines_added": added, "removed": removed, "lines": describe(plan, added)}


class Warner(Protocol):
    """cdnlake.notify.StageProgress fits: `event("warning", detail=...)` goes to console and Slack."""

    def event(self, kind: Any, **fields: Any) -> None: ...


def announce(run: Warner, alerts: list[dict[str, Any]], settings: Settings, date: dt.date,
             sns_client: Any = None) -> int:  # fmt: skip
    """A WARNING line per alert (console, Slack); the severe ones by SNS when a topic is set.

    Returns how many went to SNS. Never raises: the report and e-mail are already out.
    """
    found = [Alert(**a) for a in alerts]
    for alert in found:
        run.event("warning", detail=f"traffic alert: {alert.text()}")
    severe = [a for a in found if a.severe]
    if not severe or not settings.sns_topic_arn:
        return 0
    text = f"cdnlake {date}: " + "; ".join(a.text() for a in severe)
    try:
        if sns_client is None:
            import boto3

            sns_client = boto3.client("sns", region_name=settings.aws_region)
        sns_client.publish(TopicArn=settings.sns_topic_arn, Message=text[:_SMS_LIMIT],
                           Subject=f"cdnlake traffic alert {date}")  # fmt: skip
    except Exception as exc:  # an SMS outage must not fail a run whose outputs are written
        log.warning("severe alerts not sent by SNS: %s: %s", type(exc).__name__, exc)
        return 0
    return len(severe)


def complete_note(figures: dict[str, Any]) -> str:
    """What the COMPLETE line adds after the totals: morning figures, late files, alert count."""
    parts = [figures.get("morning") or ""]
    late = LateFiles.from_dict(figures.get("late_files")).short()
    alerts = figures.get("alerts") or []
    parts += [late, f"{len(alerts)} traffic alert(s)" if alerts else ""]
    return "; ".join(p for p in parts if p)


def with_operations(settings: Settings, data: Any, distributions: list[str] | None,
                    late: dict[str, Any] | None, warehouse: Any = None) -> Any:  # fmt: skip
    """`data` (a ReportData) with its ops: alerts, month usage and the run's late files."""
    import dataclasses

    from reporting.units import find_peak

    ops = build_operations(settings, data.date, distributions, find_peak(data.minute), late, warehouse)
    return dataclasses.replace(data, ops=ops)


def operations_markdown(summary: dict[str, Any]) -> list[str]:
    """The artifact's sections: the morning figures, late files, traffic alerts."""
    lines = ["", "## Morning message", "", summary.get("morning") or "n/a"]
    late = LateFiles.from_dict(summary.get("late_files"))
    if late.lines:
        lines += ["", "## Late files", "", *(f"- {line}" for line in late.lines)]
    alerts = [Alert(**a) for a in summary.get("alerts") or []]
    lines += ["", "## Traffic alerts", ""]
    lines += [f"- {a.text()}" for a in alerts] or ["none"]
    return lines
