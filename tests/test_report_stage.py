"""The report and e-mail stages share one ReportData, and the e-mail attaches the report's own bytes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from cdnlake import pipeline
from cdnlake.services import Services, build_services
from cdnlake.settings import load_settings
from cdnlake.storage import LocalStore
from tests.fake_services import FakeRunner, FakeSender

D = dt.date(2024, 6, 9)
FILES = ("cdn_statistics.csv", "cdn_report.pdf")


class ReadCountingStore(LocalStore):
    """A local reports store that keeps the keys read from it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: list[str] = []

    def read(self, key: str) -> bytes | None:
        self.reads.append(key)
        return super().read(key)


def services_for(tmp_path: Path, reports: Path) -> tuple[Services, ReadCountingStore, FakeSender]:
    settings = load_settings(env={}, warehouse=str(tmp_path / "warehouse"), reports=str(reports))
    store, sender = ReadCountingStore(reports), FakeSender()
    return build_services(settings, runner=FakeRunner(), email_sender=sender, reports=store), store, sender


def test_report_then_email_attach_the_bytes_in_hand_without_reading_them_back(tmp_path: Path) -> None:
    services, store, sender = services_for(tmp_path, tmp_path / "reports")
    result = pipeline.report_and_email(services, D, None, resend=False)
    assert result["email"]["sent"] is True and sender.dates == [D.isoformat()]
    assert not any(key.startswith(f"{D}/") for key in store.reads)  # only the e-mail ledger was read
    on_disk = {name: (tmp_path / "reports" / D.isoformat() / name).read_bytes() for name in FILES}
    assert sender.attachments() == on_disk


def test_an_email_sent_alone_attaches_the_report_in_the_store(tmp_path: Path) -> None:
    services, store, sender = services_for(tmp_path, tmp_path / "reports")
    data = pipeline.report_data_for(services, D, None)
    report = pipeline.build_report(services, data)
    assert set(report["attachments"]) == set(FILES)
    pipeline.send_email(services, data, resend=True)  # no attachments handed over: read from the store
    assert [k for k in store.reads if k.startswith(f"{D}/")] == [f"{D}/{name}" for name in FILES]
    assert sender.attachments() == report["attachments"]


def test_an_email_without_a_report_says_to_run_the_report_first(tmp_path: Path) -> None:
    services, _, sender = services_for(tmp_path, tmp_path / "empty-reports")
    data = pipeline.report_data_for(services, D, None)
    with pytest.raises(FileNotFoundError, match="the report of 2024-06-09 is not in .*run the report stage first"):
        pipeline.send_email(services, data, resend=True)
    assert sender.dates == []


def test_stage_seconds_go_into_the_stored_summary_and_a_missing_one_only_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import json

    reports = tmp_path / "reports"
    services, _, _ = services_for(tmp_path, reports)
    (reports / D.isoformat()).mkdir(parents=True)
    (reports / D.isoformat() / "summary.json").write_text('{"date": "2024-06-09"}\n', encoding="utf-8")
    assert pipeline.record_stage_seconds(services, D, {"check": 1.234, "email": 0.5}, 9.876) is True
    stored = json.loads((reports / D.isoformat() / "summary.json").read_text(encoding="utf-8"))
    assert stored == {"date": "2024-06-09", "stage_seconds": {"check": 1.23, "email": 0.5}, "run_seconds": 9.88}

    other = D - dt.timedelta(days=1)  # no report was written for it: the run is not failed for that
    assert pipeline.record_stage_seconds(services, other, {"check": 1.0}, 1.0) is False
    assert "stage seconds not added to summary.json" in caplog.text and "FileNotFoundError" in caplog.text
    assert not (reports / other.isoformat()).exists()
