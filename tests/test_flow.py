"""The Prefect flows on a temporary Prefect server: a real run on sample logs, and control flow with fakes.

One real run (3 days x 2 distributions x 3,000 lines, Spark via the conftest session) checks the
outputs against an independent count of the gzip files; the decisions (anomaly stop/continue,
reconciliation failure, backfill concurrency) use fake stages so they take seconds.
"""

from __future__ import annotations

import datetime as dt
import email
import gzip
import io
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdnlake import pipeline
from cdnlake.demo import generate_days
from cdnlake.notify import FanoutNotifier
from cdnlake.runners.local import InProcessRunner
from cdnlake.services import Services, build_services
from cdnlake.settings import Settings, load_settings
from flows import daily
from flows.artifacts import CSV_KEY, INSIGHTS_KEY, PDF_KEY, SUMMARY_KEY
from tests.fake_services import (
    EveryDateSource,
    FakeRunner,
    FakeSender,
    NewestDateSource,
    Recorder,
    ingested,
    one_raw_file,
)
from tests.flow_runs import run_flow

D = dt.date(2024, 6, 9)
DAYS = [D - dt.timedelta(days=2), D - dt.timedelta(days=1), D]
ROWS = 3_000
MASTER = "local[2]"
_TIME = re.compile(r"\d\d:\d\d:\d\d")


def real_services(settings: Settings, spark: Any, **given: Any) -> Services:
    """The real services of `settings`, their local runner on the conftest session (build_session
    would also get it back from getOrCreate, but would reset its shuffle partitions for the other tests)."""
    runner = InProcessRunner(MASTER, ip_hash_key=settings.ip_hash_key)
    runner._spark = spark
    return build_services(settings, runner=runner, **given)


@dataclass
class Listings:
    """How often the raw files were listed: by the orchestrator (cdnlake.sources, local or S3) and
    through Hadoop (spark_jobs.storage.list_raw_files: the ingest job listing for itself)."""

    orchestrator: list[set[dt.date]] = field(default_factory=list)
    hadoop: list[set[dt.date]] = field(default_factory=list)


@contextmanager
def counted_listings(mp: pytest.MonkeyPatch) -> Iterator[Listings]:
    """Counts every walk of the source: `cdnlake.sources._walk` is what any orchestrator listing
    (list_source, local or S3) goes through; `list_raw_files` is the only Hadoop listing of the source."""
    from cdnlake import sources
    from spark_jobs import storage

    counts = Listings()
    walk, hadoop = sources._walk, storage.list_raw_files

    def counted_walk(source: str, client: object | None) -> Any:
        counts.orchestrator.append(set())
        return walk(source, client)

    def counted_hadoop(spark: Any, source: str, dates: set[dt.date], *rest: Any) -> Any:
        counts.hadoop.append(set(dates))
        return hadoop(spark, source, dates, *rest)

    mp.setattr(sources, "_walk", counted_walk)
    mp.setattr(storage, "list_raw_files", counted_hadoop)
    yield counts


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[dt.date, Any]]:
    root = tmp_path_factory.mktemp("cdnlake")
    return root, generate_days(root / "landing", DAYS, 2, [ROWS] * 3, seed=11, files_per_hour=1)


def make_settings(root: Path, **overrides: Any) -> Settings:
    return load_settings(env={}, source=str(root / "landing"), warehouse=str(root / "warehouse"),
                         reports=str(root / "reports"), outbox=str(root / "outbox"), spark_master=MASTER,
                         **overrides)  # fmt: skip


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


# ---------------------------------------------------------------- fake secrets for the real run
# Assembled at run time (tests/test_secrets.py scans this file); the tag is not hex, so it cannot
# turn up by chance in the hashes, ids and hashed IPs the run writes.
FAKE_TAG = "zq" + "7xk9"


def fake(name: str) -> str:
    return f"fake-{name}-{FAKE_TAG}"


def fake_environment(webhook_base: str) -> dict[str, str]:
    """Every secret-like setting of cdnlake/settings.py (SECRET_FIELDS) and the AWS credentials."""
    return {
        "CDNLAKE_SLACK_WEBHOOK_URL": f"{webhook_base}/services/T0FAKE/B0FAKE/{fake('slack-webhook-token')}",
        "CDNLAKE_SLACK_SIGNING_SECRET": fake("slack-signing-secret"),
        "CDNLAKE_ANONYMIZE_IP": "hash",  # so the IP hash key is really used (it travels as Spark conf)
        "CDNLAKE_IP_HASH_KEY": fake("ip-hash-key"),
        "AWS_ACCESS_KEY_ID": fake("aws-access-key-id"),
        "AWS_SECRET_ACCESS_KEY": fake("aws-secret-access-key"),
        "AWS_SESSION_TOKEN": fake("aws-session-token"),
    }


def secret_values(environment: dict[str, str]) -> dict[str, str]:
    """name -> the value that must appear nowhere (the webhook's token is its secret part)."""
    values = {k: v for k, v in environment.items() if FAKE_TAG in v}
    values["webhook token"] = fake("slack-webhook-token")
    values["tag"] = FAKE_TAG  # any fragment of any of them
    return values


class _SlackDown(BaseHTTPRequestHandler):
    """A local stand-in for Slack's webhook endpoint that is down (503) all run long and keeps
    what the notifier tried to post."""

    posts: list[bytes]

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        self.posts.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.send_response(503)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class SlackStandIn:
    url: str
    posts: list[bytes]


@pytest.fixture(scope="module")
def slack_down() -> Iterator[SlackStandIn]:
    handler: Any = type("Handler", (_SlackDown,), {"posts": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield SlackStandIn(f"http://127.0.0.1:{server.server_address[1]}", handler.posts)
    server.shutdown()
    server.server_close()


class AllRecords(logging.Handler):
    """Every log record of the run, formatted with its traceback, whatever the logger."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class RunOutput:
    """What the real run showed, besides its files: stdout/stderr, log records, Slack posts."""

    secrets: dict[str, str] = field(default_factory=dict)
    listings: Listings = field(default_factory=Listings)
    stdout: str = ""
    stderr: str = ""
    records: list[str] = field(default_factory=list)
    slack_posts: list[bytes] = field(default_factory=list)


@pytest.fixture(scope="module")
def run_output() -> RunOutput:
    return RunOutput()


@contextmanager
def captured(request: pytest.FixtureRequest, output: RunOutput) -> Iterator[None]:
    """stdout/stderr at the file-descriptor level (as capfd: the Spark JVM's too), and every log record."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    capturing = capman is not None and capman.is_globally_capturing()
    if capturing:
        before = capman.read_global_capture()
        sys.stdout.write(before.out)
        sys.stderr.write(before.err)
    handler = AllRecords()
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name, logger in
                                       list(logging.Logger.manager.loggerDict.items())
                                       if isinstance(logger, logging.Logger) and not logger.propagate]  # fmt: skip
    ours = [logging.getLogger(name) for name in ("cdnlake", "flows", "spark_jobs", "reporting")]
    levels = [logger.level for logger in ours]
    for logger in loggers:
        logger.addHandler(handler)
    for logger in ours:  # as with `cdnlake run -v`
        logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        for logger, level in zip(ours, levels, strict=True):
            logger.setLevel(level)
        for logger in loggers:
            logger.removeHandler(handler)
        output.records = handler.lines
        if capturing:
            during = capman.read_global_capture()
            output.stdout, output.stderr = during.out, during.err
            sys.stdout.write(during.out)  # back into the capture, so pytest still shows it on failure
            sys.stderr.write(during.err)


FirstRun = tuple[Settings, dict[str, Any], list[str]]  # settings, summary, warnings of cdnlake.notify


@pytest.fixture(scope="module")
def first_run(prefect_server: None, spark: Any, dataset: Any, slack_down: SlackStandIn,
              run_output: RunOutput, request: pytest.FixtureRequest) -> FirstRun:  # fmt: skip
    """The real run, configured like production from CDNLAKE_* variables holding fake secrets.

    Slack is down (the stand-in answers 503): the run must still complete.
    """
    root, _ = dataset
    environment = fake_environment(slack_down.url)
    run_output.secrets = secret_values(environment)
    records = Records()
    logging.getLogger("cdnlake.notify").addHandler(records)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in environment.items():
                mp.setenv(key, value)
            settings = load_settings(source=str(root / "landing"), warehouse=str(root / "warehouse"),
                                     reports=str(root / "reports"), outbox=str(root / "outbox"),
                                     spark_master=MASTER)  # fmt: skip
            with captured(request, run_output), counted_listings(mp) as listings:
                summary = run_flow(daily.cdn_daily, real_services(settings, spark), date=D)
            run_output.listings = listings
    finally:
        logging.getLogger("cdnlake.notify").removeHandler(records)
    run_output.slack_posts = list(slack_down.posts)
    return settings, summary, records.messages


def count_valid_lines(files: list[Path]) -> tuple[int, int]:
    """(data lines, valid lines) read straight from the gzip files: right field count, numeric
    sc-bytes, a clock time. Independent of the parser under test."""
    lines = valid = 0
    for path in files:
        declared = 33
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
            for raw in handle:
                line = raw.rstrip("\n")
                if line.startswith("#Fields:"):
                    declared = len(line.split(":", 1)[1].split())
                if not line or line.startswith("#"):
                    continue
                lines += 1
                cells = line.split("\t")
                if len(cells) == declared + 1 and cells[-1] == "":
                    cells = cells[:-1]
                valid += len(cells) == declared and cells[3].isdigit() and bool(_TIME.fullmatch(cells[1]))
    return lines, valid


def csv_requests(path: str, day: dt.date) -> int:
    rows = Path(path).read_text(encoding="utf-8").splitlines()
    header = rows[0].split(",")
    at = header.index("REQUEST_COUNT")
    return sum(int(r.split(",")[at]) for r in rows[1:] if r.startswith(day.isoformat()))


# ---------------------------------------------------------------- searching outputs for secrets
def pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    return "\n".join([page.extract_text() or "" for page in reader.pages] + [str(reader.metadata or {})])


def decoded_texts(path: Path) -> Iterator[str]:
    """A file's bytes, and what they encode: MIME parts (base64), PDF text (deflated), Parquet values, gzip."""
    data = path.read_bytes()
    yield data.decode("utf-8", errors="replace")
    if path.suffix == ".gz":
        yield gzip.decompress(data).decode("utf-8", errors="replace")
    elif path.suffix == ".pdf":
        yield pdf_text(data)
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        yield json.dumps(pq.ParquetFile(path).read().to_pylist(), default=str, ensure_ascii=False)
    elif path.suffix == ".eml":
        message = email.message_from_bytes(data, policy=policy.default)
        yield "\n".join(f"{key}: {value}" for key, value in message.items())
        for part in message.walk():
            if part.is_multipart():
                continue
            payload = part.get_payload(decode=True) or b""
            yield payload.decode("utf-8", errors="replace")
            if part.get_content_type() == "application/pdf":
                yield pdf_text(payload)


def output_files(root: Path) -> Iterator[tuple[str, str]]:
    """(file, text) for every file a run wrote under the reports, outbox and warehouse folders."""
    for folder in ("reports", "outbox", "warehouse"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file():
                for text in decoded_texts(path):
                    yield str(path.relative_to(root)), text


def prefect_records(flow_run_id: str) -> Iterator[tuple[str, str]]:
    """What the Prefect API keeps of a flow run: the run, its task runs, artifacts and logs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas import filters
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # logs go to the API in batches
    with get_client(sync_client=True) as client:
        yield "prefect flow run", client.read_flow_run(flow_run_id).model_dump_json()
        runs = filters.FlowRunFilter(id=filters.FlowRunFilterId(any_=[flow_run_id]))
        for task_run in client.read_task_runs(flow_run_filter=runs):
            yield f"prefect task run {task_run.name}", task_run.model_dump_json()
        artifacts = filters.ArtifactFilter(flow_run_id=filters.ArtifactFilterFlowRunId(any_=[flow_run_id]))
        for artifact in client.read_artifacts(artifact_filter=artifacts):
            yield f"prefect artifact {artifact.key}", artifact.model_dump_json()
        logs, offset = filters.LogFilter(flow_run_id=filters.LogFilterFlowRunId(any_=[flow_run_id])), 0
        while batch := client.read_logs(logs, limit=200, offset=offset):
            yield "prefect logs", "\n".join(f"{entry.name} {entry.message}" for entry in batch)
            offset += len(batch)


def leaks(sources: Iterable[tuple[str, str]], secrets: dict[str, str]) -> list[str]:
    """`where: which secret` for every secret value found in any (where, text) source."""
    return sorted({f"{where}: {name}" for where, text in sources for name, value in secrets.items() if value in text})


# ---------------------------------------------------------------- the real run
def test_daily_run_writes_report_email_and_exact_totals(first_run: Any, dataset: Any) -> None:
    settings, summary, _ = first_run
    root, generated = dataset
    assert summary["dates_ingested"] == [d.isoformat() for d in DAYS]  # fresh warehouse: whole window
    for kind in ("pdf", "csv", "summary"):
        assert Path(summary["report"][kind]).is_file(), kind
    assert len(list((root / "outbox").glob(f"{D}_*.eml"))) == 1
    assert summary["email"]["sent"] is True
    lines, valid = count_valid_lines(sorted((root / "landing").rglob(f"*.{D}-*.gz")))
    assert valid == generated[D].valid_lines and lines == ROWS
    assert summary["totals"]["requests"] == valid
    assert csv_requests(summary["report"]["csv"], D) == valid
    ingest_d = summary["ingest"]["per_date"][D.isoformat()]
    assert (ingest_d["lines_read"], ingest_d["loaded"]) == (lines, valid)
    assert summary["ingest"]["totals"]["loaded"] == sum(g.valid_lines for g in generated.values())
    assert re.fullmatch(r"\d\d:\d\d", summary["peak"]["time"]) and summary["peak"]["bytes"] > 0
    assert list(summary["durations"]) == list(daily.STAGES)
    on_disk = json.loads(Path(summary["report"]["summary"]).read_text(encoding="utf-8"))
    assert on_disk["peak"] == summary["peak"]
    # Each stage's seconds, as the run timed them, also in summary.json (added after the e-mail stage).
    assert on_disk["stage_seconds"] == {stage: round(s, 2) for stage, s in summary["durations"].items()}
    assert list(on_disk["stage_seconds"]) == list(daily.STAGES) and on_disk["stage_seconds"]["ingest"] > 0
    assert on_disk["run_seconds"] >= sum(on_disk["stage_seconds"].values()) - 0.1


def test_slack_down_was_logged_without_the_webhook(first_run: Any, run_output: RunOutput) -> None:
    _, summary, warnings = first_run
    assert summary["email"]["sent"] is True  # the run went on
    assert any("notification via SlackNotifier failed" in m and "HTTP 503" in m for m in warnings)
    assert len(run_output.slack_posts) >= 3  # it did try the (fake) webhook: BEGIN 3 times, then once per line
    assert not any(FAKE_TAG in m for m in warnings)


def test_artifacts_and_masked_parameters(first_run: Any) -> None:
    from prefect.artifacts import Artifact
    from prefect.client.orchestration import get_client

    _, summary, _ = first_run
    artifact = Artifact.get(SUMMARY_KEY)
    assert artifact is not None and f"# CDN daily {D}" in str(artifact.data)
    insights = Artifact.get(INSIGHTS_KEY)
    assert insights is not None and "Request Count (M)" in str(insights.data) and "JUN-09" in str(insights.data)
    for key, name in ((PDF_KEY, "cdn_report.pdf"), (CSV_KEY, "cdn_statistics.csv")):
        link = Artifact.get(key)
        assert link is not None and "(file://" in str(link.data) and name in str(link.data)  # stored as markdown
    with get_client(sync_client=True) as client:
        stored = client.read_flow_run(summary["flow_run_id"]).parameters
    assert stored == {"date": D.isoformat(), "distributions": None, "resend_email": False}  # no settings at all


def test_no_fake_secret_in_any_output_of_the_run(first_run: Any, run_output: RunOutput, dataset: Any) -> None:
    """The run had every secret setting (and AWS credentials) in its environment; none of them shows up in
    stdout/stderr (the JVM's too), log records, Slack posts, the Prefect API, or any file it wrote."""
    settings, summary, warnings = first_run
    root, _ = dataset
    secrets = run_output.secrets
    assert settings.ip_hash_key == secrets["CDNLAKE_IP_HASH_KEY"] and settings.anonymize_ip == "hash"
    assert settings.slack_signing_secret == secrets["CDNLAKE_SLACK_SIGNING_SECRET"]
    assert settings.slack_webhook_url.endswith(secrets["webhook token"])
    # The places searched are not empty: capture, logging and Slack really saw the run.
    assert f"BEGIN cdn-daily {D}" in run_output.stderr, "stderr was not captured"
    assert any("spark job ingest" in r for r in run_output.records)
    assert any(b"COMPLETE cdn-daily" in post for post in run_output.slack_posts)
    sources = [("stdout", run_output.stdout), ("stderr", run_output.stderr),
               ("log records", "\n".join(run_output.records)), ("notify warnings", "\n".join(warnings)),
               ("run summary", json.dumps(summary, default=str))]  # fmt: skip
    sources += [(f"slack post {i}", post.decode("utf-8", "replace")) for i, post in enumerate(run_output.slack_posts)]
    prefect = list(prefect_records(summary["flow_run_id"]))
    assert {SUMMARY_KEY, INSIGHTS_KEY, PDF_KEY, CSV_KEY} <= {w.removeprefix("prefect artifact ") for w, _ in prefect}
    assert any(where == "prefect logs" for where, _ in prefect)
    files = list(output_files(root))
    names = {where for where, _ in files}
    expected_files = ("cdn_report.pdf", "cdn_statistics.csv", "summary.json", ".eml", f"_email_ledger/{D}/all.json")
    for expected in expected_files:
        assert any(name.endswith(expected) for name in names), expected
    assert any("_delta_log" in name for name in names) and any(name.endswith(".parquet") for name in names)
    assert leaks(sources + prefect + files, secrets) == []


def test_the_output_search_finds_a_planted_secret_in_every_kind_of_file(tmp_path: Path) -> None:
    """The search above can fail: a fake secret hidden in base64 mail, a deflated PDF, Parquet, gzip, JSON."""
    from email.message import EmailMessage

    import pyarrow as pa
    import pyarrow.parquet as pq
    from reportlab.pdfgen import canvas

    secret = fake("planted")
    pdf = io.BytesIO()
    page = canvas.Canvas(pdf, pageCompression=1)
    page.drawString(72, 720, f"peak at 13:37 {secret}")
    page.save()
    day = tmp_path / "reports" / "2024-06-09"
    day.mkdir(parents=True)
    (day / "cdn_report.pdf").write_bytes(pdf.getvalue())
    (day / "cdn_statistics.csv").write_text("DATE,TIME\n2024-06-09,0\n", encoding="utf-8")  # clean
    (tmp_path / "outbox").mkdir()
    body = EmailMessage()
    body.set_content(f"最大ピーク {secret}", cte="base64")
    (tmp_path / "outbox" / "2024-06-09_1.eml").write_bytes(body.as_bytes())
    attached = EmailMessage()
    attached.set_content("本文")
    attached.add_attachment(pdf.getvalue(), maintype="application", subtype="pdf", filename="cdn_report.pdf")
    (tmp_path / "outbox" / "2024-06-09_2.eml").write_bytes(attached.as_bytes())
    table = tmp_path / "warehouse" / "cdn_logs"
    (table / "dt=2024-06-09").mkdir(parents=True)
    (table / "_delta_log").mkdir()
    pq.write_table(pa.table({"c_ip": ["192.0.2.0", secret]}), table / "dt=2024-06-09" / "part-0.parquet")
    (table / "_delta_log" / "00000000000000000000.json").write_text(json.dumps({"commitInfo": secret}))
    (tmp_path / "warehouse" / "rejects.gz").write_bytes(gzip.compress(secret.encode()))
    hidden = ["reports/2024-06-09/cdn_report.pdf", "outbox/2024-06-09_1.eml", "outbox/2024-06-09_2.eml",
              "warehouse/rejects.gz"]  # fmt: skip
    for name in hidden:
        assert secret.encode() not in (tmp_path / name).read_bytes(), name  # only decoding finds these
    plain = [
        "warehouse/cdn_logs/_delta_log/00000000000000000000.json",
        "warehouse/cdn_logs/dt=2024-06-09/part-0.parquet",
    ]
    assert leaks(output_files(tmp_path), {"planted": secret}) == sorted(f"{n}: planted" for n in hidden + plain)
    assert leaks([("stderr", f"url=https://x/{secret}")], {"planted": secret}) == ["stderr: planted"]


def test_the_source_is_listed_once_per_run(first_run: Any, run_output: RunOutput, dataset: Any, spark: Any,
                                           tmp_path: Path) -> None:  # fmt: skip
    """The real run of D (which loaded D-2, D-1 and D) listed the raw files once, for all three
    dates: the ingest jobs read that listing and Spark listed nothing."""
    from spark_jobs import ingest
    from spark_jobs.params import IngestParams, ListedFile, files_to_json
    from spark_jobs.storage import SourceNotFoundError

    root, _ = dataset
    listings = run_output.listings
    assert len(listings.orchestrator) + len(listings.hadoop) == 1
    assert listings.hadoop == []
    # The count can fail: the ingest job on its own (no list handed over) lists through Hadoop, and is counted.
    alone = IngestParams(D, str(root / "landing"), str(root / "warehouse"))
    with pytest.MonkeyPatch.context() as mp, counted_listings(mp) as counts:
        by_hadoop = ingest.raw_files(spark, alone, None)
    assert (len(counts.hadoop), counts.orchestrator) == (1, [])
    # What a handed-over listing gives the job is what Hadoop's listing would have: same paths (the
    # names ingest_files records), sizes, distributions, dates and hours.
    files = sorted((root / "landing").rglob(f"*.{D}-*.gz"))
    listed = tuple(ListedFile(str(f), f.stat().st_size, int(f.stat().st_mtime * 1000)) for f in files)
    handed = ingest.raw_files(spark, alone.replace(files=listed), None)
    assert len(handed) == len(files) == len(by_hadoop) > 0
    strip = [(f.path, f.size, f.distro, f.date, f.hour) for f in by_hadoop]
    assert [(f.path, f.size, f.distro, f.date, f.hour) for f in handed] == strip
    assert all(abs(a.modified_ms - b.modified_ms) <= 1 for a, b in zip(handed, by_hadoop, strict=True))
    # A submitted job reads the same list from a document (--files-from), through Hadoop.
    document = tmp_path / "files.json"
    document.write_bytes(files_to_json(listed))
    assert ingest.raw_files(spark, alone.replace(files_from=str(document)), None) == handed
    with pytest.raises(SourceNotFoundError, match="file list .*missing.json does not exist"):
        ingest.raw_files(spark, alone.replace(files_from=str(tmp_path / "missing.json")), None)


def test_second_run_sends_no_second_email(first_run: Any, dataset: Any) -> None:
    """A re-run of D without resend: the report is rebuilt, the e-mail ledger says no.

    The Spark jobs are a fake runner (their tables are already there): re-ingesting would only
    cost minutes here, and idempotent ingest is tested with the ingest job itself.
    """
    settings, first, _ = first_run
    root, _ = dataset
    services = build_services(settings, runner=FakeRunner())
    again = run_flow(daily.cdn_daily, services, date=D)
    assert again["dates_ingested"] == [D.isoformat()]  # D-2 and D-1 are in the warehouse now
    assert again["totals"] == first["totals"]
    assert again["email"]["sent"] is False and "already sent" in again["email"]["detail"]
    assert len(list((root / "outbox").glob(f"{D}_*.eml"))) == 1
    resent = run_flow(daily.cdn_daily, services, date=D, resend_email=True)
    assert resent["email"]["sent"] is True
    assert len(list((root / "outbox").glob(f"{D}_*.eml"))) == 2


# ---------------------------------------------------------------- decisions, with fake services
def counting_ingest(fakes: Fakes) -> Any:
    """An ingest job that records how many run at once."""

    def ingest(params: Any) -> dict[str, Any]:
        with fakes.lock:
            fakes.writers += 1
            fakes.max_writers = max(fakes.max_writers, fakes.writers)
        time.sleep(0.3)
        with fakes.lock:
            fakes.writers -= 1
        return ingested(params)

    return ingest


@dataclass
class Fakes:
    """Fake Spark runner, notifier and e-mail sender (the check, report and e-mail stages are real);
    ingest records how many writers overlap."""

    folder: Path
    recorder: Recorder = field(default_factory=Recorder)
    sender: FakeSender = field(default_factory=FakeSender)
    lock: threading.Lock = field(default_factory=threading.Lock)
    writers: int = 0
    max_writers: int = 0
    runner: FakeRunner = field(init=False)

    def __post_init__(self) -> None:
        self.runner = FakeRunner(ingest=counting_ingest(self))

    @property
    def emails(self) -> list[str]:
        return self.sender.dates

    def services(self, settings: Settings, **given: Any) -> Services:
        return build_services(settings, runner=self.runner, notifier=FanoutNotifier([self.recorder]),
                              email_sender=self.sender, **given)  # fmt: skip

    def good_source(self, missing: set[dt.date] | None = None) -> NewestDateSource:
        """A landing area with one good file for each run's date (except `missing`)."""
        return NewestDateSource(one_raw_file(self.folder / "one"), missing=missing or set())


@pytest.fixture
def fakes(prefect_server: None, tmp_path: Path) -> Fakes:
    return Fakes(tmp_path)


def test_no_raw_files_stops_with_a_clear_error_and_an_sms(prefect_server: None, tmp_path: Path) -> None:
    (tmp_path / "landing").mkdir()
    with mock_aws():
        sns, sqs = boto3.client("sns", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
        topic = sns.create_topic(Name="cdnlake")["TopicArn"]
        queue = sqs.create_queue(QueueName="sms")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        settings = make_settings(tmp_path, sns_topic_arn=topic)
        with pytest.raises(pipeline.StageStopped, match="no raw log files for 2024-06-09.*CDNLAKE_ON_ANOMALY"):
            run_flow(daily.cdn_daily, settings, date=D)
        bodies = [json.loads(m["Body"])["Message"] for m in sqs.receive_message(QueueUrl=queue)["Messages"]]
    assert len(bodies) == 1  # failures only: no BEGIN/running/WARNING by SMS
    assert "FAILED cdn-daily 2024-06-09 at check (1/7): StageStopped: raw files of 2024-06-09" in bodies[0]
    assert not (tmp_path / "outbox").exists()


def test_on_anomaly_continue_goes_on(fakes: Fakes, tmp_path: Path) -> None:
    stages, recorder = fakes, fakes.recorder
    (tmp_path / "landing").mkdir()
    summary = run_flow(daily.cdn_daily, fakes.services(make_settings(tmp_path, on_anomaly="continue")), date=D)
    assert any("no raw log files" in a for a in summary["anomalies"])
    assert recorder.kinds()[:3] == [("begin", None), ("running", "check"), ("warning", None)]
    assert "continuing" in str(recorder.events[2].detail)
    assert recorder.kinds()[-1] == ("complete", None) and stages.emails == [D.isoformat()]


def test_reconciliation_failure_sends_no_email_and_alerts(fakes: Fakes, tmp_path: Path) -> None:
    stages, recorder = fakes, fakes.recorder
    from spark_jobs.reconcile import ReconciliationError

    def mismatch(params: Any) -> dict[str, Any]:
        raise ReconciliationError(params.date, ["request_count: statistics 9 != raw rows 10"])

    fakes.runner.results["reconcile"] = mismatch
    services = fakes.services(make_settings(tmp_path), source=fakes.good_source())
    with pytest.raises(ReconciliationError, match="statistics 9 != raw rows 10"):
        run_flow(daily.cdn_daily, services, date=D, resend_email=True)
    assert stages.emails == []
    failed = recorder.events[-1]
    assert (failed.kind, failed.stage, failed.step) == ("failed", "reconcile", 5)
    assert ("running", "report") not in recorder.kinds()


def test_the_spark_jobs_of_a_run_share_one_application(fakes: Fakes, tmp_path: Path) -> None:
    """Ingest, compact, aggregate and reconcile run inside one runner.application(run id): on
    Kubernetes one SparkApplication for the run (cdnlake/runners/k8s_run.py); the jobs get typed parameters."""
    services = fakes.services(make_settings(tmp_path), source=fakes.good_source())
    summary = run_flow(daily.cdn_daily, services, date=D)
    runner = fakes.runner
    assert runner.jobs() == [("ingest", str(D)), ("compact", str(D)), ("aggregate", str(D)), ("reconcile", str(D))]
    assert runner.applications == [summary["flow_run_id"]] and all(runner.in_application)
    (ingest,) = [p for p in runner.calls if p.job == "ingest"]
    assert [f.uri for f in ingest.files] == [str(services.source.file)]  # the check's listing, handed over


def test_a_fresh_warehouse_ingests_the_windows_dates_in_one_job(fakes: Fakes, tmp_path: Path) -> None:
    """Raw files for D-2, D-1 and D and nothing loaded yet: one ingest job for the three dates (its
    fixed cost paid once), then each date compacted and reconciled with its own accounting."""
    source = EveryDateSource(tmp_path / "landing-3", DAYS)
    summary = run_flow(daily.cdn_daily, fakes.services(make_settings(tmp_path), source=source), date=D)
    runner = fakes.runner
    days = [str(d) for d in DAYS]
    assert runner.jobs() == [("ingest", str(D)), *[("compact", d) for d in days], ("aggregate", str(D)),
                             *[("reconcile", d) for d in days]]  # fmt: skip
    (ingest,) = [p for p in runner.calls if p.job == "ingest"]
    assert ingest.all_dates == DAYS and ingest.dates == (DAYS[0], DAYS[1])
    assert sorted(f.uri for f in ingest.files) == sorted(str(f) for f in source.files.values())
    assert summary["dates_ingested"] == days
    assert summary["ingest"]["totals"] == {"files": 3, "lines_read": 30, "loaded": 27, "rejected": 3,
                                           "damaged_files": 0}  # fmt: skip


def test_concurrent_backfill_takes_turns_writing(fakes: Fakes, tmp_path: Path) -> None:
    stages = fakes
    settings = fakes.services(make_settings(tmp_path), source=fakes.good_source())
    result = run_flow(daily.cdn_backfill, settings, start=DAYS[0], end=D, concurrency=3)
    assert [r["status"] for r in result["dates"].values()] == ["completed"] * 3
    assert stages.max_writers == 1  # no global limit yet: the process lock serialised the writes
    assert sorted(stages.emails) == [d.isoformat() for d in DAYS]

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=daily.WRITE_LIMIT, limit=1))
    try:
        stages.max_writers = 0
        run_flow(daily.cdn_backfill, settings, start=DAYS[1], end=D, concurrency=2)
        assert stages.max_writers == 1  # now the Prefect global concurrency limit did it
    finally:  # the server is the session's (tests/conftest.py): later modules' runs start without the limit
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name(daily.WRITE_LIMIT)


def test_sequential_backfill_lists_failed_dates(fakes: Fakes, tmp_path: Path) -> None:
    stages = fakes
    services = fakes.services(make_settings(tmp_path), source=fakes.good_source(missing={DAYS[1]}))
    with pytest.raises(daily.BackfillError, match=f"1 of 3 dates failed: {DAYS[1]}"):
        run_flow(daily.cdn_backfill, services, start=DAYS[0], end=D)
    assert stages.emails == [DAYS[0].isoformat(), D.isoformat()]  # the other dates still ran, in order


# ---------------------------------------------------------------- small pure pieces
def test_local_prefect_sets_defaults_only() -> None:
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as TIMEOUT

    from cdnlake.prefect_defaults import local_prefect

    level = logging.getLogger("prefect").level
    try:
        with local_prefect(verbose=True):
            assert TIMEOUT.value() == 180
    finally:
        logging.getLogger("prefect").setLevel(level)


def test_local_prefect_keeps_prefect_quiet_whatever_is_imported_later() -> None:
    """`cdnlake demo` imports the flow (and so Prefect's logging set-up) inside local_prefect: the
    WARNING level must survive it, or every task prints "Finished in state Completed()"."""
    import subprocess

    code = (
        "import logging\n"
        "from cdnlake.prefect_defaults import local_prefect\n"
        "with local_prefect():\n"
        "    import flows.daily  # what the demo imports inside the context\n"
        "    print(logging.getLogger('prefect').getEffectiveLevel(),"
        " logging.getLogger('prefect.task_runs').getEffectiveLevel())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == [str(logging.WARNING), str(logging.WARNING)], out.stderr[-2000:]


def test_markdown_and_insights_rendering() -> None:
    from flows.artifacts import insights_rows, render_markdown, uri_for

    summary = {
        "date": "2024-06-09", "dates_ingested": ["2024-06-09"], "totals": {"requests": 1234567, "gb": 1.5},
        "peak_text": "1.00 GB (0.13Gbps) at 13:37", "email": {"detail": "sent via outbox"},
        "quality": {"files": 2, "lines_read": 10, "loaded": 9, "rejected": 1},
        "durations": {"check": 0.2, "ingest": 12.34}, "anomalies": ["volume low"],
        "insights": [{"measure": "Request Count (M)", "previous": "1.00", "current": "1.10", "trend": "+10.00%",
                      "previous_date": "2024-06-08", "current_date": "2024-06-09"}],
    }  # fmt: skip
    text = render_markdown(summary)
    for expected in ("# CDN daily 2024-06-09", "- requests: 1,234,567", "| 2 | 0 | 10 | 9 | 1 |",
                     "| ingest | 12.3 |", "- volume low", "- distributions: all"):  # fmt: skip
        assert expected in text, expected
    assert insights_rows(summary) == [
        {"MEASURES": "Request Count (M)", "JUN-08": "1.00", "JUN-09": "1.10", "TREND": "+10.00%"}
    ]
    assert uri_for("s3://bucket/r.pdf") == "s3://bucket/r.pdf"
    assert uri_for("/tmp/x/r.pdf") == "file:///tmp/x/r.pdf"


def test_csv_equals_duckdb_over_the_raw_files(first_run: Any, dataset: Any) -> None:
    """Every cell of cdn_statistics.csv equals DuckDB's computation straight from the gz files."""
    from bench.duckdb_reference import hourly_statistics

    _, summary, _ = first_run
    root, _ = dataset
    expected = {(str(r[0]), int(r[1])): [int(x) for x in r[2:]]
                for r in hourly_statistics(sorted((root / "landing").rglob("*.gz")))}  # fmt: skip
    rows = Path(summary["report"]["csv"]).read_text(encoding="utf-8").splitlines()
    assert len(rows) == 73
    for row in rows[1:]:
        cells = row.split(",")
        assert cells[2:] == [str(v) for v in expected.get((cells[0], int(cells[1])), [0] * 11)], row


# ---------------------------------------------------------------- late files and traffic alerts (issue 19)
def copy_with_new_ids(source: Path, target: Path, tag: str, status: str | None = None) -> None:
    """`source`'s lines under another name, with request ids made unique (`tag`) and, given
    `status`, every data line's sc-status replaced: a late delivery, or a 5xx spike."""
    out = []
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        for line in handle:
            cells = line.rstrip("\n").split("\t")
            if not line.startswith("#") and len(cells) > 14:
                cells[14] = cells[14] + tag
                if status is not None:
                    cells[8] = status
            out.append("\t".join(cells) + "\n")
    with gzip.open(target, "wt", encoding="utf-8") as handle:
        handle.writelines(out)


def test_next_day_run_picks_up_a_late_file_and_raises_a_5xx_alert(
    first_run: Any, dataset: Any, slack_down: SlackStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    spark: Any,
) -> None:
    """D+1 after a late file for D landed and with a 5xx spike at 05h of D+1 for one distribution.

    Runs on a copy of the first run's landing and warehouse, so the other tests keep their state.
    """
    import shutil

    from bench.duckdb_reference import hourly_statistics

    settings, first, _ = first_run
    root, generated = dataset
    shutil.copytree(root / "landing", tmp_path / "landing")  # copy2: the files keep their mtimes
    shutil.copytree(root / "warehouse", tmp_path / "warehouse")
    nxt = D + dt.timedelta(days=1)
    generate_days(tmp_path / "landing", [nxt], 2, [ROWS], seed=11, files_per_hour=1)
    distro = generated[D].distribution_ids[0]
    late_source = next((tmp_path / "landing").rglob(f"{distro}.{D}-10.*.gz"))
    late_file = late_source.with_name(f"{distro}.{D}-10.late1.gz")
    copy_with_new_ids(late_source, late_file, "late")
    spike_source = next((tmp_path / "landing").rglob(f"{distro}.{nxt}-05.*.gz"))
    spike_file = spike_source.with_name(f"{distro}.{nxt}-05.spike1.gz")
    copy_with_new_ids(spike_source, spike_file, "spike", status="503")
    run = make_settings(tmp_path, slack_webhook_url=settings.slack_webhook_url)
    summary = run_flow(daily.cdn_daily, real_services(run, spark), date=nxt)

    assert summary["dates_ingested"] == [D.isoformat(), nxt.isoformat()]  # D-1 is unchanged: not reloaded
    # ...and its statistics not rebuilt (no scan of its rows); the CSV check below covers its hours.
    unchanged = (D - dt.timedelta(days=1)).isoformat()
    assert summary["statistics"] == {"rebuilt": [D.isoformat(), nxt.isoformat()], "unchanged": [unchanged]}
    _, late_valid = count_valid_lines([late_file])
    assert summary["late_files"]["refreshed"] == [D.isoformat()]
    assert summary["late_files"]["lines_added"] == {D.isoformat(): late_valid}
    expected = {(str(r[0]), int(r[1])): [int(x) for x in r[2:]]
                for r in hourly_statistics(sorted((tmp_path / "landing").rglob("*.gz")))}  # fmt: skip
    rows = Path(summary["report"]["csv"]).read_text(encoding="utf-8").splitlines()[1:]
    d_rows = [r for r in rows if r.startswith(D.isoformat())]
    assert len(d_rows) == 24 and csv_requests(summary["report"]["csv"], D) == first["totals"]["requests"] + late_valid
    for row in rows:  # every hour of D-1..D+1, D's with the late lines, equals DuckDB over all the files
        cells = row.split(",")
        assert cells[2:] == [str(v) for v in expected.get((cells[0], int(cells[1])), [0] * 11)], row

    own_files = sorted((tmp_path / "landing").rglob(f"{distro}.*.gz"))
    own = {(str(r[0]), int(r[1])): r[2:] for r in hourly_statistics(own_files)}
    requests, http5xx = int(own[(nxt.isoformat(), 5)][0]), int(own[(nxt.isoformat(), 5)][8])
    spikes = [a for a in summary["alerts"] if a["kind"] == "5xx_share"]
    assert [(a["distribution"], a["hour"]) for a in spikes] == [(distro.lower(), 5)]
    assert spikes[0]["value"] == pytest.approx(round(http5xx / requests * 100, 2))
    on_disk = json.loads(Path(summary["report"]["summary"]).read_text(encoding="utf-8"))
    assert on_disk["alerts"] == summary["alerts"] and on_disk["late_files"]["refreshed"] == [D.isoformat()]
    printed = capsys.readouterr().err
    assert f"traffic alert: SEVERE 5xx_share {distro.lower()} 05:00" in printed
    assert f"late files: refreshed {D} (+{late_valid:,} lines)" in printed and "bandwidth usage" in printed
    posted = [json.loads(p)["text"] for p in slack_down.posts]
    assert any(f"5xx_share {distro.lower()} 05:00" in text for text in posted)
    assert any("COMPLETE" in text and "June bandwidth usage" in text for text in posted)


@pytest.fixture
def cleared_automations(prefect_server: None) -> Iterator[None]:
    """The server is the session's (tests/conftest.py): no automation a test applies outlives it."""
    yield
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for automation in client.read_automations():
            if automation.name.startswith("cdnlake:"):
                client.delete_automation(automation.id)


def test_automations_are_applied_on_the_prefect_server_once(cleared_automations: None) -> None:
    from prefect.blocks.notifications import SlackWebhook
    from prefect.client.orchestration import get_client

    from cdnlake.automations import apply_automations

    SlackWebhook(url="https://hooks.slack.com/services/T0/B0/abc").save("cdnlake-ops", overwrite=True)
    settings = load_settings(env={}, automation_block="slack-webhook/cdnlake-ops", completion_deadline="11:00")
    names = apply_automations(settings)
    assert apply_automations(settings) == names  # a second apply replaces, never duplicates
    with get_client(sync_client=True) as client:
        stored = {a.name: a for a in client.read_automations() if a.name.startswith("cdnlake:")}
        block = client.read_block_document_by_name("cdnlake-ops", "slack-webhook").id
    assert sorted(stored) == sorted(names) and len(names) == 4
    deadline = stored["cdnlake: cdn-daily not completed by 11:00"]
    assert deadline.trigger.within == dt.timedelta(hours=2, minutes=30)  # from 08:30 in prefect.yaml
    assert deadline.trigger.expect == {"prefect.flow-run.Completed"}
    assert stored["cdnlake: flow run crashed"].trigger.expect == {"prefect.flow-run.Crashed"}
    assert all(a.actions[0].block_document_id == block for a in stored.values())
    with pytest.raises(ValueError, match="block-type/name"):
        apply_automations(load_settings(env={}, automation_block="cdnlake-ops"))
