"""The one place cdnlake reads its configuration: defaults < config file < CDNLAKE_* environment.

Secrets (Slack webhook, AWS keys) come only from the environment or Prefect blocks; they are
masked whenever settings are printed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from spark_jobs.contract import DISTRO_RE, location
from spark_jobs.log_fields import field_delimiter

ENV_PREFIX = "CDNLAKE_"
SECRET_FIELDS = frozenset({"slack_webhook_url", "ip_hash_key", "slack_signing_secret"})
RUNNERS = ("local", "standalone", "kubernetes")


class ConfigError(ValueError):
    """A setting is invalid; the message names the key."""


def spark_conf_items(text: str) -> list[str]:
    """The `key=value` items of CDNLAKE_SPARK_CONF (`;`-separated, blanks ignored)."""
    return [item.strip() for item in text.split(";") if item.strip()]


@dataclass(frozen=True)
class Settings:
    source: str = "./data/landing"
    warehouse: str = "./data/warehouse"
    reports: str = "./data/reports"
    outbox: str = "./data/outbox"
    # Spark's full driver log of each run (the console shows errors only): a local folder.
    log_dir: str = "./data/logs"
    spark_master: str = "local[*]"
    spark_runner: str = "local"
    spark_driver_memory: str = "3g"
    # Extra Spark settings for every job, `key=value` pairs separated by `;` (e.g. shuffle partitions
    # or executor memory overhead at production volume).
    spark_conf: str = ""
    # An S3-compatible endpoint (MinIO, LocalStack, moto): s3a is pointed there with path-style access.
    s3_endpoint: str = ""
    report_tz: str = "UTC"
    schedule_tz: str = "Asia/Taipei"
    environment: str = "development"
    distributions: tuple[str, ...] = ()
    # E-mail: SES when ses_enabled, else .eml files in the outbox.
    ses_enabled: bool = False
    aws_region: str = "us-east-1"
    email_sender: str = "cdnlake@example.com"
    email_to: tuple[str, ...] = ("ops@example.com",)
    email_cc: tuple[str, ...] = ()
    email_bcc: tuple[str, ...] = ()
    email_template: str = ""  # path to a body template file; empty = built-in Japanese text
    # Notifications: console always; Slack when a webhook is set; SMS on failure when a topic is set.
    slack_webhook_url: str = ""
    sns_topic_arn: str = ""
    # Conditional execution: what to do when the raw files look wrong.
    on_anomaly: str = "stop"  # stop | continue
    min_volume_ratio: float = 0.2  # below this share of the recent average the volume is an anomaly
    # Per-date run lock (cdnlake/locks.py): how long a second run of the same date waits for the first
    # before failing, and after how long without a heartbeat an S3 lock counts as abandoned.
    lock_wait_seconds: float = 600.0
    lock_stale_seconds: float = 600.0
    # Kubernetes runner
    k8s_namespace: str = "cdnlake"
    k8s_image: str = "cdnlake:latest"
    k8s_service_account: str = "cdnlake-spark"
    k8s_executor_instances: int = 2
    k8s_timeout_s: int = 3600
    k8s_driver_cores: int = 1
    k8s_driver_memory: str = "4g"
    k8s_executor_cores: int = 2
    k8s_executor_memory: str = "4g"
    k8s_max_executors: int = 0  # > 0 turns on dynamic allocation up to this many executors
    # Privacy at ingest: client IPs truncated to /24 (IPv4) and /48 (IPv6) by default; `hash`
    # replaces them with an HMAC keyed by ip_hash_key; cookies are dropped unless keep_cookies.
    anonymize_ip: str = "truncate"  # none | truncate | hash
    ip_hash_key: str = ""
    keep_cookies: bool = False
    # Field delimiter of standard logging v2 text deliveries (w3c/plain): one character, `tab` default.
    v2_delimiter: str = "tab"
    # Catalog: the Delta tables are registered in this AWS Glue database after each run (Athena
    # then queries them); empty = the embedded default, where nothing needs registering.
    glue_database: str = ""
    glue_table_prefix: str = ""
    # CloudWatch cross-check: CloudFront's own per-hour Requests/BytesDownloaded vs the logs.
    cloudwatch_enabled: bool = False
    cloudwatch_threshold_pct: float = 5.0
    # Re-runs from chat: `cdnlake chat-server` verifies Slack's signature, then runs this deployment.
    slack_signing_secret: str = ""
    rerun_deployment: str = "cdn-rerun/cdn-rerun"
    # Operations (README "Alerts"): late files re-ingested over D-late_days..D-1 (0 = off); traffic
    # alerts on the statistics; the Prefect automations that alert when cdn-daily is late or crashes.
    late_days: int = 2
    alert_5xx_pct: float = 5.0  # 5xx share of an hour's requests (per distribution)
    alert_min_requests: int = 100  # hours with fewer requests are too small for a share to mean much
    alert_hit_ratio_drop_points: float = 10.0  # hit ratio of D below D-1's by more than this
    alert_silent_days: int = 2  # an hour with no requests that had traffic on each of these days before
    alert_volume_low: float = 0.5  # daily bytes below this times the last-7-day median
    alert_volume_high: float = 2.0  # ... or above this times it
    alert_committed_gbps: float = 100.0  # peak bandwidth above the committed rate (0 = off)
    completion_deadline: str = "10:30"  # cdn-daily must have completed by then (CDNLAKE_SCHEDULE_TZ)
    automation_block: str = ""  # Prefect notification block the automations use (`slack-webhook/ops`)
    config_file: str = ""

    def masked(self) -> dict[str, Any]:
        """Effective settings for display: secrets replaced by a marker that says whether set."""
        values = dataclasses.asdict(self)
        for key in SECRET_FIELDS:
            values[key] = "***set***" if values[key] else ""
        return values

    def spark_conf_pairs(self) -> dict[str, str]:
        """The Spark settings these settings add to every job (S3 endpoint, CDNLAKE_SPARK_CONF)."""
        conf: dict[str, str] = {}
        if self.s3_endpoint:
            conf["spark.hadoop.fs.s3a.endpoint"] = self.s3_endpoint
            conf["spark.hadoop.fs.s3a.path.style.access"] = "true"
            conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(self.s3_endpoint.startswith("https://")).lower()
        for item in spark_conf_items(self.spark_conf):
            key, _, value = item.partition("=")
            conf[key.strip()] = value.strip()
        return conf

    @property
    def email_recipients_note(self) -> str:
        return f"to={','.join(self.email_to)} cc={','.join(self.email_cc)} bcc={len(self.email_bcc)}"


def _coerce(name: str, raw: Any, kind: Any) -> Any:
    """Convert a config/env value to the field's type, naming the key when it does not fit."""
    key = ENV_PREFIX + name.upper()
    try:
        if kind in (bool, "bool"):
            if isinstance(raw, bool):
                return raw
            lowered = str(raw).strip().lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError("expected true or false")
            return lowered in ("1", "true", "yes", "on")
        if kind in (int, "int"):
            return int(raw)
        if kind in (float, "float"):
            return float(raw)
        if kind in ("tuple[str, ...]",):
            items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
            return tuple(str(i).strip() for i in items if str(i).strip())
        return str(raw)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc} (got {raw!r})") from None


def _validate(s: Settings) -> None:
    for key in ("source", "warehouse", "reports", "outbox"):
        try:
            location(getattr(s, key))
        except Exception as exc:  # argparse.ArgumentTypeError
            raise ConfigError(f"{ENV_PREFIX}{key.upper()}: {exc}") from None
    if s.log_dir.startswith(("s3://", "s3a://")):
        raise ConfigError(f"{ENV_PREFIX}LOG_DIR: a local folder (got {s.log_dir!r})")
    for key in ("report_tz", "schedule_tz"):
        try:
            zone = ZoneInfo(getattr(s, key))
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{ENV_PREFIX}{key.upper()}: unknown time zone {getattr(s, key)!r}") from None
        offset = dt.datetime(2024, 1, 1, tzinfo=zone).utcoffset() or dt.timedelta()
        if key == "report_tz" and offset.total_seconds() % 3600:
            raise ConfigError(f"{ENV_PREFIX}REPORT_TZ: only whole-hour UTC offsets are supported")
    if s.spark_runner not in RUNNERS:
        raise ConfigError(f"{ENV_PREFIX}SPARK_RUNNER: one of {', '.join(RUNNERS)} (got {s.spark_runner!r})")
    for item in spark_conf_items(s.spark_conf):
        key, equals, _ = item.partition("=")
        if not equals or not key.strip().startswith("spark."):
            raise ConfigError(f"{ENV_PREFIX}SPARK_CONF: `spark.key=value` pairs separated by `;` (got {item!r})")
    if s.s3_endpoint and not s.s3_endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"{ENV_PREFIX}S3_ENDPOINT: an http(s):// URL (got {s.s3_endpoint!r})")
    if s.on_anomaly not in ("stop", "continue"):
        raise ConfigError(f"{ENV_PREFIX}ON_ANOMALY: stop or continue (got {s.on_anomaly!r})")
    if s.lock_wait_seconds < 0:
        raise ConfigError(f"{ENV_PREFIX}LOCK_WAIT_SECONDS: seconds, 0 or more (got {s.lock_wait_seconds!r})")
    if s.lock_stale_seconds < 10:
        raise ConfigError(f"{ENV_PREFIX}LOCK_STALE_SECONDS: seconds, 10 or more (got {s.lock_stale_seconds!r})")
    if s.anonymize_ip not in ("none", "truncate", "hash"):
        raise ConfigError(f"{ENV_PREFIX}ANONYMIZE_IP: none, truncate or hash (got {s.anonymize_ip!r})")
    try:
        field_delimiter(s.v2_delimiter)
    except ValueError as exc:
        raise ConfigError(f"{ENV_PREFIX}V2_DELIMITER: {exc}") from None
    if s.anonymize_ip == "hash" and not s.ip_hash_key:
        raise ConfigError(f"{ENV_PREFIX}IP_HASH_KEY: required when {ENV_PREFIX}ANONYMIZE_IP=hash")
    for d in s.distributions:
        if not DISTRO_RE.match(d):
            raise ConfigError(f"{ENV_PREFIX}DISTRIBUTIONS: not a distribution id: {d!r}")
    if s.slack_webhook_url and not s.slack_webhook_url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise ConfigError(f"{ENV_PREFIX}SLACK_WEBHOOK_URL: must be an https URL")
    _validate_integrations(s)


_GLUE_NAME_RE = re.compile(r"^[a-z0-9_]{1,255}$")  # Athena reads lower-case names with underscores only
_DEPLOYMENT_RE = re.compile(r"^[^/\s]+/[^/\s]+$")


def _validate_integrations(s: Settings) -> None:
    """Glue, CloudWatch and chat settings (kept apart so _validate stays readable)."""
    if s.glue_database and not _GLUE_NAME_RE.match(s.glue_database):
        raise ConfigError(f"{ENV_PREFIX}GLUE_DATABASE: lower-case letters, digits and _ only (got {s.glue_database!r})")
    if s.glue_table_prefix and not _GLUE_NAME_RE.match(s.glue_table_prefix):
        raise ConfigError(f"{ENV_PREFIX}GLUE_TABLE_PREFIX: lower-case letters, digits and _ only "
                          f"(got {s.glue_table_prefix!r})")  # fmt: skip
    if s.glue_database and not s.warehouse.startswith(("s3://", "s3a://")):
        # Athena and the other engines that read Glue only reach S3: a local path would be useless there.
        raise ConfigError(f"{ENV_PREFIX}GLUE_DATABASE: needs an s3:// {ENV_PREFIX}WAREHOUSE (got {s.warehouse!r})")
    if not 0 < s.cloudwatch_threshold_pct <= 100:
        raise ConfigError(f"{ENV_PREFIX}CLOUDWATCH_THRESHOLD_PCT: a percentage in (0, 100] "
                          f"(got {s.cloudwatch_threshold_pct!r})")  # fmt: skip
    if not _DEPLOYMENT_RE.match(s.rerun_deployment):
        raise ConfigError(f"{ENV_PREFIX}RERUN_DEPLOYMENT: flow-name/deployment-name (got {s.rerun_deployment!r})")
    _validate_operations(s)


_DEADLINE_RE = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def _validate_operations(s: Settings) -> None:
    """Late files, traffic alerts and automations (README "Alerts")."""
    counts = {"late_days": (s.late_days, 0, 30), "alert_min_requests": (s.alert_min_requests, 0, None),
              "alert_silent_days": (s.alert_silent_days, 0, 7)}  # fmt: skip
    for key, (value, low, high) in counts.items():
        if value < low or (high is not None and value > high):
            bounds = f"{low}..{high}" if high is not None else f"{low} or more"
            raise ConfigError(f"{ENV_PREFIX}{key.upper()}: {bounds} (got {value!r})")
    if not 0 < s.alert_5xx_pct <= 100:
        raise ConfigError(f"{ENV_PREFIX}ALERT_5XX_PCT: a percentage in (0, 100] (got {s.alert_5xx_pct!r})")
    if not 0 < s.alert_hit_ratio_drop_points <= 100:
        raise ConfigError(f"{ENV_PREFIX}ALERT_HIT_RATIO_DROP_POINTS: percentage points in (0, 100] "
                          f"(got {s.alert_hit_ratio_drop_points!r})")  # fmt: skip
    if not 0 < s.alert_volume_low < 1 < s.alert_volume_high:
        raise ConfigError(f"{ENV_PREFIX}ALERT_VOLUME_LOW / _HIGH: 0 < low < 1 < high "
                          f"(got {s.alert_volume_low!r}, {s.alert_volume_high!r})")  # fmt: skip
    if s.alert_committed_gbps < 0:
        raise ConfigError(f"{ENV_PREFIX}ALERT_COMMITTED_GBPS: Gbps, 0 (off) or more (got {s.alert_committed_gbps!r})")
    if not _DEADLINE_RE.match(s.completion_deadline):
        raise ConfigError(f"{ENV_PREFIX}COMPLETION_DEADLINE: HH:MM (got {s.completion_deadline!r})")


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Defaults, then the TOML file named by CDNLAKE_CONFIG, then CDNLAKE_* variables, then overrides."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    config_file = env.get(ENV_PREFIX + "CONFIG", "")
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"{ENV_PREFIX}CONFIG: file not found: {config_file}")
        with path.open("rb") as handle:
            try:
                data = tomllib.load(handle)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{ENV_PREFIX}CONFIG: {config_file}: {exc}") from None
        values.update(data.get("cdnlake", data))
        values["config_file"] = config_file
    known = {f.name: f for f in fields(Settings)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{config_file}: unknown setting(s): {', '.join(unknown)}")
    for name in known:
        key = ENV_PREFIX + name.upper()
        if key in env and name != "config_file":
            values[name] = env[key]
    values.update({k: v for k, v in overrides.items() if v is not None})
    typed = {name: _coerce(name, raw, known[name].type) for name, raw in values.items()}
    if "distributions" in typed:
        typed["distributions"] = tuple(d.lower() for d in typed["distributions"])
    settings = Settings(**typed)
    _validate(settings)
    return settings


__all__ = ["ConfigError", "Settings", "load_settings"]
