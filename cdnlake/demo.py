"""`cdnlake demo`: three days of sample logs for three distributions, then cdn-daily on the last day.

Everything stays local (./data by default, or wherever CDNLAKE_* points): no cloud account needed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import sys
import tempfile
from pathlib import Path

from cdnlake.progress import print_summary
from cdnlake.sample_logs import GenerationResult, distribution_ids, generate_logs
from cdnlake.settings import Settings

DEMO_DATE = dt.date(2024, 6, 9)  # fixed: the demo gives the same report every time
DEMO_DISTRIBUTIONS = 3
DEMO_ROWS = 60_000  # per day: a couple of minutes on a laptop
DEMO_SEED = 20240609
# Traffic grows a little from day to day so the insights table shows real trends.
_DAY_SCALE = (0.9, 0.95, 1.0)


def _move_as(path: Path, old_id: str, new_id: str, out_dir: Path) -> Path:
    target = out_dir / new_id / (new_id + path.name[len(old_id) :])
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, target)
    return target


def generate_days(out_dir: Path, dates: list[dt.date], distributions: int, rows: list[int], seed: int,
                  files_per_hour: int = 4) -> dict[dt.date, GenerationResult]:  # fmt: skip
    """Sample logs for several days of the same distributions, each day with its own seed.

    `generate_logs` derives the distribution ids from its seed, and one seed for every day would
    repeat the same traffic (every trend 0%). So each day is generated with seed + i into a
    staging folder and its files are renamed to the ids of `seed`.
    """
    ids = distribution_ids(distributions, seed)
    results: dict[dt.date, GenerationResult] = {}
    for i, (day, count) in enumerate(zip(dates, rows, strict=True)):
        with tempfile.TemporaryDirectory(prefix="cdnlake-demo-") as staging:
            result = generate_logs(day, distributions, count, seed + i, Path(staging), files_per_hour)
            rename = dict(zip(result.distribution_ids, ids, strict=True))
            files = [_move_as(f, f.parent.name, rename[f.parent.name], out_dir) for f in result.files]
        results[day] = dataclasses.replace(result, files=files, distribution_ids=ids)
    return results


def _newest_email(outbox: Path, date: dt.date) -> Path | None:
    found = sorted(outbox.glob(f"{date.isoformat()}_*.eml"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def run_demo(settings: Settings, date: dt.date = DEMO_DATE, rows: int = DEMO_ROWS) -> int:
    """Generate D-2..D, run the daily flow for D and print where the outputs are; returns an exit code."""
    from cdnlake.services import build_services_starting_spark, use_services
    from flows.daily import cdn_daily

    if any(str(loc).startswith("s3") for loc in (settings.source, settings.reports, settings.outbox)):
        print("cdnlake demo writes local files: point CDNLAKE_SOURCE/REPORTS/OUTBOX at folders (or unset them)")
        return 2
    services = build_services_starting_spark(settings)  # the JVM starts while the sample is written
    dates = [date - dt.timedelta(days=n) for n in (2, 1, 0)]
    counts = [int(rows * scale) for scale in _DAY_SCALE]
    print(f"demo: {DEMO_DISTRIBUTIONS} distributions, {dates[0]}..{date}, {sum(counts):,} log lines "
          f"-> {settings.source}")  # fmt: skip
    generated = generate_days(Path(settings.source), dates, DEMO_DISTRIBUTIONS, counts, DEMO_SEED, files_per_hour=2)
    # Only name the demo's distributions when CDNLAKE_DISTRIBUTIONS would otherwise filter them out.
    ids = [d.lower() for d in generated[date].distribution_ids] if settings.distributions else None
    # Re-send: each demo run leaves a fresh e-mail to look at (the ledger would skip a second one).
    with use_services(services):
        summary = cdn_daily(date=date, distributions=ids, resend_email=True)
    totals = summary["totals"]
    email = _newest_email(Path(settings.outbox), date) if not settings.ses_enabled else None
    print(f"\ndemo finished in {summary['duration_s']:.0f}s: {totals['requests']:,} requests on {date}, "
          f"{totals['gb']:.2f} GB, peak {summary.get('peak_text')}")  # fmt: skip
    print_summary(summary, sys.stdout, email_path=str(email.resolve()) if email else None)
    return 0
