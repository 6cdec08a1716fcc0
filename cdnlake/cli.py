"""`cdnlake` command line (SPEC section 4)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cdnlake.settings import ConfigError, Settings, load_settings
from spark_jobs.contract import default_date, distro_list, iso_date, location

log = logging.getLogger("cdnlake")


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
    gen.add_argument("--format", choices=("legacy", "w3c", "json", "parquet"), default="legacy",
                     help="legacy standard logs, or standard logging v2 deliveries (w3c, json, parquet)")
    gen.add_argument("--hive", action="store_true", help="v2 keys with Hive-style partitions (name=value)")

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

    misses = sub.add_parser("analyze-misses", help="cache-miss association rules for a date range")
    misses.add_argument("--start", type=iso_date, required=True)
    misses.add_argument("--end", type=iso_date, required=True)
    misses.add_argument("--sample-fraction", type=float, default=None, help="share of requests sampled (0-1]")
    misses.add_argument("--min-support", type=float, default=None)
    misses.add_argument("--min-confidence", type=float, default=None)
    _locations(misses, source=False)

    sub.add_parser("demo", help="generate 3 days for 3 distributions and run the pipeline")
    sub.add_parser("config", help="print the effective settings (secrets masked)")
    doctor = sub.add_parser("doctor", help="check Java, jars, font, locations, S3, SES, Slack and Prefect")
    _locations(doctor)
    _warehouse_parsers(sub)
    return parser


def _warehouse_parsers(sub: Any) -> None:
    """Querying the warehouse: ad-hoc SQL, catalog registration, CloudWatch cross-check, chat re-runs."""
    sql = sub.add_parser("sql", help="read-only SQL over the warehouse tables (Spark)")
    sql.add_argument("query", nargs="?", help="the SQL text (or -f FILE)")
    sql.add_argument("-f", "--file", type=Path, help="read the SQL from this file (e.g. docs/queries/*.sql)")
    sql.add_argument("--date", type=iso_date, help="value of ${date} in the query")
    sql.add_argument("--param", action="append", metavar="NAME=VALUE", help="value of ${NAME} (repeatable)")
    sql.add_argument("--limit", type=int, default=50, help="rows printed (default 50)")
    sql.add_argument("--out", type=Path, help="write all rows to a .csv or .parquet file instead")
    sql.add_argument("--warehouse", type=location, help="Delta tables root (path or s3:// URI)")

    catalog = sub.add_parser("catalog", help="register the Delta tables in the AWS Glue Data Catalog")
    catalog.add_argument("--warehouse", type=location, help="Delta tables root (s3:// URI)")

    check = sub.add_parser("crosscheck", help="compare a day's logs with CloudFront's CloudWatch metrics")
    check.add_argument("--date", type=iso_date, default=None)
    _locations(check, source=False, reports=False)

    automations = sub.add_parser("automations", help="Prefect automations: alert when cdn-daily is late or crashes")
    automations.add_argument("action", choices=("apply", "show"), help="apply: create/update them; show: print them")

    chat = sub.add_parser("chat-server", help="Slack /cdn-report endpoint that starts cdn-rerun runs")
    chat.add_argument("--host", default="127.0.0.1", help="listen address (0.0.0.0 behind an ingress)")
    chat.add_argument("--port", type=int, default=8787)
    chat.add_argument("--command", default="/cdn-report", help="the slash command's name in the Slack app")


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
    from cdnlake.sample_logs import generate_logs

    result = generate_logs(
        args.date, args.distributions, args.rows, args.seed, args.out,
        files_per_hour=args.files_per_hour, progress=sys.stderr.isatty(), fmt=args.format, hive=args.hive,
    )  # fmt: skip
    print(f"wrote {len(result.files)} files, {result.lines_written:,} lines "
          f"({result.malformed_lines:,} malformed) for {', '.join(result.distribution_ids)} to {args.out}")  # fmt: skip
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from cdnlake import pipeline
    from cdnlake.locks import date_locks
    from cdnlake.services import build_services

    settings = _settings(args)
    date = args.date or default_date(settings.report_tz)
    with date_locks(settings, [date]):  # not while a run of the same date is writing it
        # No listing handed over: the job lists the date's files itself, once.
        result = pipeline.ingest_date(build_services(settings), date, list(settings.distributions) or None)
    print(pipeline.format_ingest(result))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from cdnlake.prefect_defaults import local_prefect, start_prefect_server

    prefect_server = start_prefect_server()  # first: it takes seconds, the rest goes on meanwhile
    from cdnlake.services import build_services_starting_spark, use_services
    from flows.daily import cdn_daily

    services = build_services_starting_spark(_settings(args))  # the JVM starts while Prefect does
    settings = services.settings
    with local_prefect(args.verbose, prefect_server), use_services(services):  # the flow's settings: never a parameter
        summary = cdn_daily(
            date=args.date, distributions=list(settings.distributions) or None, resend_email=args.resend_email,
        )  # fmt: skip
    _print(summary)
    from cdnlake.progress import print_summary

    print_summary(summary)  # to stderr: stdout stays JSON for `| jq`
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from cdnlake.prefect_defaults import local_prefect, start_prefect_server

    prefect_server = start_prefect_server()
    from cdnlake.services import build_services_starting_spark, use_services
    from flows.daily import cdn_backfill

    if args.end < args.start:
        raise ConfigError(f"--end {args.end} is before --start {args.start}")
    services = build_services_starting_spark(_settings(args))
    settings = services.settings
    with local_prefect(args.verbose, prefect_server), use_services(services):
        _print(cdn_backfill(start=args.start, end=args.end, distributions=list(settings.distributions) or None,
                            resend_email=args.resend_email, concurrency=args.concurrency))  # fmt: skip
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from cdnlake import pipeline
    from cdnlake.locks import date_locks
    from cdnlake.services import build_services

    services = build_services(_settings(args))
    settings = services.settings
    date = args.date or default_date(settings.report_tz)
    with date_locks(settings, [date]):  # the e-mail ledger is checked and written under the date's lock
        result = pipeline.report_and_email(services, date, list(settings.distributions) or None, args.resend_email)
    _print(result)
    return 0


def cmd_analyze_misses(args: argparse.Namespace) -> int:
    from cdnlake.misses import analyze_misses

    if args.end < args.start:
        raise ConfigError(f"--end {args.end} is before --start {args.start}")
    for name in ("sample_fraction", "min_support", "min_confidence"):
        value = getattr(args, name)
        if value is not None and not 0 < value <= 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be in (0, 1], got {value}")
    from cdnlake.services import build_services

    settings = _settings(args)
    _print(analyze_misses(build_services(settings), args.start, args.end, list(settings.distributions) or None,
                          args.sample_fraction, args.min_support, args.min_confidence))  # fmt: skip
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from cdnlake.prefect_defaults import local_prefect, start_prefect_server

    prefect_server = start_prefect_server()  # ready by the time the sample logs are generated
    from cdnlake.demo import run_demo

    with local_prefect(args.verbose, prefect_server):
        return run_demo(load_settings())


def cmd_config(args: argparse.Namespace) -> int:
    _print(load_settings().masked())
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from cdnlake.doctor import report, run_checks, this_machine

    settings = _settings(args)
    return report(run_checks(settings, this_machine(settings)), sys.stdout)


def cmd_sql(args: argparse.Namespace) -> int:
    from cdnlake import sql as adhoc

    if bool(args.query) == bool(args.file):
        raise adhoc.QueryError("give the SQL as an argument or with -f FILE (one of the two)")
    text = args.file.read_text(encoding="utf-8") if args.file else args.query
    values = adhoc.parse_params(args.param) | ({"date": args.date.isoformat()} if args.date else {})
    query = adhoc.substitute(text, values)
    settings = _settings(args)
    result = adhoc.run_query(adhoc.session_for(settings), settings.warehouse, query)
    if args.out:
        print(f"wrote {adhoc.write_result(result, args.out):,} rows to {args.out}")
    else:
        print(adhoc.render(result, args.limit))
    return 0


def cmd_catalog(args: argparse.Namespace) -> int:
    from cdnlake import pipeline

    result = pipeline.register_catalog(_settings(args))
    if result is None:
        print("no catalog configured (CDNLAKE_GLUE_DATABASE is empty): with the embedded default Spark and "
              "delta-rs open the tables by path, so there is nothing to register")  # fmt: skip
    else:
        _print(result)
    return 0


def cmd_crosscheck(args: argparse.Namespace) -> int:
    import dataclasses

    from cdnlake.crosscheck import cloudwatch_crosscheck, crosscheck_data

    # Asking for it on the command line is consent enough, even if the daily run does not do it.
    settings = dataclasses.replace(_settings(args), cloudwatch_enabled=True)
    date = args.date or default_date(settings.report_tz)
    result = cloudwatch_crosscheck(settings, date, list(settings.distributions) or None)
    assert result is not None
    check = crosscheck_data(result)
    print(check.table.to_string(index=False) if not check.table.empty else "(no traffic and no CloudWatch data)")
    print("\n".join([result["summary"], *result["alerts"]]))
    return 0


def cmd_automations(args: argparse.Namespace) -> int:
    from cdnlake import automations

    settings = load_settings()
    if args.action == "show":
        start, zone = automations.schedule_time()
        _print(automations.automation_specs(settings.completion_deadline, start, zone))
        return 0
    names = automations.apply_automations(settings)
    print("\n".join(f"applied: {name}" for name in names))
    return 0


def cmd_chat_server(args: argparse.Namespace) -> int:
    from cdnlake.integrations import chat

    settings = load_settings()
    if not settings.slack_signing_secret:
        raise ConfigError("CDNLAKE_SLACK_SIGNING_SECRET: required by chat-server (the Slack app's signing secret)")
    app = chat.make_app(settings.slack_signing_secret, chat.prefect_trigger(settings.rerun_deployment), args.command)
    chat.serve(app, args.host, args.port)
    return 0


COMMANDS = {
    "generate-logs": cmd_generate, "ingest": cmd_ingest, "run": cmd_run, "backfill": cmd_backfill,
    "report": cmd_report, "analyze-misses": cmd_analyze_misses, "demo": cmd_demo, "config": cmd_config,
    "doctor": cmd_doctor, "sql": cmd_sql, "catalog": cmd_catalog, "crosscheck": cmd_crosscheck,
    "chat-server": cmd_chat_server, "automations": cmd_automations,
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from cdnlake.progress import CurrentStderr

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s",
                        stream=CurrentStderr())  # fmt: skip
    for noisy in ("httpx", "urllib3", "botocore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("py4j").setLevel(logging.DEBUG if args.verbose else logging.ERROR)
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
