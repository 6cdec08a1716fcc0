"""The Prefect flows on a temporary Prefect server: a real run on sample logs, and control flow with fakes.

One real run (3 days x 2 distributions x 3,000 lines, Spark via the conftest session) checks the
outputs against an independent count of the gzip files; the decisions (anomaly stop/continue,
reconciliation failure, backfill concurrency) use fake stages so they take seconds.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from flows import daily, pipeline
from flows import runner as runner_module
from flows.artifacts import CSV_KEY, INSIGHTS_KEY, PDF_KEY, SUMMARY_KEY
from flows.demo import generate_days
from flows.notify import FanoutNotifier, ProgressEvent
from flows.settings import Settings, load_settings

D = dt.date(2024, 6, 9)
DAYS = [D - dt.timedelta(days=2), D - dt.timedelta(days=1), D]
ROWS = 3_000
MASTER = "local[2]"
_TIME = re.compile(r"\d\d:\d\d:\d\d")


@pytest.fixture(scope="module")
def prefect_server() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    # A throwaway SQLite database; the subprocess server can take ~45 s to start on a busy machine.
    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="module")
def shared_spark(spark: Any) -> Iterator[None]:
    """The flow's local runner reuses the conftest session (build_session would also get it back
    from getOrCreate, but would reset its shuffle partitions for the other tests)."""
    runner = runner_module.InProcessRunner(MASTER)
    runner._spark = spark
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(runner_module._RUNNERS, ("local", MASTER), runner)
        yield


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[dt.date, Any]]:
    root = tmp_path_factory.mktemp("cdnlake")
    return root, generate_days(root / "landing", DAYS, 2, [ROWS] * 3, seed=11, files_per_hour=1)


def make_settings(root: Path, **overrides: Any) -> Settings:
    return load_settings(env={}, source=str(root / "landing"), warehouse=str(root / "warehouse"),
                         reports=str(root / "reports"), outbox=str(root / "outbox"), spark_master=MASTER,
                         **overrides)  # fmt: skip


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def first_run(prefect_server: None, shared_spark: None, dataset: Any) -> tuple[Settings, dict[str, Any], list[str]]:
    root, _ = dataset
    # Slack is "down" (nothing listens on the port): the run must still complete.
    settings = make_settings(root, slack_webhook_url=f"http://127.0.0.1:{closed_port()}/hook/SECRET")
    records = Records()
    logging.getLogger("flows.notify").addHandler(records)
    try:
        summary = daily.cdn_daily(date=D, settings=settings)
    finally:
        logging.getLogger("flows.notify").removeHandler(records)
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


def test_slack_down_was_logged_without_the_webhook(first_run: Any) -> None:
    _, summary, warnings = first_run
    assert summary["email"]["sent"] is True  # the run went on
    assert any("notification via SlackNotifier failed" in m for m in warnings)
    assert not any("SECRET" in m for m in warnings)


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
    assert stored["settings"]["slack_webhook_url"] == "***set***"  # the webhook never reaches the database


def test_second_run_sends_no_second_email(first_run: Any, dataset: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-run of D without resend: the report is rebuilt, the e-mail ledger says no.

    The Spark stages are skipped (their tables are already there): re-ingesting would only cost
    minutes here, and idempotent ingest is tested with the ingest job itself.
    """
    settings, first, _ = first_run
    root, _ = dataset
    for spark_stage in (daily.ingest_task, daily.compact_task, daily.reconcile_task):
        monkeypatch.setattr(spark_stage, "fn", lambda settings, date, distributions: {"date": str(date)})
    monkeypatch.setattr(daily.aggregate_task, "fn", lambda settings, date, distributions, dates: {})
    again = daily.cdn_daily(date=D, settings=settings)
    assert again["dates_ingested"] == [D.isoformat()]  # D-2 and D-1 are in the warehouse now
    assert again["totals"] == first["totals"]
    assert again["email"]["sent"] is False and "already sent" in again["email"]["detail"]
    assert len(list((root / "outbox").glob(f"{D}_*.eml"))) == 1
    resent = daily.cdn_daily(date=D, resend_email=True, settings=settings)
    assert resent["email"]["sent"] is True
    assert len(list((root / "outbox").glob(f"{D}_*.eml"))) == 2


# ---------------------------------------------------------------- decisions, with fake stages
class Recorder:
    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    def send(self, event: ProgressEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[tuple[str, str | None]]:
        return [(e.kind, e.stage) for e in self.events]


class FakeStages:
    """Stand-ins for the Spark and report stages; ingest records how many writers overlap."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.writers = self.max_writers = 0
        self.emails: list[str] = []

    def ingest(self, settings: Settings, date: dt.date, distributions: list[str] | None) -> dict[str, Any]:
        with self.lock:
            self.writers += 1
            self.max_writers = max(self.max_writers, self.writers)
        time.sleep(0.3)
        with self.lock:
            self.writers -= 1
        return {"date": date.isoformat(), "files": 1, "lines_read": 10, "loaded": 9, "rejected": 1}

    def report(self, settings: Settings, date: dt.date, distributions: list[str] | None,
               crosscheck: Any = None) -> dict[str, Any]:  # fmt: skip
        day = {"request_count": 9, "bytes_requested": 2**30}
        return {"paths": {"pdf": "/tmp/r.pdf", "csv": "/tmp/r.csv", "summary": "/tmp/s.json"},
                "summary": {"days": {date.isoformat(): day}, "peak": {"time": "13:37"}, "peak_text": "1 GB",
                            "quality": {}, "insights": []}}  # fmt: skip

    def email(self, settings: Settings, date: dt.date, distributions: list[str] | None, resend: bool,
              crosscheck: Any = None) -> dict[str, Any]:  # fmt: skip
        self.emails.append(date.isoformat())
        return {"sent": True, "detail": "sent via fake"}


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch, prefect_server: None) -> tuple[FakeStages, Recorder]:
    stages, recorder = FakeStages(), Recorder()
    monkeypatch.setattr(daily.dates_to_ingest_task, "fn", lambda settings, date, distributions: [date])
    monkeypatch.setattr(daily.ingest_task, "fn", stages.ingest)
    monkeypatch.setattr(daily.compact_task, "fn", lambda settings, date, distributions: {})
    monkeypatch.setattr(daily.aggregate_task, "fn", lambda settings, date, distributions, dates: {})
    monkeypatch.setattr(daily.reconcile_task, "fn", lambda settings, date, distributions: {"date": str(date)})
    monkeypatch.setattr(daily.build_report_task, "fn", stages.report)
    monkeypatch.setattr(daily.send_email_task, "fn", stages.email)
    monkeypatch.setattr(daily, "notifier_from_settings", lambda settings: FanoutNotifier([recorder]))
    return stages, recorder


def good_check(settings: Settings, date: dt.date, distributions: list[str] | None) -> pipeline.RawCheck:
    return pipeline.RawCheck(date.isoformat(), 1, 100, {"e1": 1})


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
            daily.cdn_daily(date=D, settings=settings)
        bodies = [json.loads(m["Body"])["Message"] for m in sqs.receive_message(QueueUrl=queue)["Messages"]]
    assert len(bodies) == 1  # failures only: no BEGIN/running/WARNING by SMS
    assert "FAILED cdn-daily 2024-06-09 at check (1/7): StageStopped: raw files of 2024-06-09" in bodies[0]
    assert not (tmp_path / "outbox").exists()


def test_on_anomaly_continue_goes_on(fakes: Any, tmp_path: Path) -> None:
    stages, recorder = fakes
    (tmp_path / "landing").mkdir()
    summary = daily.cdn_daily(date=D, settings=make_settings(tmp_path, on_anomaly="continue"))
    assert any("no raw log files" in a for a in summary["anomalies"])
    assert recorder.kinds()[:3] == [("begin", None), ("running", "check"), ("warning", None)]
    assert "continuing" in str(recorder.events[2].detail)
    assert recorder.kinds()[-1] == ("complete", None) and stages.emails == [D.isoformat()]


def test_reconciliation_failure_sends_no_email_and_alerts(fakes: Any, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    stages, recorder = fakes
    monkeypatch.setattr(daily.check_raw_files_task, "fn", good_check)
    from spark_jobs.reconcile import ReconciliationError

    def mismatch(settings: Settings, date: dt.date, distributions: list[str] | None) -> dict[str, Any]:
        raise ReconciliationError(date, ["request_count: statistics 9 != raw rows 10"])

    monkeypatch.setattr(daily.reconcile_task, "fn", mismatch)
    with pytest.raises(ReconciliationError, match="statistics 9 != raw rows 10"):
        daily.cdn_daily(date=D, resend_email=True, settings=make_settings(tmp_path))
    assert stages.emails == []
    failed = recorder.events[-1]
    assert (failed.kind, failed.stage, failed.step) == ("failed", "reconcile", 5)
    assert ("running", "report") not in recorder.kinds()


def test_concurrent_backfill_takes_turns_writing(fakes: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stages, _ = fakes
    monkeypatch.setattr(daily.check_raw_files_task, "fn", good_check)
    settings = make_settings(tmp_path)
    result = daily.cdn_backfill(start=DAYS[0], end=D, settings=settings, concurrency=3)
    assert [r["status"] for r in result["dates"].values()] == ["completed"] * 3
    assert stages.max_writers == 1  # no global limit yet: the process lock serialised the writes
    assert sorted(stages.emails) == [d.isoformat() for d in DAYS]

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=daily.WRITE_LIMIT, limit=1))
    monkeypatch.setattr(daily, "_LOCAL_WRITES", threading.Lock())
    stages.max_writers = 0
    daily.cdn_backfill(start=DAYS[1], end=D, settings=settings, concurrency=2)
    assert stages.max_writers == 1  # now the Prefect global concurrency limit did it


def test_sequential_backfill_lists_failed_dates(fakes: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stages, _ = fakes

    def check(settings: Settings, date: dt.date, distributions: list[str] | None) -> pipeline.RawCheck:
        found = good_check(settings, date, distributions)
        return pipeline.RawCheck(found.date, 0, 0, {}, ["no raw log files"]) if date == DAYS[1] else found

    monkeypatch.setattr(daily.check_raw_files_task, "fn", check)
    with pytest.raises(daily.BackfillError, match=f"1 of 3 dates failed: {DAYS[1]}"):
        daily.cdn_backfill(start=DAYS[0], end=D, settings=make_settings(tmp_path))
    assert stages.emails == [DAYS[0].isoformat(), D.isoformat()]  # the other dates still ran, in order


# ---------------------------------------------------------------- small pure pieces
def test_default_date_is_yesterday_in_the_report_time_zone() -> None:
    now = dt.datetime(2024, 6, 10, 0, 30, tzinfo=dt.UTC)  # 08:30 in Taipei
    assert daily.default_date(load_settings(env={}), now) == dt.date(2024, 6, 9)
    assert daily.default_date(load_settings(env={}, report_tz="America/New_York"), now) == dt.date(2024, 6, 8)


def test_local_prefect_sets_defaults_only() -> None:
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as TIMEOUT

    level = logging.getLogger("prefect").level
    try:
        with daily.local_prefect(verbose=True):
            assert TIMEOUT.value() == 180
    finally:
        logging.getLogger("prefect").setLevel(level)


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
