"""Cross-check the logs against CloudFront's own CloudWatch metrics, hour by hour.

CloudFront publishes `Requests` and `BytesDownloaded` per distribution to CloudWatch in us-east-1
(namespace AWS/CloudFront, dimensions DistributionId and Region=Global) within minutes, while log
files may arrive up to 24 h late: a late or missing log delivery shows up here first, as hours
where the logs count fewer requests than CloudWatch.

Known, expected differences (hence a threshold): BytesDownloaded counts the body bytes of GET,
HEAD and OPTIONS responses, `sc-bytes` in the logs counts every response with its headers; and
both sides are CloudFront's best-effort figures, so a fraction of a percent is noise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pandas as pd

CLOUDFRONT_REGION = "us-east-1"  # CloudFront metrics live only there, whatever the other services use
NAMESPACE = "AWS/CloudFront"
METRICS = {"requests": "Requests", "bytes": "BytesDownloaded"}
_QUERIES_PER_CALL = 500  # GetMetricData limit
# Hours with fewer CloudWatch requests than this are not alerted on: on a quiet hour a handful of
# requests near the hour boundary would be a large percentage.
MIN_HOUR_REQUESTS = 1000
MAX_HOUR_ALERTS = 5  # per distribution; more would drown the message, the table has the count
TABLE_COLUMNS = (
    "distro", "requests_logs", "requests_cloudwatch", "requests_diff_pct",
    "bytes_logs", "bytes_cloudwatch", "bytes_diff_pct", "hours_over",
)  # fmt: skip
_COUNTS = ["requests_logs", "requests_cw", "bytes_logs", "bytes_cw"]


def _queries(distribution_ids: Sequence[str]) -> list[dict[str, Any]]:
    queries = []
    for i, distro in enumerate(distribution_ids):
        # Distribution ids are upper case in CloudWatch; the warehouse keeps them lower case.
        dims = [{"Name": "DistributionId", "Value": distro.upper()}, {"Name": "Region", "Value": "Global"}]
        for prefix, metric in METRICS.items():
            queries.append({
                "Id": f"{prefix[0]}{i}",
                "MetricStat": {"Metric": {"Namespace": NAMESPACE, "MetricName": metric, "Dimensions": dims},
                               "Period": 3600, "Stat": "Sum"},
                "ReturnData": True,
            })  # fmt: skip
    return queries


def _collect(client: Any, queries: list[dict[str, Any]], start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """{query id: [(timestamp, value), ...]} over every page of every call."""
    points: dict[str, list[tuple[dt.datetime, float]]] = {q["Id"]: [] for q in queries}
    for first in range(0, len(queries), _QUERIES_PER_CALL):
        kwargs: dict[str, Any] = {"MetricDataQueries": queries[first : first + _QUERIES_PER_CALL],
                                  "StartTime": start, "EndTime": end, "ScanBy": "TimestampAscending"}  # fmt: skip
        while True:
            page = client.get_metric_data(**kwargs)
            for result in page["MetricDataResults"]:
                points[result["Id"]] += list(zip(result["Timestamps"], result["Values"], strict=True))
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
    return points


def fetch_hourly(
    client: Any, distribution_ids: Sequence[str], day: dt.date, start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> pd.DataFrame:  # fmt: skip
    """CloudWatch per distribution and UTC hour: columns distro (lower case), ts (naive UTC), requests, bytes.

    The window is the UTC day `day` unless `start`/`end` (naive UTC) give the report day in
    another time zone. Hours without a datapoint are absent (CloudWatch returns nothing there).
    """
    start = start or dt.datetime.combine(day, dt.time())
    end = end or start + dt.timedelta(days=1)
    ids = [d.lower() for d in distribution_ids]
    queries = _queries(ids)
    points = _collect(client, queries, start.replace(tzinfo=dt.UTC), end.replace(tzinfo=dt.UTC))
    rows: dict[tuple[str, dt.datetime], dict[str, float]] = {}
    for i, distro in enumerate(ids):
        for prefix in METRICS:
            for stamp, value in points[f"{prefix[0]}{i}"]:
                ts = stamp.astimezone(dt.UTC).replace(tzinfo=None)
                rows.setdefault((distro, ts), {"requests": 0.0, "bytes": 0.0})[prefix] += value
    frame = pd.DataFrame(
        [(d, ts, int(v["requests"]), int(v["bytes"])) for (d, ts), v in sorted(rows.items())],
        columns=["distro", "ts", "requests", "bytes"],
    )
    return frame.astype({"requests": "int64", "bytes": "int64"})


def diff_pct(logs: float, cloudwatch: float) -> float | None:
    """(logs - CloudWatch) / CloudWatch in percent; None when CloudWatch saw nothing but the logs did."""
    if cloudwatch == 0:
        return 0.0 if logs == 0 else None
    return round((logs - cloudwatch) / cloudwatch * 100, 2)


def _over(value: float | None, threshold_pct: float) -> bool:
    return value is None or bool(pd.isna(value)) or abs(value) > threshold_pct


def _fmt_pct(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:+.2f}%"


def _hour_alerts(distro: str, hours: pd.DataFrame, threshold_pct: float) -> tuple[int, list[str]]:
    """Busy hours whose request counts differ by more than the threshold (count, first few as text)."""
    busy = hours[hours["requests_cw"] >= MIN_HOUR_REQUESTS]
    pct = [diff_pct(a, b) for a, b in zip(busy["requests_logs"], busy["requests_cw"], strict=True)]
    bad = busy[[_over(p, threshold_pct) for p in pct]]
    texts = []
    for _, row in bad.head(MAX_HOUR_ALERTS).iterrows():
        p = diff_pct(row["requests_logs"], row["requests_cw"])
        counts = f"logs {int(row['requests_logs']):,}, CloudWatch {int(row['requests_cw']):,}"
        hour = f"{row['ts']:%Y-%m-%d %H:00} UTC"
        texts.append(f"{distro} {hour}: requests {_fmt_pct(p)} ({counts}): late or missing logs?")
    if len(bad) > MAX_HOUR_ALERTS:
        texts.append(f"{distro}: {len(bad) - MAX_HOUR_ALERTS} more hours over the threshold")
    return len(bad), texts


def _merge(cloudwatch_df: pd.DataFrame, logs_hourly_df: pd.DataFrame) -> pd.DataFrame:
    logs = logs_hourly_df.rename(columns={"request_count": "requests_logs", "bytes_requested": "bytes_logs"})
    cw = cloudwatch_df.rename(columns={"requests": "requests_cw", "bytes": "bytes_cw"})
    merged = cw.merge(logs[["distro", "ts", "requests_logs", "bytes_logs"]], on=["distro", "ts"], how="outer")
    filled = merged.fillna(dict.fromkeys(_COUNTS, 0)).astype(dict.fromkeys(_COUNTS, "int64"))
    return filled.sort_values(["distro", "ts"]).reset_index(drop=True)


def compare(
    cloudwatch_df: pd.DataFrame, logs_hourly_df: pd.DataFrame, threshold_pct: float
) -> tuple[pd.DataFrame, list[str]]:
    """Per-distribution day totals of both sources with differences in percent, plus alert lines.

    `logs_hourly_df`: distro, ts (naive UTC hour), request_count, bytes_requested (stats_hourly).
    The table's last row, distro `total`, sums all distributions. An alert is raised for a day
    total or a busy hour whose difference exceeds `threshold_pct`, and for a distribution that
    has traffic in the logs but no CloudWatch data at all (wrong id, or metrics not readable).
    """
    merged = _merge(cloudwatch_df, logs_hourly_df)
    rows, alerts, over_total = [], [], 0
    for distro, hours in merged.groupby("distro", sort=True):
        totals = hours[_COUNTS].sum()
        if totals["requests_cw"] == 0 and totals["requests_logs"] > 0:
            alerts.append(f"{distro}: no CloudWatch data for {str(distro).upper()} (check the distribution id)")
        over_count, hour_texts = _hour_alerts(str(distro), hours, threshold_pct)
        over_total += over_count
        rows.append(_row(str(distro), totals, over_count))
        alerts += _total_alerts(rows[-1], threshold_pct) + hour_texts
    if rows:
        rows.append(_row("total", merged[_COUNTS].sum(), over_total))
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS)), alerts


def _row(distro: str, totals: pd.Series, hours_over: int) -> dict[str, Any]:
    return {
        "distro": distro,
        "requests_logs": int(totals["requests_logs"]), "requests_cloudwatch": int(totals["requests_cw"]),
        "requests_diff_pct": diff_pct(totals["requests_logs"], totals["requests_cw"]),
        "bytes_logs": int(totals["bytes_logs"]), "bytes_cloudwatch": int(totals["bytes_cw"]),
        "bytes_diff_pct": diff_pct(totals["bytes_logs"], totals["bytes_cw"]),
        "hours_over": hours_over,
    }  # fmt: skip


def _total_alerts(row: dict[str, Any], threshold_pct: float) -> list[str]:
    alerts = []
    for measure in ("requests", "bytes"):
        pct, cw = row[f"{measure}_diff_pct"], row[f"{measure}_cloudwatch"]
        if cw and _over(pct, threshold_pct):
            alerts.append(f"{row['distro']}: {measure} in the logs {row[f'{measure}_logs']:,} vs CloudWatch "
                          f"{cw:,} ({_fmt_pct(pct)}), beyond ±{threshold_pct:g}%")  # fmt: skip
    return alerts
