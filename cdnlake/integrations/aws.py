"""boto3 clients for the flow's own S3 calls, pointed where the Spark jobs' s3a goes."""

from __future__ import annotations

from typing import Any

from cdnlake.report_data import Warehouse
from cdnlake.settings import Settings
from cdnlake.storage import Store, is_s3, store_for


def s3_client(settings: Settings) -> Any:
    """An S3 client for the source, warehouse and reports: CDNLAKE_S3_ENDPOINT (MinIO, LocalStack;
    path-style addressing, as s3a uses it) when set, else AWS in CDNLAKE_AWS_REGION."""
    import boto3
    from botocore.config import Config

    if settings.s3_endpoint:
        return boto3.client("s3", region_name=settings.aws_region, endpoint_url=settings.s3_endpoint,
                            config=Config(s3={"addressing_style": "path"}))  # fmt: skip
    return boto3.client("s3", region_name=settings.aws_region)


def store(settings: Settings, location: str) -> Store:
    """The store (cdnlake/storage.py) of a location of these settings: S3 through s3_client()."""
    return store_for(location, lambda: s3_client(settings))


def warehouse(settings: Settings) -> Warehouse:
    """The warehouse for delta-rs reads (reports, checks): pointed at CDNLAKE_S3_ENDPOINT like s3a."""
    options: dict[str, str] = {}
    if settings.s3_endpoint and is_s3(settings.warehouse):
        options = {"AWS_ENDPOINT_URL": settings.s3_endpoint, "AWS_REGION": settings.aws_region,
                   "AWS_ALLOW_HTTP": str(settings.s3_endpoint.startswith("http://")).lower(),
                   "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false"}  # fmt: skip
    return Warehouse(settings.warehouse, options)
