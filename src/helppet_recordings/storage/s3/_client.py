"""The boto3 client S3Storage builds when it is given none."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import boto3
import botocore.config

from helppet_recordings.settings import environment_values

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_POOL_CONNECTIONS: Final = 40
"""Connections the default client keeps open: one per thread of AnyIO's default thread pool.

botocore's own default is 10; with more threads calling S3 at once, every
request past the tenth opens a connection and closes it when done.
"""


ENDPOINT_VARIABLES: Final = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
"""The standard variables an S3 endpoint is read from; the S3-specific one wins."""


def environment_endpoint(environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """Return the variable naming the S3 endpoint and its URL, or None when neither is set.

    Read by the rule of every variable the package reads
    (:func:`~helppet_recordings.settings.environment_values`): surrounding
    whitespace removed (a secret file's trailing newline), and a variable that
    is empty or only whitespace unset.
    """
    source = os.environ if environ is None else environ
    values = environment_values(
        {name: source[name] for name in ENDPOINT_VARIABLES if name in source}
    )
    for variable in ENDPOINT_VARIABLES:
        if variable in values:
            return variable, values[variable]
    return None


def _endpoint_options() -> dict[str, Any]:
    """Keep botocore from reading an endpoint variable that holds only whitespace.

    With no endpoint given, botocore reads the variables raw and takes
    whitespace for an invalid endpoint rather than for unset. Only then are
    configured endpoints ignored (a profile's ``endpoint_url`` with them): an
    empty variable botocore itself treats as unset, and the profile's
    endpoint still applies.
    """
    if any(os.environ.get(name, "x").isspace() for name in ENDPOINT_VARIABLES):
        return {"ignore_configured_endpoint_urls": True}
    return {}


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
    configured = environment_endpoint()
    endpoint = endpoint_url or (configured[1] if configured else None)
    config = botocore.config.Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if endpoint else "virtual"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "max_attempts": max_attempts},
        max_pool_connections=max_pool_connections,
        **_endpoint_options(),
    )
    session = boto3.session.Session()
    return session.client(
        "s3",
        region_name=region_name or session.region_name or "us-east-1",
        endpoint_url=endpoint or None,
        config=config,
    )
