"""One Spark application for a whole run: the driver serves the run's jobs one after another.

On Kubernetes every job used to be its own SparkApplication: a driver pod, executor pods, a JVM
and a SparkSession per stage, four or more per daily run. Here the driver starts once and takes
its work from a run folder that both sides can reach (`<warehouse>/_cdnlake_runs/<app name>/`, a
local path or S3 through Hadoop's FileSystem, so s3a:// and local folders are one code path):

- the orchestrator writes `NNNN.request.json`: `{"job": "compact", "argv": [...]}`, the job's
  command line (JobParams.to_argv), parsed here by the job's own parser as under spark-submit.
  Secrets are never in it: the IP hash key reaches the driver as an environment variable;
- the loop runs `spark_jobs.<job>.run(spark, params)` and writes `NNNN.result.json`:
  `{"ok": true, "result": {...}}` or `{"ok": false, "error_type": ..., "error": ...}`; a failed
  job does not end the loop (the orchestrator decides whether to retry);
- the loop stops on the orchestrator's `done` marker, or when no request came for
  `--idle-timeout` seconds (a crashed flow never leaves a driver and its executors running),
  and writes `exit.json` saying why.

Requests are numbered from 0001 and served in that order; the loop looks for the next number
only, so polling costs two small reads per interval, never a listing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from spark_jobs.contract import location, to_hadoop_uri
from spark_jobs.errors import summarize_spark_error
from spark_jobs.params import PARAMS

# Named, not __name__: under spark-submit this file is __main__, and operators grep the driver log for it.
log = logging.getLogger("spark_jobs.job_loop")

DONE = "done"
EXIT = "exit.json"
STARTED = "started.json"
IDLE_TIMEOUT_S = 600.0


def request_name(number: int) -> str:
    return f"{number:04d}.request.json"


def result_name(number: int) -> str:
    return f"{number:04d}.result.json"


class RunFolder:
    """The run folder through Hadoop's FileSystem of the driver's session (local, s3a)."""

    def __init__(self, spark: Any, uri: str) -> None:
        jvm = spark.sparkContext._jvm
        self._jvm, self.uri = jvm, uri.rstrip("/")
        self._root = jvm.org.apache.hadoop.fs.Path(to_hadoop_uri(self.uri))
        self._fs = self._root.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())

    def _path(self, name: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(self._root, name)

    def exists(self, name: str) -> bool:
        return bool(self._fs.exists(self._path(name)))

    def read(self, name: str) -> bytes:
        stream = self._fs.open(self._path(name))
        try:
            return bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()

    def write(self, name: str, data: bytes) -> None:
        """Through a hidden temporary name and a rename, so a reader never sees half a file."""
        staged = self._path(f".{name}.tmp")
        stream = self._fs.create(staged, True)
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()
        self._fs.delete(self._path(name), False)
        if not self._fs.rename(staged, self._path(name)):
            raise OSError(f"could not rename {staged} to {name} in {self.uri}")


def run_request(spark: Any, request: dict[str, Any]) -> dict[str, Any]:
    """A job's result, as its spark-submit entry point would compute it from the same argv."""
    job = request.get("job")
    if job not in PARAMS:
        raise ValueError(f"unknown Spark job {job!r}; known: {', '.join(PARAMS)}")
    module = importlib.import_module(f"spark_jobs.{job}")
    try:
        namespace = module.build_parser().parse_args([str(a) for a in request.get("argv", [])])
    except SystemExit:  # argparse exits on bad arguments; the loop must not
        raise ValueError(f"{job}: invalid arguments {request.get('argv')!r}") from None
    result = module.run(spark, PARAMS[job].from_namespace(namespace))
    return dict(result)


def outcome(spark: Any, request: dict[str, Any]) -> dict[str, Any]:
    """The result file's content: the job's result, or its error as one line with its type."""
    started = time.monotonic()
    try:
        result = run_request(spark, request)
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the orchestrator
        log.exception("job %s failed", request.get("job"))
        text = summarize_spark_error(exc, limit=2000)
        return {"ok": False, "error_type": type(exc).__name__, "error": text,
                "seconds": round(time.monotonic() - started, 2)}  # fmt: skip
    return {"ok": True, "result": result, "seconds": round(time.monotonic() - started, 2)}


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, default=str, indent=2).encode()


@dataclass
class LoopTiming:
    idle_timeout_s: float = IDLE_TIMEOUT_S
    poll_s: float = 0.5  # two small reads per poll (next request, `done`): ~4 S3 requests a second
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


def serve(spark: Any, folder_uri: str, timing: LoopTiming | None = None) -> dict[str, Any]:
    """Run the folder's requests in order until `done` or the idle timeout; what `exit.json` says."""
    timing = timing or LoopTiming()
    folder = RunFolder(spark, folder_uri)
    folder.write(STARTED, _dump({"app": spark.sparkContext.appName, "spark": spark.version}))
    served, number, idle_since = 0, 1, timing.clock()
    while True:
        if folder.exists(request_name(number)):
            request = json.loads(folder.read(request_name(number)))
            log.info("request %04d: %s %s", number, request.get("job"), " ".join(map(str, request.get("argv", []))))
            folder.write(result_name(number), _dump(outcome(spark, request)))
            served, number, idle_since = served + 1, number + 1, timing.clock()
            continue  # the next request may already be waiting
        if folder.exists(DONE):
            reason = "done"
        elif timing.clock() - idle_since >= timing.idle_timeout_s:
            reason = f"idle for {timing.idle_timeout_s:g}s"
        else:
            timing.sleep(timing.poll_s)
            continue
        summary = {"reason": reason, "served": served}
        folder.write(EXIT, _dump(summary))
        return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="job_loop", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-folder", type=location, required=True, help="the run folder (local path or s3a://)")
    parser.add_argument("--idle-timeout", type=float, default=IDLE_TIMEOUT_S,
                        help="stop after this many seconds without a request")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point under spark-submit (the SparkApplication of cdnlake/runners/k8s_run.py)."""
    from spark_jobs.session import build_session

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)  # one line per request in the driver log; py4j's chatter stays out
    spark = build_session(master=None, app_name="cdnlake-run")
    try:
        summary = serve(spark, args.run_folder, LoopTiming(idle_timeout_s=args.idle_timeout))
    finally:
        spark.stop()
    sys.stdout.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
