"""Typed job parameters: the same values whether a job runs in process or from a command line."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import json

import pytest

from spark_jobs.params import (
    JOBS,
    PARAMS,
    AggregateParams,
    CompactParams,
    IngestParams,
    ListedFile,
    MissesParams,
    ReconcileParams,
    files_from_json,
    files_to_json,
)

D = dt.date(2024, 6, 9)
EXAMPLES = [
    IngestParams(D, "s3://logs/cf", "s3://wh/warehouse", ("e1abc", "e2def"), run_id="r1", anonymize_ip="hash",
                 keep_cookies=True),  # fmt: skip
    IngestParams(D, "./data/landing", "./data/warehouse"),
    IngestParams(D, "s3://logs/cf", "s3://wh/w", files_from="s3://wh/w/_cdnlake_file_lists/2024-06-09-ab.json"),
    IngestParams(D, "./landing", "./wh", dates=(D - dt.timedelta(days=2), D - dt.timedelta(days=1))),
    CompactParams(D, "./wh", None, vacuum=True, max_files=3),
    AggregateParams(D, "./wh", ("e1abc",), "Asia/Tokyo", (D - dt.timedelta(days=1), D - dt.timedelta(days=2))),
    ReconcileParams(D, "./wh", ("e1abc",)),
    MissesParams(D - dt.timedelta(days=6), D, "./wh", None, 0.5, 0.01, 0.2, True, 7),
]


@pytest.mark.parametrize("params", EXAMPLES, ids=lambda p: p.job)
def test_argv_round_trip_through_the_jobs_own_parser(params: object) -> None:
    module = importlib.import_module(f"spark_jobs.{params.job}")  # type: ignore[attr-defined]
    parsed = module.build_parser().parse_args(params.to_argv())  # type: ignore[attr-defined]
    assert type(params).from_namespace(parsed) == params  # type: ignore[attr-defined]


@pytest.mark.parametrize("job", JOBS)
def test_defaults_agree_with_the_jobs_parser(job: str) -> None:
    """A job started by spark-submit without a flag behaves as one given the dataclass default."""
    parser = importlib.import_module(f"spark_jobs.{job}").build_parser()
    checked = 0
    for f in dataclasses.fields(PARAMS[job]):
        if f.default is dataclasses.MISSING:
            continue
        from_parser = parser.get_default(f.name)
        from_parser = tuple(from_parser) if isinstance(from_parser, list) else from_parser
        assert (from_parser, f.name) == (f.default, f.name) or (from_parser is None and f.default == ())
        checked += 1
    assert checked >= 1


def test_an_ingest_of_several_dates() -> None:
    earlier = (D - dt.timedelta(days=1), D - dt.timedelta(days=2))
    params = IngestParams(D, "./landing", "./wh", dates=list(earlier))  # type: ignore[arg-type]
    assert params.dates == earlier  # a list becomes a tuple
    assert params.all_dates == [D - dt.timedelta(days=2), D - dt.timedelta(days=1), D]
    assert params.to_argv()[-2:] == ["--dates", "2024-06-08,2024-06-07"]
    assert IngestParams(D, "./landing", "./wh", dates=(D,)).all_dates == [D]


def test_argv_of_hand_built_ingest() -> None:
    argv = IngestParams(D, "s3://logs/cf", "s3://wh/w", ("e1abc",), keep_cookies=True).to_argv()
    assert argv == ["--date", "2024-06-09", "--source", "s3://logs/cf", "--warehouse", "s3://wh/w",
                    "--distributions", "e1abc", "--anonymize-ip", "truncate", "--keep-cookies",
                    "--v2-delimiter", "tab"]  # fmt: skip


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: IngestParams(D, "s3://x/'; DROP", "w"), "source: not an acceptable location"),
        (lambda: CompactParams(D, "../../etc"), "warehouse: not an acceptable location"),
        (lambda: ReconcileParams(D, "w", ("E1-bad",)), "not a CloudFront distribution id"),
        (lambda: AggregateParams(D, "w", None, "Mars/Olympus'"), "not an IANA time zone"),
        (lambda: IngestParams(D, "s", "w", anonymize_ip="rot13"), "anonymize_ip"),
        (lambda: MissesParams(D, D - dt.timedelta(days=1), "w"), "before start"),
        (lambda: MissesParams(D, D, "w", sample_fraction=1.5), "sample_fraction must be in"),
    ],
)
def test_bad_values_are_refused_where_the_parameters_are_built(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_lists_become_tuples_so_parameters_stay_hashable() -> None:
    params = AggregateParams(D, "w", ["e1abc"], "UTC", [D])  # type: ignore[arg-type]
    assert params.distributions == ("e1abc",) and params.dates == (D,)
    assert hash(params)


# ---------------------------------------------------------------- the ingest's file list
def test_a_file_list_travels_as_a_document_never_on_the_command_line() -> None:
    listed = (ListedFile("/land/E1ABC.2024-06-09-00.a.gz", 10, 1717891200000),
              ListedFile("s3://logs/cf/E1ABC.2024-06-09-01.b.gz", 20, 1717894800123))  # fmt: skip
    document = files_to_json(listed)
    assert json.loads(document) == [{"uri": "/land/E1ABC.2024-06-09-00.a.gz", "size": 10, "modified_ms": 1717891200000},
                                    {"uri": "s3://logs/cf/E1ABC.2024-06-09-01.b.gz", "size": 20,
                                     "modified_ms": 1717894800123}]  # fmt: skip
    assert files_from_json(document) == listed
    with pytest.raises(ValueError, match="--files-from"):
        IngestParams(D, "s", "w", files=listed).to_argv()
    by_document = IngestParams(D, "s", "w", files_from="s3://wh/w/_cdnlake_file_lists/x.json")
    assert by_document.to_argv()[-2:] == ["--files-from", "s3://wh/w/_cdnlake_file_lists/x.json"]
    assert IngestParams(D, "s", "w", files=[listed[0]]).files == (listed[0],)  # a list becomes a tuple


@pytest.mark.parametrize(
    ("document", "message"),
    [(b"{not json", "not a file list"), (b'[{"uri": "x"}]', "not a file list"), (b'[{"uri": "x", "size": "big", '
      b'"modified_ms": 1}]', "not a file list"), (b"[1]", "not a file list")],  # fmt: skip
)
def test_a_broken_file_list_is_refused(document: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        files_from_json(document)


def test_a_file_list_is_given_one_way_and_to_an_acceptable_location() -> None:
    one = (ListedFile("/x/E1.2024-06-09-00.a.gz", 1, 1),)
    with pytest.raises(ValueError, match="one way"):
        IngestParams(D, "s", "w", files=one, files_from="/tmp/list.json")
    with pytest.raises(ValueError, match="files_from: not an acceptable location"):
        IngestParams(D, "s", "w", files_from="http://evil/list.json")
