"""Fonts for the PDFs: every one an embedded, subset TrueType font, so any viewer draws them.

Japanese text uses IPAexGothic, shipped by a locked Python dependency (the ``japanize-matplotlib``
package carries ``ipaexg.ttf``; only the file is used, the package is never imported because it
would import matplotlib). Figures and Latin text use Bitstream Vera, which ReportLab itself ships.
ReportLab only embeds TrueType-outline fonts (Noto Sans CJK ``.otf``/``.ttc`` files use CFF
outlines it refuses), hence these choices. System fonts are searched only if the packaged file is
missing (a broken install); if nothing loads, ReportLab's built-in CID font ``HeiseiKakuGo-W5`` is
used with a warning: it is not embedded, so a viewer without a Japanese font shows empty boxes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFError, TTFont

log = logging.getLogger(__name__)

FONT_PACKAGE = "japanize_matplotlib"
FONT_FILE_IN_PACKAGE = "fonts/ipaexg.ttf"

# After the packaged font, searched in order; the first file ReportLab can load wins.
SYSTEM_CJK_FONTS: tuple[str, ...] = (
    "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",  # Debian/Ubuntu fonts-ipaexfont-gothic
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",  # Debian alternatives symlink
    "/usr/share/fonts/ipa-gothic/ipag.ttf",  # Fedora ipa-gothic-fonts
    "/Library/Fonts/Arial Unicode.ttf",  # macOS
)

FALLBACK_CID_FONT = "HeiseiKakuGo-W5"
# ReportLab's own TrueType copies of Bitstream Vera (reportlab/fonts/), found on its font path.
LATIN_FONT_FILES = {"cdnlake-Vera": "Vera.ttf", "cdnlake-Vera-Bold": "VeraBd.ttf"}


@dataclass(frozen=True)
class FontSet:
    cjk: str  # registered ReportLab font name for Japanese (and any other) text
    latin: str = "cdnlake-Vera"
    latin_bold: str = "cdnlake-Vera-Bold"
    path: str | None = None  # the embedded CJK file, or None when falling back to the CID font

    @property
    def embedded(self) -> bool:
        return self.path is not None


def packaged_cjk_font() -> Path | None:
    """The IPAexGothic file of the locked font package, without importing the package."""
    spec = importlib.util.find_spec(FONT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / FONT_FILE_IN_PACKAGE
    return path if path.is_file() else None


def cjk_font_candidates() -> list[str]:
    packaged = packaged_cjk_font()
    return ([str(packaged)] if packaged else []) + list(SYSTEM_CJK_FONTS)


_registered: dict[str, str] = {}


def _register_ttf(path: str) -> str:
    """Register once per process (ReportLab's registry is global) and return the font name."""
    key = str(Path(path).resolve())
    if key not in _registered:
        name = "CJK-" + hashlib.sha1(key.encode()).hexdigest()[:10]
        pdfmetrics.registerFont(TTFont(name, path))
        _registered[key] = name
    return _registered[key]


def _try_register(path: str) -> str | None:
    if not Path(path).is_file():
        return None
    try:
        return _register_ttf(path)
    except (TTFError, OSError, ValueError) as exc:
        log.info("skipping font %s: %s", path, exc)
        return None


def _register_latin() -> None:
    registered = set(pdfmetrics.getRegisteredFontNames())
    for name, file_name in LATIN_FONT_FILES.items():
        if name not in registered:
            pdfmetrics.registerFont(TTFont(name, file_name))


def resolve_fonts(font_path: str | None = None) -> FontSet:
    """Pick the CJK font: ``font_path`` if given (it must load), else the first candidate."""
    _register_latin()
    if font_path:
        name = _try_register(font_path)
        if name is None:
            raise ValueError(f"font_path {font_path!r} is not a TrueType font ReportLab can embed")
        return FontSet(cjk=name, path=font_path)
    for path in cjk_font_candidates():
        name = _try_register(path)
        if name:
            return FontSet(cjk=name, path=path)
    message = (
        f"no embeddable CJK TrueType font found (reinstall with `make install`: the {FONT_PACKAGE} "
        f"package carries it); using the non-embedded CID font {FALLBACK_CID_FONT}"
    )
    warnings.warn(message, RuntimeWarning, stacklevel=2)
    log.warning(message)
    if FALLBACK_CID_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FALLBACK_CID_FONT))
    return FontSet(cjk=FALLBACK_CID_FONT)
