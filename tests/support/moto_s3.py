"""In-process S3 (moto) for fast unit tests of S3 mechanics.

moto answers boto3 calls but enforces none of a POST policy and drops the
server-side encryption header; end-to-end behaviour is tested on SeaweedFS.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from moto import mock_aws

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = "helppet-audio-recordings"


def s3v4_client(region: str = "us-east-1") -> S3Client:
    """A boto3 S3 client that signs with SigV4, as the package requires."""
    return boto3.client("s3", region_name=region, config=Config(signature_version="s3v4"))


@contextmanager
def moto_bucket(bucket: str = BUCKET) -> Iterator[S3Client]:
    """Run the body against an in-process S3 holding one empty bucket."""
    with mock_aws():
        client = s3v4_client()
        client.create_bucket(Bucket=bucket)
        yield client
