"""The boto3 client S3Storage builds when it is given none."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final

import boto3
import botocore.config

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_POOL_CONNECTIONS: Final = 40
"""Connections the default client keeps open: one per thread of AnyIO's default thread pool.

botocore's own default is 10; with more threads calling S3 at once, every
request past the tenth opens a connection and closes it when done.
"""


def build_client(
    *,
    region_name: str | None,
    endpoint_url: str | None,
    connect_timeout: float,
    read_timeout: float,
    max_attempts: int,
    max_pool_connections: int = MAX_POOL_CONNECTIONS,
) -> S3Client:
    """Return a SigV4 client: path-style with an endpoint URL, virtual-hosted on AWS."""
    endpoint = (
        endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )
    config = botocore.config.Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if endpoint else "virtual"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "max_attempts": max_attempts},
        max_pool_connections=max_pool_connections,
    )
    session = boto3.session.Session()
    return session.client(
        "s3",
        region_name=region_name or session.region_name or "us-east-1",
        endpoint_url=endpoint or None,
        config=config,
    )
