"""The PDF report: text content (pypdf), a rendered page 1 (pdftoppm) and the font fallback."""

import dataclasses
import datetime as dt
import io
import os
import shutil
import subprocess
import warnings

import pytest
from pypdf import PdfReader

from reporting import fonts
from reporting.pdf import build_pdf
from reporting.sample import report_data_from_totals, sample_report_data

D = dt.date(2024, 6, 9)
GIB = 2**30
TOTALS = {
    "2024-06-07": {"request_count": 250_000_000, "hit_count": 200_000_000, "http4xx_count": 1800},
    "2024-06-08": {
        "request_count": 258_920_000,
        "hit_count": 230_000_000,
        "error_count": 90_260,
        "http4xx_count": 1807,
        "bytes_requested": round(209360.64 * GIB),
    },
    "2024-06-09": {
        "request_count": 304_250_000,
        "hit_count": 270_000_000,
        "error_count": 113_340,
        "http4xx_count": 1862,
        "bytes_requested": round(251622.38 * GIB),
    },
}
PEAK_BYTES = int(298.96 * GIB)  # at 13:37 = minute 817


@pytest.fixture(scope="module")
def pdf_bytes() -> bytes:
    data = report_data_from_totals(D, TOTALS, minute_bytes={817: PEAK_BYTES, 818: PEAK_BYTES // 2})
    return build_pdf(data)


@pytest.fixture(scope="module")
def pdf_text(pdf_bytes: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf_bytes))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_is_a4_with_several_pages(pdf_bytes):
    reader = PdfReader(io.BytesIO(pdf_bytes))
    assert len(reader.pages) >= 3
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)


def test_cjk_font_is_embedded(pdf_bytes):
    if fonts.resolve_fonts().path is None:
        pytest.skip("no embeddable CJK font installed (fonts-ipaexfont-gothic)")
    assert b"/FontFile2" in pdf_bytes  # an embedded TrueType subset, not a viewer-supplied CID font


def test_title_dates_distributions_and_peak(pdf_text):
    assert "CDN キャッシュ統計レポート" in pdf_text
    assert "2024-06-07 00:00" in pdf_text and "2024-06-09 23:59" in pdf_text
    assert "e1abcd2efgh3ij" in pdf_text
    assert "298.96 GB (39.86Gbps) at 13:37" in pdf_text


def test_insights_and_figures(pdf_text):
    for expected in (
        "JUN-07",
        "JUN-08",
        "JUN-09",
        "Request Count (M)",
        "258.92",
        "304.25",
        "+17.51%",
        "+25.57%",
        "+3.04%",
        "1807.00",
        "209360.64",
        "251622.38",
        "+20.19%",
        "304,250,000",
    ):  # day D requests with thousands separators
        assert expected in pdf_text, expected


def test_sections_and_footer(pdf_text):
    for expected in (
        "Top objects",
        "Top referrers",
        "Edge locations",
        "Viewers",
        "Data quality",
        "人気オブジェクト",
        "/動画/予告編/特報_第2弾_1080p.mp4",
        "Page 1 / ",
        "generated 2024-06-10 00:30",
    ):
        assert expected in pdf_text, expected


def _gray_pixels(pdf: bytes, tmp_path) -> tuple[int, int, bytes]:
    """Render page 1 as a binary PGM (P5) and return width, height, pixels."""
    (tmp_path / "r.pdf").write_bytes(pdf)
    subprocess.run(
        [
            "pdftoppm",
            "-gray",
            "-r",
            "50",
            "-f",
            "1",
            "-l",
            "1",
            str(tmp_path / "r.pdf"),
            str(tmp_path / "page"),
        ],
        check=True,
        timeout=60,
    )
    raw = next(tmp_path.glob("page*.pgm")).read_bytes()
    magic, width, height, maxval, pixels = raw.split(maxsplit=4)
    assert magic == b"P5" and maxval == b"255"
    return int(width), int(height), pixels


def test_page_one_renders_with_content(pdf_bytes, tmp_path):
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    width, height, pixels = _gray_pixels(pdf_bytes, tmp_path)
    assert abs(width - 413) <= 1 and abs(height - 585) <= 1  # A4 (595 x 842 pt) at 50 dpi
    dark = sum(1 for p in pixels[: width * height] if p < 200)
    # Title, chart, tables: a blank or near-blank page would be far below 3% of the pixels.
    assert dark > 0.03 * width * height
    top_band = pixels[: width * 60]  # the title block
    assert sum(1 for p in top_band if p < 128) > 200


def test_explicit_font_path_and_bad_font(tmp_path):
    path = fonts.CJK_FONT_CANDIDATES[0][0]
    if not os.path.exists(path):
        pytest.skip("IPAexGothic (fonts-ipaexfont-gothic) is not installed")
    assert build_pdf(sample_report_data(D), font_path=path).startswith(b"%PDF")
    bogus = tmp_path / "bogus.ttf"
    bogus.write_bytes(b"not a font")
    with pytest.raises(ValueError, match="not a TrueType font"):
        build_pdf(sample_report_data(D), font_path=str(bogus))


def test_falls_back_to_cid_font_with_a_warning(monkeypatch):
    monkeypatch.setattr(fonts, "CJK_FONT_CANDIDATES", (("/nonexistent/font.ttf", 0),))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdf = build_pdf(report_data_from_totals(D, TOTALS, minute_bytes={817: PEAK_BYTES}))
    assert any("HeiseiKakuGo-W5" in str(w.message) for w in caught)
    reader = PdfReader(io.BytesIO(pdf))
    page_fonts = reader.pages[0]["/Resources"]["/Font"].values()
    font_names = {str(f.get_object().get("/BaseFont")) for f in page_fonts}
    assert any("HeiseiKakuGo-W5" in name for name in font_names)
    assert "298.96 GB (39.86Gbps) at 13:37" in reader.pages[0].extract_text()


def test_quiet_day_many_distributions_and_empty_tables_still_render():
    base = report_data_from_totals(D, {}, distributions=[f"e{i:02d}abcdefghijk" for i in range(22)])
    empty = {
        name: getattr(base, name).head(0)
        for name in ("top_objects", "top_referrers", "edge_locations", "devices", "os", "browsers")
    }
    data = dataclasses.replace(base, quality={}, **empty)
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(build_pdf(data))).pages)
    assert "0.00 GB (0.00Gbps) at 00:00" in text
    assert "e21abcdefghijk" in text
    assert "n/a" in text  # every trend: the previous day had no traffic
    assert text.count("no data for this day") == 6  # objects, referrers, edges, devices, OS, browsers
