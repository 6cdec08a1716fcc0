"""The run's services: built once from the settings, handed to the flow in-process (no JVM here)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from cdnlake.report_data import Warehouse
from cdnlake.run_settings import current_settings
from cdnlake.runners.local import InProcessRunner
from cdnlake.services import SourceLister, build_services, current_services, use_services
from cdnlake.settings import load_settings
from cdnlake.storage import LocalStore, S3Store
from reporting.delivery import OutboxSender, SesSender
from tests.fake_services import FakeRunner, Recorder


def test_the_real_services_follow_the_settings(tmp_path: Path) -> None:
    local = load_settings(env={}, source=str(tmp_path / "landing"), reports=str(tmp_path / "reports"),
                          outbox=str(tmp_path / "outbox"), spark_master="local[3]", spark_driver_memory="2g",
                          anonymize_ip="hash", ip_hash_key="k-123")  # fmt: skip
    services = build_services(local)
    runner = services.runner
    assert isinstance(runner, InProcessRunner) and runner._spark is None  # built, not started
    assert (runner.master, runner.conf["spark.driver.memory"], runner.ip_hash_key) == ("local[3]", "2g", "k-123")
    assert isinstance(services.email_sender, OutboxSender) and services.email_sender.outbox_dir == tmp_path / "outbox"
    assert isinstance(services.reports, LocalStore) and services.reports.uri("x") == str(tmp_path / "reports" / "x")
    assert services.warehouse == Warehouse(local.warehouse, {})
    assert services.source == SourceLister(str(tmp_path / "landing"), None)

    remote = load_settings(env={}, source="s3://raw/cf", reports="s3://out/reports", warehouse="s3a://wh/lake",
                           s3_endpoint="http://127.0.0.1:9", ses_enabled=True)  # fmt: skip
    services = build_services(remote)
    assert isinstance(services.email_sender, SesSender)
    assert isinstance(services.reports, S3Store) and services.reports.uri("x") == "s3://out/reports/x"
    assert services.warehouse.options["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"
    assert services.source.s3_client is not None
    assert services.source.s3_client.meta.endpoint_url == "http://127.0.0.1:9"


def test_given_services_are_used_as_they_are(tmp_path: Path) -> None:
    runner, notifier = FakeRunner(), Recorder()
    services = build_services(load_settings(env={}), runner=runner, notifier=notifier)
    assert services.runner is runner and services.notifier is notifier
    tokyo = dt.timezone(dt.timedelta(hours=9))
    swapped = dataclasses.replace(services, clock=lambda: dt.datetime(2024, 6, 9, 23, 30, tzinfo=tokyo))
    assert swapped.now() == dt.datetime(2024, 6, 9, 14, 30)  # naive UTC
    assert swapped.runner is runner and services.clock is not swapped.clock


def test_the_innermost_services_and_their_settings_win_for_the_block(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv("CDNLAKE_REPORTS", str(tmp_path / "from-env"))
    outer = build_services(load_settings(env={}, reports="/r/outer"), runner=FakeRunner())
    inner = build_services(load_settings(env={}, reports="/r/inner"), runner=FakeRunner())
    with use_services(outer):
        with use_services(inner):
            assert current_services() is inner and current_settings().reports == "/r/inner"
        assert current_services() is outer and current_settings().reports == "/r/outer"
    built = current_services()  # none installed: the environment's settings, services built from them
    assert built.settings.reports == str(tmp_path / "from-env") and built is not outer


def test_the_source_lister_lists_the_dates_asked_for(tmp_path: Path) -> None:
    from cdnlake.demo import generate_days

    days = [dt.date(2024, 6, 8), dt.date(2024, 6, 9)]
    generated = generate_days(tmp_path, days, 2, [24, 24], seed=2, files_per_hour=1)
    lister = SourceLister(str(tmp_path))
    both = lister.list(days)
    assert sorted(f.uri for f in both) == sorted(str(p) for d in days for p in generated[d].files)
    one = generated[days[1]].distribution_ids[0].lower()
    only = lister.list([days[1]], [one])
    mine = [str(p) for p in generated[days[1]].files if p.name.lower().startswith(one + ".")]
    assert {(f.date, f.distro) for f in only} == {(days[1].isoformat(), one)}
    assert sorted(f.uri for f in only) == sorted(mine) and mine
