"""`make audit`: pip-audit over the exact locked dependency set, with figures an operator can read.

Usage: audit.py REQUIREMENTS [--ignore-vuln ID ...] [--allow-unaudited] [--report FILE]

REQUIREMENTS is `uv export --frozen` of uv.lock (hashed, every package pinned), so what is audited
is what `make install` installs, not whatever happens to be in the venv. pip-audit asks PyPI's
vulnerability feed about each pinned version. Exit codes:

- 0: every package audited, no known vulnerability (apart from the --ignore-vuln IDs);
- 1: known vulnerabilities (each listed with its fix versions);
- 2: no vulnerability found, but some packages could not be audited (the feed did not answer
  for them). With --allow-unaudited this is a loud warning and exit 0: a machine whose network
  does not reach the feed cannot prove anything either way, and says so.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_VULNERABLE, EXIT_UNAUDITED = 0, 1, 2


@dataclass
class AuditResult:
    packages: int = 0
    audited: int = 0
    unaudited: list[str] = field(default_factory=list)  # "name (version): reason"
    vulnerabilities: list[str] = field(default_factory=list)  # "name version ID (aliases) fixed in ..."

    def summary(self, ignored: list[str]) -> str:
        ignored_text = f", {len(ignored)} ignored by ID ({', '.join(ignored)})" if ignored else ""
        return (f"dependency audit: {self.packages} locked packages, {self.audited} audited, "
                f"{len(self.unaudited)} could not be audited, {len(self.vulnerabilities)} known "
                f"vulnerabilities{ignored_text}")  # fmt: skip


def parse_report(report: dict[str, Any]) -> AuditResult:
    """pip-audit's JSON (`-f json`) -> figures; a dependency with `skip_reason` was not audited."""
    result = AuditResult()
    for dep in report.get("dependencies", []):
        result.packages += 1
        if dep.get("skip_reason"):
            result.unaudited.append(f"{dep['name']}: {dep['skip_reason']}")
            continue
        result.audited += 1
        for vuln in dep.get("vulns", []):
            aliases = f" ({', '.join(vuln['aliases'])})" if vuln.get("aliases") else ""
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed version"
            line = f"{dep['name']} {dep.get('version')}: {vuln['id']}{aliases}, fixed in {fixed}"
            result.vulnerabilities.append(line)
    return result


def decide(result: AuditResult, allow_unaudited: bool) -> int:
    if result.vulnerabilities:
        return EXIT_VULNERABLE
    if result.unaudited and not allow_unaudited:
        return EXIT_UNAUDITED
    return EXIT_OK


def run_pip_audit(requirements: Path, report: Path, ignore: list[str]) -> dict[str, Any]:
    command = [str(Path(sys.executable).with_name("pip-audit")), "-r", str(requirements), "--require-hashes",
               "--disable-pip", "--progress-spinner", "off", "-f", "json", "-o", str(report)]  # fmt: skip
    for vuln_id in ignore:
        command += ["--ignore-vuln", vuln_id]
    # Not --strict: it stops at the first package it cannot audit; the report lists them all instead.
    # Exit 1 only means "vulnerabilities found", which parse_report() sees in the report too.
    report.unlink(missing_ok=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if report.is_file():
        return json.loads(report.read_text(encoding="utf-8"))
    if "Could not connect to" in done.stderr:  # no route to the feed at all: nothing could be audited
        names = [line.split("==")[0] for line in requirements.read_text(encoding="utf-8").splitlines()
                 if "==" in line and not line.startswith((" ", "#"))]  # fmt: skip
        reason = "the vulnerability feed could not be reached"
        return {"dependencies": [{"name": name, "skip_reason": reason} for name in names]}
    sys.stderr.write(done.stdout + done.stderr)  # a bad requirements file or another pip-audit failure
    raise SystemExit(f"pip-audit failed (exit {done.returncode}) before writing {report}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requirements", type=Path)
    parser.add_argument("--ignore-vuln", action="append", default=[], metavar="ID")
    parser.add_argument("--allow-unaudited", action="store_true")
    parser.add_argument("--report", type=Path, help="pip-audit's JSON report (default: beside REQUIREMENTS)")
    args = parser.parse_args(argv)
    report = args.report or args.requirements.with_name("pip-audit.json")
    result = parse_report(run_pip_audit(args.requirements, report, args.ignore_vuln))
    for line in result.vulnerabilities:
        print(f"VULNERABLE {line}")
    if result.unaudited:
        shown = result.unaudited[:5] + ([f"... and {len(result.unaudited) - 5} more"] if len(result.unaudited) > 5
                                        else [])  # fmt: skip
        for line in shown:
            print(f"NOT AUDITED {line}")
    print(result.summary(args.ignore_vuln))
    status = decide(result, args.allow_unaudited)
    if result.unaudited and status == EXIT_OK:
        print(
            f"WARNING: the audit is incomplete: {len(result.unaudited)} of {result.packages} packages could "
            "not be checked (PyPI's vulnerability feed did not answer for them); see README 'Dependency audit'"
        )
    print(f"full report: {report}")
    return status


if __name__ == "__main__":
    sys.exit(main())
