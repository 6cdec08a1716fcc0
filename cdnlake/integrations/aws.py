"""boto3 clients for the flow's own S3 calls, pointed where the Spark jobs' s3a goes."""

from __future__ import annotations

from typing import Any

from cdnlake.settings import Settings


def s3_client(settings: Settings) -> Any:
    """An S3 client for the source, warehouse and reports: CDNLAKE_S3_ENDPOINT (MinIO, LocalStack;
    path-style addressing, as s3a uses it) when set, else AWS in CDNLAKE_AWS_REGION."""
    import boto3
    from botocore.config import Config

    if settings.s3_endpoint:
        return boto3.client("s3", region_name=settings.aws_region, endpoint_url=settings.s3_endpoint,
                            config=Config(s3={"addressing_style": "path"}))  # fmt: skip
    return boto3.client("s3", region_name=settings.aws_region)
