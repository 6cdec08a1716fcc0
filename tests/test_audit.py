"""`make audit` (.ci/audit.py): pip-audit's report -> figures and an exit code; wired into CI.

The real audit needs PyPI's vulnerability feed; these tests feed the script pip-audit reports
instead, so they show that a known vulnerability fails the audit and an unaudited package is
never counted as clean.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ci_audit", ROOT / ".ci" / "audit.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


audit = _load()

VULNERABLE = {
    "name": "jinja2",
    "version": "2.10",
    "vulns": [{"id": "PYSEC-2019-217", "fix_versions": ["2.10.1"], "aliases": ["CVE-2019-10906"], "description": ""}],
}
CLEAN = {"name": "six", "version": "1.17.0", "vulns": []}
SKIPPED = {"name": "tqdm", "skip_reason": "Dependency not found on PyPI and could not be audited: tqdm (4.70.1)"}


def test_a_known_vulnerability_fails_the_audit() -> None:
    result = audit.parse_report({"dependencies": [VULNERABLE, CLEAN], "fixes": []})
    assert (result.packages, result.audited, result.unaudited) == (2, 2, [])
    assert result.vulnerabilities == ["jinja2 2.10: PYSEC-2019-217 (CVE-2019-10906), fixed in 2.10.1"]
    assert audit.decide(result, allow_unaudited=True) == audit.EXIT_VULNERABLE
    assert result.summary([]) == (
        "dependency audit: 2 locked packages, 2 audited, 0 could not be audited, 1 known vulnerabilities"
    )


def test_an_unaudited_package_is_not_clean() -> None:
    result = audit.parse_report({"dependencies": [CLEAN, SKIPPED]})
    assert (result.audited, len(result.unaudited), result.vulnerabilities) == (1, 1, [])
    assert audit.decide(result, allow_unaudited=False) == audit.EXIT_UNAUDITED
    assert audit.decide(result, allow_unaudited=True) == audit.EXIT_OK  # CI: a warning, see README
    assert audit.decide(audit.parse_report({"dependencies": [CLEAN]}), allow_unaudited=False) == audit.EXIT_OK


def test_main_prints_figures_and_passes_ignores_to_pip_audit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    def fake_pip_audit(requirements: Path, report: Path, ignore: list[str]) -> dict[str, Any]:
        seen.update(requirements=requirements, report=report, ignore=ignore)
        return {"dependencies": [CLEAN, SKIPPED]}

    monkeypatch.setattr(audit, "run_pip_audit", fake_pip_audit)
    requirements = tmp_path / "requirements.txt"
    status = audit.main([str(requirements), "--ignore-vuln", "GHSA-xxxx-yyyy-zzzz", "--allow-unaudited"])
    out = capsys.readouterr().out
    assert status == 0 and seen["ignore"] == ["GHSA-xxxx-yyyy-zzzz"]
    assert seen["report"] == tmp_path / "pip-audit.json"
    assert "NOT AUDITED tqdm: Dependency not found on PyPI" in out
    assert "2 locked packages, 1 audited, 1 could not be audited, 0 known vulnerabilities, 1 ignored by ID" in out
    assert "WARNING: the audit is incomplete: 1 of 2 packages" in out
    assert audit.main([str(requirements)]) == audit.EXIT_UNAUDITED


def test_make_audit_checks_the_lock_and_ci_runs_it_before_the_tests() -> None:
    dry = subprocess.run(["make", "-n", "audit"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert re.search(r"uv export --frozen .*-o build/requirements\.txt", dry)
    assert ".ci/audit.py build/requirements.txt" in dry
    steps = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    audit_step = next(i for i, s in enumerate(steps) if s.startswith("make audit"))
    assert audit_step < steps.index("make test")
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"pip-audit>=' in pyproject and '"detect-secrets>=' in pyproject
