"""Build landing folders from tests/data/samples for tests: one gz file per sample, date and hour."""

from __future__ import annotations

import collections
import gzip
from pathlib import Path

# Copies of the project's real-format samples, kept in the repository so a plain clone can test
# (tests/data/samples/README.md says where each came from).
SAMPLES = Path(__file__).resolve().parent / "data" / "samples"
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


def distinct_request_id(line: str, seen: set[str]) -> str:
    """The line with a request id no earlier sample line has.

    The samples reuse AWS's documentation examples in several formats with the same
    x-edge-request-id; ingest counts a repeated request once, so the landing gives each sample
    line its own request (tests/test_ingest.py plants real repeats on purpose).
    """
    fields = line.split("\t")
    if len(fields) <= 14 or fields[14] == "-":
        return line
    original, n = fields[14], 0
    while fields[14] in seen:
        n += 1
        fields[14] = f"{original[:-6]}{n:04d}=="
    seen.add(fields[14])
    return "\t".join(fields)


def build_landing(root: Path, distro: str = DISTRO) -> list[Path]:
    """Every sample, split into CloudFront-named files by the date and hour of its lines."""
    written = []
    seen: set[str] = set()
    for sample in sorted(SAMPLES.glob("*.log")):
        header, data = sample_lines(sample.stem)
        groups: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
        for line in data:
            line = distinct_request_id(line, seen)
            groups[(line[:10], line[11:13])].append(line)
        for (day, hour), lines in groups.items():
            unique = sample.stem.replace(".", "_")
            name = f"{distro}.{day}-{hour}.{unique}.gz"
            written.append(write_gz(root / distro.lower() / name, header + lines))
    return written
