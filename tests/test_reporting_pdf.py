"""The PDF report: text content (pypdf), fonts (pdffonts), page 1 rendered without system fonts
(pdftoppm) and the font fallback. poppler-utils is required (.ci/run installs it)."""

import dataclasses
import datetime as dt
import io
import os
import subprocess
import warnings

import pandas as pd
import pytest
from pypdf import PdfReader

from reporting import fonts
from reporting.misses import build_misses_pdf
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


def test_cjk_font_comes_from_the_locked_package():
    path = fonts.packaged_cjk_font()
    assert path is not None and path.name == "ipaexg.ttf"
    assert path.read_bytes()[:4] == b"\x00\x01\x00\x00"  # a TrueType-outline font (glyf), not CFF
    assert fonts.resolve_fonts().path == str(path)


def _pdffonts(pdf: bytes, tmp_path) -> list[tuple[str, str, str]]:
    """(name, type, embedded) of every font, as poppler's pdffonts lists them."""
    (tmp_path / "f.pdf").write_bytes(pdf)
    out = subprocess.run(["pdffonts", str(tmp_path / "f.pdf")], check=True, capture_output=True, text=True,
                         timeout=60).stdout
    rows = []
    for line in out.splitlines()[2:]:  # after the header and the dashes
        name, *middle, emb, _sub, _uni, _obj, _gen = line.split()
        rows.append((name, " ".join(middle[:-1]), emb))
    return rows


def test_every_font_is_embedded_truetype(pdf_bytes, tmp_path):
    rows = _pdffonts(pdf_bytes, tmp_path)
    assert {name.split("+", 1)[1] for name, _, _ in rows} == {
        "IPAexGothic", "BitstreamVeraSans-Roman", "BitstreamVeraSans-Bold"}
    assert all(kind == "TrueType" and emb == "yes" for _, kind, emb in rows), rows


def test_cache_miss_pdf_fonts_are_embedded(tmp_path):
    rules = pd.DataFrame([{"antecedent": "edge=NRT57-C1", "consequent": "Miss", "support": 0.1,
                           "confidence": 0.8, "lift": 2.0, "count": 10}])
    top = pd.DataFrame([{"uri": "/動画/予告編.mp4", "misses": 3, "miss_ratio": 0.5, "bytes_missed": 100}])
    edges = pd.DataFrame([{"edge_location": "NRT57-C1", "requests": 10, "misses": 3, "miss_ratio": 0.3}])
    pdf = build_misses_pdf(dt.date(2024, 6, 3), D, rules, top, edges)
    rows = _pdffonts(pdf, tmp_path)
    assert any(name.endswith("+IPAexGothic") for name, _, _ in rows)
    assert rows and all(emb == "yes" for _, _, emb in rows), rows
    assert "キャッシュミス分析" in PdfReader(io.BytesIO(pdf)).pages[0].extract_text()


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


def _render_without_system_fonts(pdf: bytes, tmp_path) -> tuple[int, int, bytes, str]:
    """Page 1 as a binary PGM (P5) rendered by poppler with a fontconfig that knows no font at all,
    as on a machine without a system CJK font. Returns width, height, pixels, poppler's stderr."""
    (tmp_path / "r.pdf").write_bytes(pdf)
    (tmp_path / "fonts.conf").write_text(
        f"<?xml version='1.0'?><fontconfig><dir>{tmp_path / 'no-fonts'}</dir>"
        f"<cachedir>{tmp_path / 'fc-cache'}</cachedir></fontconfig>")
    env = {**os.environ, "FONTCONFIG_FILE": str(tmp_path / "fonts.conf")}
    done = subprocess.run(["pdftoppm", "-gray", "-r", "50", "-f", "1", "-l", "1", str(tmp_path / "r.pdf"),
                           str(tmp_path / "page")], check=True, timeout=60, env=env, capture_output=True, text=True)
    raw = next(tmp_path.glob("page*.pgm")).read_bytes()
    magic, width, height, maxval, pixels = raw.split(maxsplit=4)
    assert magic == b"P5" and maxval == b"255"
    return int(width), int(height), pixels, done.stderr


def _title_ink(width: int, pixels: bytes) -> int:
    """Dark pixels of the Japanese title ("CDN キャッシュ統計レポート", 18 pt, top left)."""
    # Measured: ~210 pixels with the embedded font, 0 when the font cannot be drawn.
    return sum(1 for row in range(28, 48) for p in pixels[row * width + 20: row * width + 220] if p < 128)


def test_page_one_renders_with_content(pdf_bytes, tmp_path):
    width, height, pixels, stderr = _render_without_system_fonts(pdf_bytes, tmp_path)
    assert stderr == ""  # poppler names every font it cannot draw ("Unknown font tag", language pack)
    assert abs(width - 413) <= 1 and abs(height - 585) <= 1  # A4 (595 x 842 pt) at 50 dpi
    dark = sum(1 for p in pixels[: width * height] if p < 200)
    # Title, chart, tables: a blank or near-blank page would be far below 3% of the pixels.
    assert dark > 0.03 * width * height
    assert _title_ink(width, pixels) > 120


def test_non_embedded_fallback_would_show_no_japanese(tmp_path, monkeypatch):
    """The render check above can fail: the CID fallback loses the title on the same font-less machine."""
    monkeypatch.setattr(fonts, "cjk_font_candidates", lambda: ["/nonexistent/font.ttf"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pdf = build_pdf(report_data_from_totals(D, TOTALS, minute_bytes={817: PEAK_BYTES}))
    width, _, pixels, stderr = _render_without_system_fonts(pdf, tmp_path)
    # Without poppler-data poppler names the missing language pack; with it, the missing font.
    assert "Adobe-Japan1" in stderr or "Couldn't find a font for 'HeiseiKakuGo-W5'" in stderr, stderr
    assert _title_ink(width, pixels) < 20


def test_explicit_font_path_and_bad_font(tmp_path):
    path = str(fonts.packaged_cjk_font())
    assert build_pdf(sample_report_data(D), font_path=path).startswith(b"%PDF")
    bogus = tmp_path / "bogus.ttf"
    bogus.write_bytes(b"not a font")
    with pytest.raises(ValueError, match="not a TrueType font"):
        build_pdf(sample_report_data(D), font_path=str(bogus))


def test_falls_back_to_cid_font_with_a_warning(monkeypatch):
    monkeypatch.setattr(fonts, "cjk_font_candidates", lambda: ["/nonexistent/font.ttf"])
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
