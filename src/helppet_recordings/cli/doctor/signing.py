"""Request signing checks: ``s3.signature`` (SigV4) and ``s3.clock`` (skew to the server)."""

from __future__ import annotations

import email.utils
from typing import TYPE_CHECKING, Final

from helppet_recordings.cli.doctor._common import _finding
from helppet_recordings.cli.doctor.bucket_access import BucketProbe
from helppet_recordings.cli.findings import Finding, Status

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CLOCK_SKEW_WARN_SECONDS: Final = 60
"""Clock skew against the storage server above which doctor warns."""

CLOCK_SKEW_FAIL_SECONDS: Final = 900
"""Clock skew above which doctor fails: S3 refuses SigV4 requests 15 minutes off."""


def _check_signature(client: S3Client, *, reachable: bool) -> Finding:
    version = getattr(client.meta.config, "signature_version", None)
    if version != "s3v4":
        return _finding(
            "s3.signature",
            Status.FAIL,
            f"the client signs with {version!r}, not SigV4",
            "build S3Storage's client with botocore Config(signature_version='s3v4')",
        )
    if reachable:
        return _finding(
            "s3.signature", Status.OK, "requests and upload policies are signed with SigV4"
        )
    return _finding(
        "s3.signature",
        Status.WARN,
        "the client signs with SigV4, but no signed request got through to confirm it",
    )


def _check_clock(probe: BucketProbe) -> Finding:
    if probe.server_date is None:
        return _finding("s3.clock", Status.WARN, "not checked: the server sent no Date header")
    try:
        server = email.utils.parsedate_to_datetime(probe.server_date).timestamp()
    except (TypeError, ValueError):
        return _finding(
            "s3.clock", Status.WARN, "not checked: the server's Date header cannot be read"
        )
    # The Date header is truncated to whole seconds: its middle is half a second later.
    skew = server + 0.5 - probe.sent_at
    direction = "behind" if skew > 0 else "ahead of"
    text = f"this host's clock is {abs(skew):.0f} s {direction} the server's"
    if abs(skew) > CLOCK_SKEW_FAIL_SECONDS:
        return _finding(
            "s3.clock",
            Status.FAIL,
            text + f" (over {CLOCK_SKEW_FAIL_SECONDS} s: S3 refuses such signatures)",
            "synchronise the clock (NTP)",
        )
    if abs(skew) > CLOCK_SKEW_WARN_SECONDS:
        return _finding(
            "s3.clock",
            Status.WARN,
            text + " (upload URLs expire early or late by as much)",
            "synchronise the clock (NTP)",
        )
    return _finding("s3.clock", Status.OK, text)
