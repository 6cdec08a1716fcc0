"""Settings reach a flow from the run's environment or the command line, never as a parameter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cdnlake import cli
from cdnlake.run_settings import current_settings, use_settings
from cdnlake.settings import ConfigError, load_settings


def test_a_deployed_run_reads_and_validates_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDNLAKE_REPORTS", "s3://ops-reports/cdn")
    assert current_settings().reports == "s3://ops-reports/cdn"
    monkeypatch.setenv("CDNLAKE_ANONYMIZE_IP", "off")
    with pytest.raises(ConfigError, match="CDNLAKE_ANONYMIZE_IP"):
        current_settings()


def test_use_settings_wins_for_the_block_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CDNLAKE_REPORTS", str(tmp_path / "from-env"))
    outer, inner = load_settings(env={}, reports="/r/outer"), load_settings(env={}, reports="/r/inner")
    with use_settings(outer):
        with use_settings(inner):
            assert current_settings().reports == "/r/inner"
        assert current_settings().reports == "/r/outer"
    assert current_settings().reports == str(tmp_path / "from-env")


def test_cli_locations_reach_the_flow_without_a_parameter(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from flows import daily

    seen: dict[str, Any] = {}

    def fake_daily(**parameters: Any) -> dict[str, Any]:
        settings = current_settings()
        seen.update(parameters=parameters, source=settings.source, warehouse=settings.warehouse,
                    reports=settings.reports)  # fmt: skip
        return {"ok": True}

    monkeypatch.setattr(daily, "cdn_daily", fake_daily)
    argv = ["run", "--date", "2024-06-09", "--source", str(tmp_path / "src"), "--warehouse", "s3://wh/lake",
            "--reports", str(tmp_path / "rep")]  # fmt: skip
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True}
    assert set(seen["parameters"]) == {"date", "distributions", "resend_email"}  # no settings among them
    assert (seen["source"], seen["warehouse"], seen["reports"]) == (str(tmp_path / "src"), "s3://wh/lake",
                                                                    str(tmp_path / "rep"))  # fmt: skip
