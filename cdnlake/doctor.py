"""`cdnlake doctor`: is this machine and this configuration ready for a run? One line per check.

Every check says what it found or what to do. Nothing is sent: S3 gets a probe object written and
deleted under each S3 location (that is what "writable" means there), SES and Slack are only
checked as configuration, and the Prefect API gets a GET of its health endpoint.
"""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

Status = Literal["ok", "warn", "FAIL"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str  # what was found, or what to do


def format_check(check: Check) -> str:
    return f"{check.status:<4}  {check.name:<22} {check.detail}"


def check_java(java_version: Callable[[], int]) -> Check:
    try:
        return Check("Java", "ok", f"Java {java_version()} (Spark 4 needs 17 or newer)")
    except RuntimeError as exc:  # JavaNotFoundError: the message says what to install
        return Check("Java", "FAIL", str(exc))


def check_jars(packages: list[str], cached: Callable[[list[str]], str | None]) -> Check:
    jars = cached(packages)
    if jars:
        return Check("Spark/Delta jars", "ok", f"{len(jars.split(','))} jars resolved for {', '.join(packages)}")
    return Check("Spark/Delta jars", "FAIL", "not resolved yet: run `make install` (or `python -m "
                 "spark_jobs.session`); the first time downloads about 700 MB from Maven Central")  # fmt: skip


def check_class_archive(jars: str | None, archive_for: Callable[[str], Path | None]) -> Check:
    """The local driver's class archive (spark_jobs/class_archive.py): speed only, so never a failure."""
    name = "Spark class archive"
    path = archive_for(jars) if jars else None
    if path is None:
        return Check(name, "warn", "made by `make install` once Java and the jars are there")
    if path.is_file():
        return Check(name, "ok", f"local Spark starts map {path}")
    return Check(name, "warn", f"none for this JDK and jar set: run `make install` (local Spark starts "
                 f"about 5 s slower without {path.name})")  # fmt: skip


def check_font(font_file: Path | None) -> Check:
    if font_file is None:
        return Check("CJK font", "FAIL", "IPAexGothic missing from the venv: run `make install` (package "
                     "japanize-matplotlib); without it the PDF's Japanese text shows as empty boxes")  # fmt: skip
    from reportlab.pdfbase.ttfonts import TTFError, TTFont

    try:
        TTFont("cdnlake-doctor-font", str(font_file))
    except (TTFError, OSError) as exc:
        return Check("CJK font", "FAIL", f"{font_file} does not load ({exc}): reinstall with `make install`")
    return Check("CJK font", "ok", f"IPAexGothic, embedded in every PDF ({font_file})")


def _local_folder(name: str, folder: str, write: bool) -> Check:
    path = Path(folder)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        return Check(name, "FAIL", f"{folder}: {existing} is not a folder; point the setting at a folder")
    if existing != path and not write:
        return Check(name, "warn", f"{folder} does not exist: nothing to read yet (`cdnlake demo` writes samples)")
    if existing != path:
        if write and not os.access(existing, os.W_OK):
            return Check(name, "FAIL", f"{folder} does not exist and {existing} is not writable: create it")
        return Check(name, "ok", f"{folder} (does not exist yet: it will be created)")
    if not os.access(path, os.R_OK | os.X_OK):
        return Check(name, "FAIL", f"{folder} is not readable: fix its permissions")
    if write:
        try:
            with tempfile.NamedTemporaryFile(dir=path, prefix=".cdnlake-doctor-"):
                pass
        except OSError as exc:
            return Check(name, "FAIL", f"{folder} is not writable ({exc.strerror}): fix its permissions or the setting")
    return Check(name, "ok", f"{folder} ({'readable, writable' if write else 'readable'})")


def _s3_location(name: str, uri: str, write: bool, client: Any) -> Check:
    bucket, _, prefix = uri.split("://", 1)[1].partition("/")
    try:
        client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        if write:
            key = f"{prefix.rstrip('/')}/.cdnlake-doctor-{uuid.uuid4().hex}".lstrip("/")
            client.put_object(Bucket=bucket, Key=key, Body=b"")
            client.delete_object(Bucket=bucket, Key=key)
    except Exception as exc:  # botocore ClientError, EndpointConnectionError, NoCredentialsError...
        text = str(exc).splitlines()[0][:200]
        return Check(name, "FAIL", f"{uri}: {type(exc).__name__}: {text} (bucket, endpoint, credentials, policy?)")
    return Check(name, "ok", f"{uri} ({'readable, writable' if write else 'readable'})")


def check_locations(locations: Iterable[tuple[str, str, bool]], s3_client: Callable[[], Any]) -> list[Check]:
    """(name, location, needs writing) -> one check each; S3 through the configured endpoint."""
    checks, client = [], None
    for name, where, write in locations:
        if where.startswith(("s3://", "s3a://")):
            client = client or s3_client()
            checks.append(_s3_location(name, where, write, client))
        else:
            checks.append(_local_folder(name, where, write))
    return checks


def check_s3_endpoint(endpoint: str, s3_client: Callable[[], Any]) -> Check:
    if not endpoint:
        return Check("S3 endpoint", "ok", "AWS S3 (CDNLAKE_S3_ENDPOINT not set)")
    try:
        s3_client().list_buckets()
    except Exception as exc:
        text = str(exc).splitlines()[0][:200]
        return Check("S3 endpoint", "FAIL", f"{endpoint}: {type(exc).__name__}: {text} (is the server up?)")
    return Check("S3 endpoint", "ok", f"{endpoint} answers")


def check_aws_credentials(needed: bool, credentials: Callable[[], Any]) -> Check:
    if not needed:
        return Check("AWS credentials", "ok", "not needed (no S3 location, SES or SNS configured)")
    found = credentials()
    if found is None:
        return Check("AWS credentials", "FAIL", "none found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                     "AWS_PROFILE, or run with an instance/IRSA role")  # fmt: skip
    return Check("AWS credentials", "ok", f"found ({getattr(found, 'method', 'default chain')}; not shown)")


def check_ses(enabled: bool, sender: str, to: tuple[str, ...], region: str, outbox: str) -> Check:
    if not enabled:
        return Check("SES e-mail", "ok", f"off: e-mails are written as .eml files to {outbox}")
    bad = [a for a in (sender, *to) if "@" not in a or a.startswith("@") or a.endswith("@")]
    if bad or not to:
        return Check("SES e-mail", "FAIL", f"CDNLAKE_EMAIL_SENDER/_TO: not e-mail addresses: {bad or 'no recipient'}")
    return Check("SES e-mail", "ok", f"SES in {region} from {sender} to {len(to)} recipient(s) (nothing sent; "
                 "the sender must be a verified identity)")  # fmt: skip


def check_slack(webhook_url: str) -> Check:
    if not webhook_url:
        return Check("Slack", "ok", "off: progress goes to the console only (set CDNLAKE_SLACK_WEBHOOK_URL)")
    host = webhook_url.split("://", 1)[-1].split("/", 1)[0]
    if not webhook_url.startswith("https://hooks.slack.com/") and not host.startswith(("127.0.0.1", "localhost")):
        return Check("Slack", "warn", f"webhook on {host}, not hooks.slack.com: is it the incoming-webhook URL?")
    return Check("Slack", "ok", f"incoming webhook on {host} configured (nothing posted; URL not shown)")


def http_status(url: str, timeout_s: float = 5.0) -> int:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - the configured API URL
        return int(response.status)


def check_prefect(api_url: str | None, get: Callable[[str], int] = http_status) -> Check:
    if not api_url:
        return Check("Prefect API", "ok", "none configured: `cdnlake run` starts a temporary local API "
                     "(set PREFECT_API_URL for a server)")  # fmt: skip
    try:
        status = get(api_url.rstrip("/") + "/health")
    except urllib.error.HTTPError as exc:  # it answered, with an error
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        return Check("Prefect API", "FAIL", f"{api_url} unreachable ({getattr(exc, 'reason', exc)}): "
                     "start the server (`prefect server start`) or fix PREFECT_API_URL")  # fmt: skip
    if status != 200:
        return Check("Prefect API", "FAIL", f"{api_url}/health answered HTTP {status}")
    return Check("Prefect API", "ok", f"{api_url} is up")


def report(checks: list[Check], out: TextIO) -> int:
    """Prints the lines; exit code 1 if any check failed."""
    for check in checks:
        out.write(format_check(check) + "\n")
    failed = [c.name for c in checks if c.status == "FAIL"]
    out.write(f"\n{len(failed)} check(s) failed: {', '.join(failed)}\n" if failed else "\nall checks passed\n")
    return 1 if failed else 0


@dataclass(frozen=True)
class Machine:
    """How the checks reach the outside world; tests pass stand-ins."""

    java_version: Callable[[], int]
    cached_jars: Callable[[list[str]], str | None]
    jar_packages: list[str]
    font_file: Path | None
    s3_client: Callable[[], Any]
    aws_credentials: Callable[[], Any]
    prefect_api_url: str | None
    http_get: Callable[[str], int] = http_status
    class_archive: Callable[[str], Path | None] = lambda jars: None  # noqa: E731 - the archive for these jars


def this_machine(settings: Any) -> Machine:
    """The real machine: Java on PATH/JAVA_HOME, the Ivy cache, the venv's font, boto3, Prefect's settings."""
    import boto3
    from prefect.settings import PREFECT_API_URL

    from cdnlake.integrations.aws import s3_client
    from reporting.fonts import packaged_cjk_font
    from spark_jobs.class_archive import archive_path
    from spark_jobs.jars import cached_jars
    from spark_jobs.session import check_java, jar_packages

    return Machine(java_version=check_java, cached_jars=cached_jars, jar_packages=jar_packages(),
                   font_file=packaged_cjk_font(), s3_client=lambda: s3_client(settings),
                   aws_credentials=lambda: boto3.Session().get_credentials(),
                   prefect_api_url=PREFECT_API_URL.value(), class_archive=archive_path)  # fmt: skip


def run_checks(settings: Any, machine: Machine) -> list[Check]:
    locations = [("source", settings.source, False), ("warehouse", settings.warehouse, True),
                 ("reports", settings.reports, True), ("logs", settings.log_dir, True)]  # fmt: skip
    if not settings.ses_enabled:
        locations.append(("outbox", settings.outbox, True))
    uses_aws = any(str(w).startswith(("s3://", "s3a://")) for _, w, _ in locations)
    uses_aws = uses_aws or settings.ses_enabled or bool(settings.sns_topic_arn or settings.s3_endpoint)
    return [
        check_java(machine.java_version),
        check_jars(machine.jar_packages, machine.cached_jars),
        check_class_archive(machine.cached_jars(machine.jar_packages), machine.class_archive),
        check_font(machine.font_file),
        check_s3_endpoint(settings.s3_endpoint, machine.s3_client),
        *check_locations(locations, machine.s3_client),
        check_aws_credentials(uses_aws, machine.aws_credentials),
        check_ses(
            settings.ses_enabled, settings.email_sender, settings.email_to, settings.aws_region, settings.outbox
        ),  # fmt: skip
        check_slack(settings.slack_webhook_url),
        check_prefect(machine.prefect_api_url, machine.http_get),
    ]
