"""A moto server on 127.0.0.1 for tests that cross a thread, a process or the JVM (S3, SES)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

FAKE_KEYS = {"AWS_ACCESS_KEY_ID": "testing-key", "AWS_SECRET_ACCESS_KEY": "testing-secret",
             "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_endpoint(*buckets: str) -> Iterator[str]:
    """The URL of a running moto server (stopped on exit), with `buckets` created."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        for bucket in buckets:
            client("s3", url).create_bucket(Bucket=bucket)
        yield url
    finally:
        server.stop()


def client(service: str, url: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=FAKE_KEYS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=FAKE_KEYS["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
