"""Settings precedence, validation naming the key, masking, and CLI argument checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdnlake import cli
from cdnlake.settings import ConfigError, load_settings


def test_defaults_match_spec() -> None:
    s = load_settings(env={})
    assert (s.source, s.warehouse, s.reports, s.outbox) == (
        "./data/landing", "./data/warehouse", "./data/reports", "./data/outbox",
    )  # fmt: skip
    assert s.spark_master == "local[*]" and s.report_tz == "UTC" and not s.ses_enabled


def test_env_overrides_file_and_overrides_win(tmp_path: Path) -> None:
    config = tmp_path / "cdnlake.toml"
    config.write_text(
        '[cdnlake]\nwarehouse = "/from/file"\nreports = "/file/reports"\nemail_to = ["a@x.jp"]\n'
    )
    env = {
        "CDNLAKE_CONFIG": str(config),
        "CDNLAKE_WAREHOUSE": "s3://bucket/wh",
        "CDNLAKE_REPORT_TZ": "Asia/Tokyo",
    }
    s = load_settings(env=env, reports="/cli/reports")
    assert s.warehouse == "s3://bucket/wh" and s.reports == "/cli/reports"
    assert s.email_to == ("a@x.jp",) and s.report_tz == "Asia/Tokyo"


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"CDNLAKE_REPORT_TZ": "Mars/Olympus"}, "CDNLAKE_REPORT_TZ"),
        ({"CDNLAKE_REPORT_TZ": "Asia/Kolkata"}, "CDNLAKE_REPORT_TZ"),
        ({"CDNLAKE_SES_ENABLED": "maybe"}, "CDNLAKE_SES_ENABLED"),
        ({"CDNLAKE_WAREHOUSE": "../../etc"}, "CDNLAKE_WAREHOUSE"),
        ({"CDNLAKE_SOURCE": "ftp://host/x"}, "CDNLAKE_SOURCE"),
        ({"CDNLAKE_DISTRIBUTIONS": "E123,../x"}, "CDNLAKE_DISTRIBUTIONS"),
        ({"CDNLAKE_SPARK_RUNNER": "yarn"}, "CDNLAKE_SPARK_RUNNER"),
        ({"CDNLAKE_CONFIG": "/nonexistent.toml"}, "CDNLAKE_CONFIG"),
        ({"CDNLAKE_SPARK_CONF": "spark.sql.shuffle.partitions"}, "CDNLAKE_SPARK_CONF"),
        ({"CDNLAKE_SPARK_CONF": "fs.s3a.endpoint=x"}, "CDNLAKE_SPARK_CONF"),
        ({"CDNLAKE_S3_ENDPOINT": "minio:9000"}, "CDNLAKE_S3_ENDPOINT"),
    ],
)
def test_bad_settings_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_settings(env=env)


def test_spark_conf_and_s3_endpoint_reach_every_runner() -> None:
    from cdnlake.runners.kubernetes import AppConfig, spark_conf
    from cdnlake.runners.local import InProcessRunner, build_runner

    env = {"CDNLAKE_S3_ENDPOINT": "http://127.0.0.1:9000", "CDNLAKE_SPARK_RUNNER": "standalone",
           "CDNLAKE_SPARK_MASTER": "spark://127.0.0.1:7999",
           "CDNLAKE_SPARK_CONF": "spark.sql.shuffle.partitions=400; spark.executor.memoryOverhead = 1g"}  # fmt: skip
    s = load_settings(env=env)
    expected = {
        "spark.hadoop.fs.s3a.endpoint": "http://127.0.0.1:9000",
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
        "spark.sql.shuffle.partitions": "400",
        "spark.executor.memoryOverhead": "1g",
    }
    assert s.spark_conf_pairs() == expected
    runner = build_runner(s)
    assert isinstance(runner, InProcessRunner) and expected.items() <= runner.conf.items()
    assert expected.items() <= spark_conf(AppConfig(extra_conf=s.spark_conf_pairs())).items()


def test_unknown_key_in_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('warehous = "/typo"\n')
    with pytest.raises(ConfigError, match="warehous"):
        load_settings(env={"CDNLAKE_CONFIG": str(config)})


def test_config_command_masks_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CDNLAKE_SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/secretvalue")
    assert cli.main(["config"]) == 0
    out = capsys.readouterr().out
    assert "secretvalue" not in out
    assert json.loads(out)["slack_webhook_url"] == "***set***"


@pytest.mark.parametrize(
    "argv",
    [
        ["ingest", "--date", "2024-13-01"],
        ["ingest", "--date", "2024-05-01", "--distributions", "E1;DROP TABLE"],
        ["ingest", "--date", "2024-05-01", "--warehouse", "/tmp/../etc"],
        ["run", "--date", "2024-05-01", "--source", "/tmp/x'; rm -rf /"],
    ],
)
def test_cli_rejects_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_config_error_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CDNLAKE_REPORT_TZ", "Nowhere/Town")
    assert cli.main(["config"]) == 2
    assert "configuration error: CDNLAKE_REPORT_TZ" in capsys.readouterr().err


def test_java_check_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from spark_jobs import session

    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(session.JavaNotFoundError, match="Java 17"):
        session.check_java()
    fake = tmp_path / "bin" / "java"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    fake.chmod(0o755)
    with pytest.raises(session.JavaNotFoundError, match="Java 11 found"):
        session.check_java()


def test_column_count_check_flags_a_format_change_not_a_stray_line(tmp_path: Path) -> None:
    import gzip

    from cdnlake.sources import column_count_problems

    header = "#Version: 1.0\n#Fields: " + " ".join(f"f{i}" for i in range(33)) + "\n"
    good, short = "\t".join(["x"] * 33), "\t".join(["x"] * 19)
    stray = tmp_path / "E1.2024-05-01-07.a.gz"
    stray.write_bytes(gzip.compress((header + "\n".join([good] * 8 + [short] + [good] * 3) + "\n").encode()))
    assert column_count_problems(str(stray)) == []  # one bad line in 12: a reject, not a stop
    changed = tmp_path / "E1.2024-05-01-08.b.gz"
    changed.write_bytes(gzip.compress((header + "\n".join([short] * 6 + [good] * 2) + "\n").encode()))
    assert column_count_problems(str(changed)) == [
        f"{changed}: 6 of the first 8 lines do not fit the header (line 3: 19 fields, header declares 33)"
    ]
    wide = tmp_path / "E1.2024-05-01-09.c.gz"
    wide.write_bytes(gzip.compress(("#Fields: " + " ".join(["f"] * 40) + "\n" + good + "\n").encode()))
    assert column_count_problems(str(wide))[0] == f"{wide}: header declares 40 fields (expected 18-33)"
