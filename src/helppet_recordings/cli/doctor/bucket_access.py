"""Bucket access: ``s3.credentials`` and ``s3.bucket``, from one signed listing."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import attrs

from helppet_recordings.cli.bucket import BucketExpectations
from helppet_recordings.cli.doctor._common import Clock, _finding, _first_line
from helppet_recordings.cli.findings import Finding, Status

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@attrs.frozen(kw_only=True)
class BucketProbe:
    """What one signed request to the bucket showed: findings, and the server's Date."""

    findings: list[Finding]
    reachable: bool
    server_date: str | None = None
    sent_at: float = 0.0


def probe_bucket(
    client: S3Client, expect: BucketExpectations, clock: Clock = time.time
) -> BucketProbe:
    """List one key under the prefix: proves endpoint, credentials, bucket and s3:ListBucket."""
    import boto3  # noqa: PLC0415
    import botocore.exceptions  # noqa: PLC0415

    endpoint = client.meta.endpoint_url
    credentials = boto3.session.Session().get_credentials()
    source = getattr(credentials, "method", None) or "unknown source"
    credentials_ok = _finding(
        "s3.credentials", Status.OK, f"the server accepted the credentials (from {source})"
    )
    credentials_unchecked = _finding(
        "s3.credentials", Status.WARN, "not checked: the endpoint could not be reached"
    )
    started = clock()
    try:
        response = client.list_objects_v2(
            Bucket=expect.bucket, Prefix=expect.recordings_prefix, MaxKeys=1
        )
    except botocore.exceptions.NoCredentialsError:
        return BucketProbe(
            findings=[
                _finding(
                    "s3.credentials",
                    Status.FAIL,
                    "no AWS credentials found",
                    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run "
                    "with an instance or task role",
                ),
                _finding("s3.bucket", Status.WARN, "not checked: no credentials"),
            ],
            reachable=False,
        )
    except botocore.exceptions.ClientError as exc:
        headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return BucketProbe(
            findings=_client_error_findings(exc, expect, credentials_ok, headers),
            reachable=False,
            server_date=headers.get("date"),
            sent_at=(started + clock()) / 2,
        )
    except botocore.exceptions.BotoCoreError as exc:
        return BucketProbe(
            findings=[
                credentials_unchecked,
                _finding(
                    "s3.bucket",
                    Status.FAIL,
                    f"cannot reach {endpoint}: {_first_line(exc)}",
                    "check AWS_ENDPOINT_URL (or AWS_REGION), DNS, proxies and firewalls "
                    "between this host and the storage server",
                ),
            ],
            reachable=False,
        )
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return BucketProbe(
        findings=[
            credentials_ok,
            _finding(
                "s3.bucket",
                Status.OK,
                f"bucket {expect.bucket} at {endpoint} can be listed with these credentials",
            ),
        ],
        reachable=True,
        server_date=headers.get("date"),
        sent_at=(started + clock()) / 2,
    )


def _client_error_findings(
    exc: Any, expect: BucketExpectations, credentials_ok: Finding, headers: dict[str, str]
) -> list[Finding]:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
    bucket = expect.bucket
    unchecked = _finding("s3.bucket", Status.WARN, "not checked: the credentials were refused")
    refused = {
        "InvalidAccessKeyId": (
            "the server does not know the access key id",
            "check AWS_ACCESS_KEY_ID (and that it belongs to this account or server)",
        ),
        "SignatureDoesNotMatch": (
            "the secret access key does not match the access key id",
            "check AWS_SECRET_ACCESS_KEY",
        ),
        "InvalidToken": (
            "the session token is not valid",
            "refresh AWS_SESSION_TOKEN, or unset it for long-term keys",
        ),
        "ExpiredToken": (
            "the session token has expired",
            "refresh the temporary credentials (AWS_SESSION_TOKEN)",
        ),
    }
    if code in refused:
        message, fix = refused[code]
        return [_finding("s3.credentials", Status.FAIL, f"{message} ({code})", fix), unchecked]
    if code == "RequestTimeTooSkewed":
        return [
            _finding("s3.credentials", Status.WARN, "not checked: the request was refused"),
            _finding(
                "s3.bucket",
                Status.FAIL,
                "the server refused the request: this host's clock is too far off",
                "synchronise the clock (NTP)",
            ),
        ]
    if code in {"NoSuchBucket", "404"}:
        finding = _finding(
            "s3.bucket",
            Status.FAIL,
            f"bucket {bucket} does not exist",
            "create it (then run `helppet-recordings bucket-setup --apply`), or fix S3_BUCKET_NAME",
        )
    elif code in {"AuthorizationHeaderMalformed", "PermanentRedirect", "301"}:
        region = headers.get("x-amz-bucket-region")
        finding = _finding(
            "s3.bucket",
            Status.FAIL,
            f"bucket {bucket} is in another region" + (f" ({region})" if region else ""),
            f"set AWS_REGION={region}" if region else "set AWS_REGION to the bucket's region",
        )
    elif code in {"AccessDenied", "AllAccessDisabled", "403"}:
        finding = _finding(
            "s3.bucket",
            Status.FAIL,
            f"access to bucket {bucket} was denied ({code})",
            "grant the backend's role s3:ListBucket on the bucket and s3:GetObject, "
            "s3:PutObject, s3:DeleteObject on its objects",
        )
    else:
        finding = _finding(
            "s3.bucket",
            Status.FAIL,
            f"listing bucket {bucket} failed ({code or status})",
            "see the storage server's documentation for this error code",
        )
    return [credentials_ok, finding]
