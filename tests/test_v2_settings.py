"""The v2 text delimiter setting: validated where it is set, carried to the ingest job."""

from __future__ import annotations

import datetime as dt

import pytest

from cdnlake.settings import ConfigError, load_settings
from spark_jobs import ingest
from spark_jobs.log_fields import field_delimiter
from spark_jobs.params import IngestParams


@pytest.mark.parametrize("bad", ["ab", "-", "%", "x", "7", "\n", ""])
def test_bad_delimiter_names_the_key(bad: str) -> None:
    with pytest.raises(ConfigError, match="CDNLAKE_V2_DELIMITER"):
        load_settings(env={"CDNLAKE_V2_DELIMITER": bad})
    with pytest.raises(ValueError, match="one character"):
        IngestParams(dt.date(2025, 2, 16), "src", "wh", v2_delimiter=bad)


def test_delimiter_reaches_the_job_through_its_command_line() -> None:
    settings = load_settings(env={"CDNLAKE_V2_DELIMITER": "|"})
    params = IngestParams(dt.date(2025, 2, 16), "src", "wh", v2_delimiter=settings.v2_delimiter)
    parsed = ingest.build_parser().parse_args(params.to_argv())
    assert field_delimiter(parsed.v2_delimiter) == "|"
    assert field_delimiter(load_settings(env={}).v2_delimiter) == "\t"  # default: tab
    with pytest.raises(SystemExit):
        ingest.build_parser().parse_args([*params.to_argv()[:-2], "--v2-delimiter", "ab"])
