"""Build landing folders from ../shared/samples for tests: one gz file per sample, date and hour."""

from __future__ import annotations

import collections
import gzip
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
DISTRO = "EDFDVBD6EXAMPLE"


def sample_lines(name: str) -> tuple[list[str], list[str]]:
    """(header lines, data lines) of a sample file."""
    lines = (SAMPLES / f"{name}.log").read_text(encoding="utf-8").split("\n")
    return [x for x in lines if x.startswith("#")], [x for x in lines if x and not x.startswith("#")]


def write_gz(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def build_landing(root: Path, distro: str = DISTRO) -> list[Path]:
    """Every sample, split into CloudFront-named files by the date and hour of its lines."""
    written = []
    for sample in sorted(SAMPLES.glob("*.log")):
        header, data = sample_lines(sample.stem)
        groups: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
        for line in data:
            groups[(line[:10], line[11:13])].append(line)
        for (day, hour), lines in groups.items():
            unique = sample.stem.replace(".", "_")
            name = f"{distro}.{day}-{hour}.{unique}.gz"
            written.append(write_gz(root / distro.lower() / name, header + lines))
    return written
