"""No secrets in the repository: detect-secrets over every git-tracked file.

The scanner is Yelp's detect-secrets (a dev dependency, fully offline): AWS access key ids
(AKIA/ASIA...) and secret keys, Slack tokens (xox?-) and webhook URLs, PEM private keys, keyword
assignments (`password = "..."`, `secret: ...`), basic-auth URLs, GitHub/GitLab/Stripe/... tokens.
The entropy detectors are off (lock-file hashes and sample data would drown the rest), and so are
detect-secrets' inline `pragma: allowlist secret` comments: the only exceptions are the documented
fake values in ALLOWED below, each with its reason.

A second test plants fake secrets of every kind in a temporary file (the strings are assembled at
run time, so this file stays clean) and checks that the same scan finds each of them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PLUGINS = (
    "AWSKeyDetector", "ArtifactoryDetector", "AzureStorageKeyDetector", "BasicAuthDetector", "CloudantDetector",
    "DiscordBotTokenDetector", "GitHubTokenDetector", "GitLabTokenDetector", "IbmCloudIamDetector",
    "IbmCosHmacDetector", "JwtTokenDetector", "KeywordDetector", "MailchimpDetector", "NpmDetector",
    "OpenAIDetector", "PrivateKeyDetector", "PypiTokenDetector", "SendGridDetector", "SlackDetector",
    "SoftlayerDetector", "SquareOAuthDetector", "StripeDetector", "TelegramBotTokenDetector", "TwilioKeyDetector",
)  # fmt: skip
# detect-secrets' default filters minus is_line_allowlisted (no inline exceptions).
FILTERS = (
    "detect_secrets.filters.heuristic.is_sequential_string",
    "detect_secrets.filters.heuristic.is_potential_uuid",
    "detect_secrets.filters.heuristic.is_likely_id_string",
    "detect_secrets.filters.heuristic.is_templated_secret",
    "detect_secrets.filters.heuristic.is_prefixed_with_dollar_sign",
    "detect_secrets.filters.heuristic.is_indirect_reference",
    "detect_secrets.filters.heuristic.is_lock_file",
    "detect_secrets.filters.heuristic.is_not_alphanumeric_string",
    "detect_secrets.filters.heuristic.is_swagger_file",
)

# Documented fake values that may appear in tracked files, as (value, why it is not a secret) pairs:
# in a dict literal the webhook entry would itself read as a keyword assignment to the scanner.
ALLOWED = dict(
    [
        ("AKIAIOSFODNN7EXAMPLE", "the example access key id of AWS's documentation"),
        ("8f742231b10e8888abcd99yyyzzz85a5", "the example signing secret of Slack's request-verification docs"),
        ("https://hooks.slack.com/services/T0/B0/abc", "fake webhook in tests (workspace T0, channel B0)"),
        ("https://hooks.slack.com/services/T0/B0/secretvalue", "fake webhook in tests (workspace T0, channel B0)"),
        ("testing", "moto's fake AWS credentials in tests"),
        ("pw", "a Referer URL with user:pw@ in a parsing test (host cdn.test)"),
        ("cdnlake-secrets", "the name of the Kubernetes Secret the settings come from (k8s/), not a value"),
    ]
)


@dataclass(frozen=True, repr=False)
class Finding:
    path: str
    line: int
    kind: str
    value: str

    def __str__(self) -> str:  # never print the value itself: it may be a real secret
        return f"{self.path}:{self.line}: {self.kind} ({len(self.value)} characters)"

    __repr__ = __str__


@contextmanager
def _settings() -> Iterator[None]:
    from detect_secrets.settings import transient_settings

    config = {"plugins_used": [{"name": name} for name in PLUGINS],
              "filters_used": [{"path": path} for path in FILTERS]}  # fmt: skip
    with transient_settings(config):
        yield


def scan(root: Path, paths: list[str]) -> list[Finding]:
    """Every potential secret detect-secrets finds in `paths` (relative to `root`), allowed or not."""
    from detect_secrets import SecretsCollection

    with _settings():
        collection = SecretsCollection(root=str(root))
        collection.scan_files(*paths, num_processors=1)
        found = [Finding(path, int(s.line_number), s.type, str(s.secret_value)) for path, s in collection]
    return sorted(found, key=lambda f: (f.path, f.line, f.kind))


def tracked_files() -> list[str]:
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [name for name in listing.decode("utf-8").split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def repo_findings() -> list[Finding]:
    files = tracked_files()
    assert len(files) > 50 and "cdnlake/settings.py" in files  # really the repository, not an empty listing
    return scan(ROOT, files)


def assert_no_secrets(findings: list[Finding]) -> None:
    unexpected = [f for f in findings if f.value not in ALLOWED]
    if unexpected:  # an explicit raise: pytest's assertion rewriting would print the values
        raise AssertionError("possible secrets in git-tracked files (remove them, or add a documented fake value "
                             "to ALLOWED):\n" + "\n".join(map(str, unexpected)))  # fmt: skip


def test_no_secrets_in_tracked_files(repo_findings: list[Finding]) -> None:
    assert_no_secrets(repo_findings)


def test_allowlist_has_no_stale_entries(repo_findings: list[Finding]) -> None:
    """Every exception is still needed: the allowlist stays small and every entry is a real case."""
    assert set(ALLOWED) - {f.value for f in repo_findings} == set()


def _planted() -> dict[str, tuple[str, str]]:
    """Fake secrets of each kind the issue names, assembled at run time: (line, detector type)."""
    key_id = "AK" + "IA" + "Q3EGHJ7KL2MN4PRS"  # 16 upper-case letters/digits after the prefix
    session_key_id = "AS" + "IA" + "Z7X2C4V6B8N1M3Q5"
    access_key = "".join(["Zq9", "x" * 3, "Lm4Rt7Yp2Wn5Bv8Hc1Jd6Kf3Sg0Ta/Ue+X"])  # 40 characters
    assert len(access_key) == 40
    slack_token = "xo" + "xb-" + "1234567890-0987654321-" + "aBcDeFgHiJkLmNoPqRsTuVwX".lower()
    webhook = "https://hooks." + "slack.com/services/" + "T0123ABCD/B0456EFGH/" + "q8w7e6r5t4y3u2i1o0p9a8s7"
    pem = "-----BEGIN " + "RSA PRIVATE KEY-----"
    phrase = "".join(["Tr0ub4dor", "-horse-battery"])
    return {
        "access key id": (f'aws_access_key_id = "{key_id}"', "AWS Access Key"),
        "session key id": (f"key={session_key_id}", "AWS Access Key"),
        "secret access key": (f'aws_secret_access_key = "{access_key}"', "AWS Access Key"),
        "slack token": (f'token = "{slack_token}"', "Slack Token"),
        "slack webhook": (f'webhook = "{webhook}"', "Slack Token"),
        "private key": (pem, "Private Key"),
        "password": (f'db_password = "{phrase}"', "Secret Keyword"),
        "secret": (f'client_secret = "{phrase[::-1]}"', "Secret Keyword"),
    }


@pytest.mark.parametrize("name", sorted(_planted()))
def test_scanner_finds_a_planted_secret(tmp_path: Path, name: str) -> None:
    line, kind = _planted()[name]
    (tmp_path / "config.py").write_text(f"# settings\n{line}\n", encoding="utf-8")
    findings = scan(tmp_path, ["config.py"])
    assert [(f.line, f.kind) for f in findings if f.kind == kind] == [(2, kind)], findings
    assert all(f.value not in ALLOWED for f in findings)


def test_a_planted_secret_among_tracked_files_fails_the_check(tmp_path: Path) -> None:
    """The repository check itself turns red: the planted file is scanned with the same rules."""
    line, _ = _planted()["access key id"]
    (tmp_path / "deploy.sh").write_text(f"export {line.replace(' ', '')}\n", encoding="utf-8")
    (tmp_path / "README.md").write_text("AKIAIOSFODNN7EXAMPLE is AWS's example key\n", encoding="utf-8")
    findings = scan(tmp_path, ["deploy.sh", "README.md"])
    assert {f.path for f in findings} == {"deploy.sh", "README.md"}
    with pytest.raises(AssertionError) as failure:
        assert_no_secrets(findings)
    message = str(failure.value)
    assert "deploy.sh:1: AWS Access Key (20 characters)" in message and "README.md" not in message
    assert "AKIA" not in message  # the report names the place, never the value
