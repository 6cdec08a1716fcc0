"""Viewer countries in the report: shown where rows carry c-country (standard logging v2), else absent."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io

import pandas as pd
from pypdf import PdfReader

from cdnlake.report_data import _viewers
from reporting.pdf import build_pdf
from reporting.sample import report_data_from_totals

D = dt.date(2024, 6, 9)
TOTALS = {d: {"request_count": 1000, "hit_count": 900} for d in ("2024-06-07", "2024-06-08", "2024-06-09")}


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_country_section_with_requests_share_and_gb() -> None:
    countries = pd.DataFrame({"country": ["JP", "TW", "HK"], "requests": [600, 250, 50],
                              "bytes": [3 * 2**30, 2**30, 2**29]})  # fmt: skip
    data = dataclasses.replace(report_data_from_totals(D, TOTALS), countries=countries)
    text = _text(build_pdf(data))
    assert "国・地域" in text
    section = text.split("Viewer countries", 1)[1]
    # Rank, country, requests, share of day D's 1,000 requests, GB (2^30 bytes).
    assert "1\nJP\n600\n60.0%\n3.00" in section and "3\nHK\n50\n5.0%\n0.50" in section


def test_no_country_section_for_a_legacy_only_day() -> None:
    assert "Viewer countries" not in _text(build_pdf(report_data_from_totals(D, TOTALS)))


def test_countries_read_from_stats_viewers_rows() -> None:
    rows = pd.DataFrame({"dimension": ["country", "os", "country"], "value": ["TW", "iOS", "JP"],
                         "rank": [2, 1, 1], "requests": [5, 9, 7], "bytes": [50, 90, 70]})  # fmt: skip
    assert _viewers(rows, "country", "bytes").to_dict("list") == {
        "country": ["JP", "TW"], "requests": [7, 5], "bytes": [70, 50]}
    # A stats_viewers table written before the bytes column existed: no country list, no error.
    assert _viewers(rows.drop(columns="bytes"), "country", "bytes").empty
