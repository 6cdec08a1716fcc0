"""Logs vs CloudWatch: the daily run's second opinion on its own request and byte counts.

Reads stats_hourly with delta-rs and CloudFront's hourly CloudWatch metrics, and compares them
(cdnlake/integrations/cloudwatch.py). The result is JSON-friendly (a task result, summary.json);
`crosscheck_data` turns it into the report's CrossCheck, once per run.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from cdnlake import report_data
from cdnlake.integrations import aws
from cdnlake.settings import Settings

log = logging.getLogger(__name__)
_RECENT_DAYS = 7


def logs_hourly(warehouse: str | report_data.Warehouse, start: dt.datetime, end: dt.datetime,
                distributions: list[str] | None) -> Any:  # fmt: skip
    """stats_hourly rows in [start, end) (naive UTC) as distro, ts, request_count, bytes_requested."""
    import pandas as pd

    rows = report_data.read_table(warehouse, "stats_hourly", [("dt", "in", report_data.utc_dates(start, end))])
    columns = ["distro", "ts", "request_count", "bytes_requested"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    if distributions:
        rows = rows[rows["distro"].isin(distributions)]
    rows = rows.assign(ts=pd.to_datetime(rows["dt"]) + pd.to_timedelta(rows["hour"], unit="h"))
    return rows[(rows["ts"] >= start) & (rows["ts"] < end)][columns].reset_index(drop=True)


def _known_distributions(warehouse: report_data.Warehouse, date: dt.date) -> list[str]:
    """Distributions seen in the last week: one whose logs stopped arriving entirely is still checked."""
    days = [(date - dt.timedelta(days=i)).isoformat() for i in range(_RECENT_DAYS + 1)]
    rows = report_data.read_table(warehouse, "stats_hourly", [("dt", "in", days)])
    return sorted(rows["distro"].unique().tolist()) if not rows.empty else []


def cloudwatch_crosscheck(settings: Settings, date: dt.date, distributions: list[str] | None,
                          warehouse: report_data.Warehouse | None = None) -> dict[str, Any] | None:  # fmt: skip
    """Logs vs CloudWatch for report day D (None when not configured): table, alerts, summary line.

    JSON-friendly, so it can be a task result and go into summary.json; crosscheck_data() turns it
    into the report's CrossCheck. `warehouse`: the run's reader, else one from the settings.
    """
    if not settings.cloudwatch_enabled:
        return None
    import boto3

    from cdnlake.integrations import cloudwatch
    from reporting.model import CrossCheck

    where = warehouse if warehouse is not None else aws.warehouse(settings)
    start, end = report_data.utc_range(date, settings.report_tz)
    ids = list(distributions or settings.distributions or _known_distributions(where, date))
    client = boto3.client("cloudwatch", region_name=cloudwatch.CLOUDFRONT_REGION)
    metrics = cloudwatch.fetch_hourly(client, ids, date, start, end)
    table, alerts = cloudwatch.compare(metrics, logs_hourly(where, start, end, ids), settings.cloudwatch_threshold_pct)
    for line in alerts:
        log.warning("cloudwatch cross-check: %s", line)
    check = CrossCheck(table=table, alerts=list(alerts), threshold_pct=float(settings.cloudwatch_threshold_pct))
    records = table.astype(object).where(table.notna(), None).to_dict(orient="records")
    return {"date": date.isoformat(), "window_utc": [start.isoformat(), end.isoformat()],
            "threshold_pct": settings.cloudwatch_threshold_pct, "table": records, "alerts": alerts,
            "summary": check.summary_line()}  # fmt: skip


def crosscheck_data(result: dict[str, Any] | None) -> Any:
    """The report's CrossCheck from a cloudwatch_crosscheck() result (None stays None)."""
    if result is None:
        return None
    import pandas as pd

    from reporting.model import CROSSCHECK_COLUMNS, CrossCheck

    table = pd.DataFrame(result["table"], columns=list(CROSSCHECK_COLUMNS))
    return CrossCheck(table=table, alerts=list(result["alerts"]), threshold_pct=float(result["threshold_pct"]))
