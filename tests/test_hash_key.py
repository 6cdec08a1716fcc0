"""The IP hash key reaches a local ingest without any command line (the Kubernetes side is in
tests/test_k8s_runner.py): the runner hands it to the job in-process, never as Spark conf."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from cdnlake.runners import local as runner_module
from spark_jobs.params import IngestParams
from tests.samples import write_gz

KEY = "local-hash-key-" + "qz7xk9"  # assembled, so no file holds the whole value
FIELDS = ("date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) "
          "cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header "
          "cs-protocol cs-bytes time-taken")  # fmt: skip
IPS = ("192.0.2.10", "2001:db8::7")
D = dt.date(2024, 6, 9)


def line(ip: str, n: int) -> str:
    return "\t".join(["2024-06-09", "10:00:00", "NRT57-C1", "100", ip, "GET", "d1.cloudfront.net", "/a", "200",
                      "-", "curl/8", "-", "-", "Hit", f"req{n}", "example.com", "https", "10", "0.01"])  # fmt: skip


def command_lines() -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            found.append(cmdline.read_bytes().replace(b"\0", b" ").decode("utf-8", "replace"))
        except OSError:
            continue  # the process ended meanwhile
    return found


def test_local_ingest_hashes_with_the_key_that_is_on_no_command_line(spark: Any, tmp_path: Path) -> None:
    write_gz(tmp_path / "landing" / "E1HASH.2024-06-09-10.a.gz",
             ["#Version: 1.0", f"#Fields: {FIELDS}"] + [line(ip, i) for i, ip in enumerate(IPS)])  # fmt: skip
    runner = runner_module.InProcessRunner("local[2]", ip_hash_key=KEY)
    runner._spark = spark  # the session of the tests (started without the key, as the real one is)
    result = runner.run_job(IngestParams(date=D, source=str(tmp_path / "landing"), warehouse=str(tmp_path / "wh"),
                                         anonymize_ip="hash"))  # fmt: skip
    assert result["loaded"] == 2
    stored = set(DeltaTable(str(tmp_path / "wh" / "cdn_logs")).to_pandas(columns=["c_ip"])["c_ip"])
    assert stored == {hmac.new(KEY.encode(), ip.encode(), hashlib.sha256).hexdigest()[:32] for ip in IPS}
    assert not [c for c in command_lines() if KEY in c]  # not `ps`-visible: no JVM or Python argv
    assert KEY not in str(spark.sparkContext.getConf().getAll()) and KEY not in str(spark.conf.getAll)


def test_without_the_key_the_ingest_refuses_to_hash(spark: Any, tmp_path: Path) -> None:
    write_gz(tmp_path / "landing" / "E1HASH.2024-06-09-10.b.gz",
             ["#Version: 1.0", f"#Fields: {FIELDS}", line(IPS[0], 9)])  # fmt: skip
    runner = runner_module.InProcessRunner("local[2]")
    runner._spark = spark
    with pytest.raises(ValueError, match="CDNLAKE_IP_HASH_KEY"):
        runner.run_job(IngestParams(date=D, source=str(tmp_path / "landing"), warehouse=str(tmp_path / "wh"),
                                    anonymize_ip="hash"))  # fmt: skip
