"""`cdnlake` command line (SPEC section 4)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flows.settings import ConfigError, Settings, load_settings
from spark_jobs.args import distro_list, iso_date, location

log = logging.getLogger("cdnlake")


def _yesterday() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def _locations(parser: argparse.ArgumentParser, source: bool = True, reports: bool = True) -> None:
    if source:
        parser.add_argument("--source", type=location, help="raw logs (path or s3:// URI)")
    parser.add_argument("--warehouse", type=location, help="Delta tables root (path or s3:// URI)")
    if reports:
        parser.add_argument("--reports", type=location, help="reports root (path or s3:// URI)")
    parser.add_argument("--distributions", type=distro_list, help="comma-separated distribution ids")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdnlake", description="CloudFront logs -> Delta Lake warehouse")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate-logs", help="write deterministic sample CloudFront logs")
    gen.add_argument("--date", type=iso_date, required=True)
    gen.add_argument("--distributions", type=int, default=3)
    gen.add_argument("--rows", type=int, default=100_000)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--files-per-hour", type=int, default=4)

    ingest = sub.add_parser("ingest", help="load one UTC date of raw logs into cdn_logs")
    ingest.add_argument("--date", type=iso_date, default=None)
    _locations(ingest, reports=False)

    run = sub.add_parser("run", help="the whole daily pipeline for a date")
    run.add_argument("--date", type=iso_date, default=None)
    run.add_argument("--resend-email", "--resend", action="store_true", dest="resend_email")
    _locations(run)

    backfill = sub.add_parser("backfill", help="the daily pipeline for a range of dates")
    backfill.add_argument("--start", type=iso_date, required=True)
    backfill.add_argument("--end", type=iso_date, required=True)
    backfill.add_argument("--resend-email", action="store_true")
    backfill.add_argument("--concurrency", type=int, default=1,
                          help="dates run at the same time (warehouse writes still take turns)")  # fmt: skip
    _locations(backfill)

    report = sub.add_parser("report", help="rebuild the report and e-mail of a date from the tables")
    report.add_argument("--date", type=iso_date, default=None)
    report.add_argument("--resend-email", "--resend", action="store_true", dest="resend_email")
    _locations(report, source=False)

    sub.add_parser("demo", help="generate 3 days for 3 distributions and run the pipeline")
    sub.add_parser("config", help="print the effective settings (secrets masked)")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        source=getattr(args, "source", None),
        warehouse=getattr(args, "warehouse", None),
        reports=getattr(args, "reports", None),
        distributions=getattr(args, "distributions", None),
    )


def _print(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str, ensure_ascii=False) + "\n")


def cmd_generate(args: argparse.Namespace) -> int:
    from flows.sample_logs import generate_logs

    result = generate_logs(
        args.date, args.distributions, args.rows, args.seed, args.out,
        files_per_hour=args.files_per_hour, progress=sys.stderr.isatty(),
    )  # fmt: skip
    print(f"wrote {len(result.files)} files, {result.lines_written:,} lines "
          f"({result.malformed_lines:,} malformed) for {', '.join(result.distribution_ids)} to {args.out}")  # fmt: skip
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from flows import pipeline

    settings = _settings(args)
    result = pipeline.ingest_date(settings, args.date or _yesterday(), list(settings.distributions) or None)
    print(pipeline.format_ingest(result))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from flows.daily import cdn_daily, local_prefect

    settings = _settings(args)
    with local_prefect(args.verbose):
        summary = cdn_daily(
            date=args.date, distributions=list(settings.distributions) or None,
            resend_email=args.resend_email, settings=settings,
        )  # fmt: skip
    _print(summary)
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from flows.daily import cdn_backfill, local_prefect

    if args.end < args.start:
        raise ConfigError(f"--end {args.end} is before --start {args.start}")
    settings = _settings(args)
    with local_prefect(args.verbose):
        _print(cdn_backfill(start=args.start, end=args.end, distributions=list(settings.distributions) or None,
                            resend_email=args.resend_email, settings=settings,
                            concurrency=args.concurrency))  # fmt: skip
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from flows import pipeline

    settings = _settings(args)
    date = args.date or _yesterday()
    _print(pipeline.report_and_email(settings, date, list(settings.distributions) or None, args.resend_email))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from flows.daily import local_prefect
    from flows.demo import run_demo

    with local_prefect(args.verbose):
        return run_demo(load_settings())


def cmd_config(args: argparse.Namespace) -> int:
    _print(load_settings().masked())
    return 0


COMMANDS = {
    "generate-logs": cmd_generate, "ingest": cmd_ingest, "run": cmd_run, "backfill": cmd_backfill,
    "report": cmd_report, "demo": cmd_demo, "config": cmd_config,
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    for noisy in ("py4j", "httpx", "urllib3", "botocore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"cdnlake: configuration error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the operator gets one clear line; -v shows the traceback
        if args.verbose:
            raise
        print(f"cdnlake {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
