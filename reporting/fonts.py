"""Font selection for the PDF: an embedded CJK TrueType font, Helvetica for figures.

ReportLab only embeds TrueType-outline fonts. IPAexGothic (Debian ``fonts-ipaexfont-gothic``) is
the preferred font; Noto Sans CJK ``.ttc`` files use CFF outlines that ReportLab refuses, so they
are tried but usually skipped. If nothing usable is installed, ReportLab's built-in CID font
``HeiseiKakuGo-W5`` is used: it is not embedded, so the viewer must supply a Japanese font,
hence the warning.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFError, TTFont

log = logging.getLogger(__name__)

# Searched in order; the first file ReportLab can load wins. (path, subfont index for .ttc)
CJK_FONT_CANDIDATES: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf", 0),  # Debian/Ubuntu fonts-ipaexfont-gothic
    ("/usr/share/fonts/truetype/fonts-japanese-gothic.ttf", 0),  # Debian alternatives symlink
    ("/usr/share/fonts/opentype/ipafont-gothic/ipagp.ttf", 0),  # fonts-ipafont-gothic
    ("/usr/share/fonts/ipa-gothic/ipag.ttf", 0),  # Fedora ipa-gothic-fonts
    ("/usr/share/fonts/truetype/takao-gothic/TakaoPGothic.ttf", 0),
    ("/usr/share/fonts/truetype/vlgothic/VL-PGothic-Regular.ttf", 0),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 0),  # CFF: usually rejected
    ("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc", 0),
    ("/Library/Fonts/Arial Unicode.ttf", 0),  # macOS
    ("C:/Windows/Fonts/msgothic.ttc", 0),  # Windows
)

FALLBACK_CID_FONT = "HeiseiKakuGo-W5"
LATIN_FONT = "Helvetica"
LATIN_BOLD_FONT = "Helvetica-Bold"


@dataclass(frozen=True)
class FontSet:
    cjk: str  # registered ReportLab font name for Japanese (and any other) text
    latin: str = LATIN_FONT
    latin_bold: str = LATIN_BOLD_FONT
    path: str | None = None  # the embedded file, or None when falling back to the CID font

    @property
    def embedded(self) -> bool:
        return self.path is not None


_registered: dict[tuple[str, int], str] = {}


def _register_ttf(path: str, subfont: int) -> str:
    """Register once per process (ReportLab's registry is global) and return the font name."""
    key = (str(Path(path).resolve()), subfont)
    if key not in _registered:
        name = "CJK-" + hashlib.sha1(f"{key[0]}#{subfont}".encode()).hexdigest()[:10]
        pdfmetrics.registerFont(TTFont(name, path, subfontIndex=subfont))
        _registered[key] = name
    return _registered[key]


def _try_register(path: str, subfont: int) -> str | None:
    if not Path(path).is_file():
        return None
    try:
        return _register_ttf(path, subfont)
    except (TTFError, OSError, ValueError) as exc:
        log.info("skipping font %s: %s", path, exc)
        return None


def resolve_fonts(font_path: str | None = None) -> FontSet:
    """Pick the CJK font: ``font_path`` if given (it must load), else the first candidate."""
    if font_path:
        subfont = 0
        name = _try_register(font_path, subfont)
        if name is None:
            raise ValueError(f"font_path {font_path!r} is not a TrueType font ReportLab can embed")
        return FontSet(cjk=name, path=font_path)
    for path, subfont in CJK_FONT_CANDIDATES:
        name = _try_register(path, subfont)
        if name:
            return FontSet(cjk=name, path=path)
    message = (
        "no embeddable CJK TrueType font found (install fonts-ipaexfont-gothic or pass font_path); "
        f"using the non-embedded CID font {FALLBACK_CID_FONT}"
    )
    warnings.warn(message, RuntimeWarning, stacklevel=2)
    log.warning(message)
    if FALLBACK_CID_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FALLBACK_CID_FONT))
    return FontSet(cjk=FALLBACK_CID_FONT)
