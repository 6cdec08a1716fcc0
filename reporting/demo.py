"""Render the sample report without Spark: ``python -m reporting.demo --date 2024-06-09 --out DIR``.

Writes cdn_statistics.csv, summary.json, cdn_report.pdf and the e-mail (outbox ``.eml``) for the
synthetic data of :mod:`reporting.sample`; handy to review layout changes.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from cdnlake.storage import LocalStore
from reporting.delivery import OutboxSender, deliver
from reporting.email import EmailConfig, build_message
from reporting.ledger import EmailLedger
from reporting.outputs import write_outputs
from reporting.sample import sample_report_data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--date", type=dt.date.fromisoformat, default=dt.date(2024, 6, 9))
    parser.add_argument("--out", type=Path, default=Path("data/reports-demo"))
    parser.add_argument("--font-path", default=None)
    args = parser.parse_args(argv)
    data = sample_report_data(args.date)
    paths = write_outputs(data, args.out / args.date.isoformat(), font_path=args.font_path)
    config = EmailConfig(sender="cdn-report@example.com", to=["ops@example.com"], environment="demo")
    message = build_message(data, paths["csv"].read_bytes(), paths["pdf"].read_bytes(), config)
    outbox, ledger = OutboxSender(args.out / "outbox"), EmailLedger(LocalStore(args.out))
    result = deliver(args.date, message, outbox, ledger, force=True)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    print(f"e-mail: {args.out / 'outbox'} ({result.detail})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
