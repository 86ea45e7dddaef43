"""Reading the bucket's configuration, one part at a time, every refusal a finding."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs

from helppet_recordings.cli.bucket.evaluation import _finding
from helppet_recordings.cli.bucket.expectations import Part
from helppet_recordings.cli.findings import Finding, Status

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@attrs.frozen(kw_only=True)
class _PartApi:
    check: str
    operation: str
    permission: str
    not_configured: str
    read: Callable[[S3Client, str], Any]


_PARTS: Final[dict[Part, _PartApi]] = {
    "encryption": _PartApi(
        check="s3.encryption",
        operation="GetBucketEncryption",
        permission="s3:GetEncryptionConfiguration",
        not_configured="ServerSideEncryptionConfigurationNotFoundError",
        read=lambda c, b: c.get_bucket_encryption(Bucket=b)["ServerSideEncryptionConfiguration"],
    ),
    "cors": _PartApi(
        check="s3.cors",
        operation="GetBucketCors",
        permission="s3:GetBucketCORS",
        not_configured="NoSuchCORSConfiguration",
        read=lambda c, b: c.get_bucket_cors(Bucket=b)["CORSRules"],
    ),
    "lifecycle": _PartApi(
        check="s3.lifecycle",
        operation="GetBucketLifecycleConfiguration",
        permission="s3:GetLifecycleConfiguration",
        not_configured="NoSuchLifecycleConfiguration",
        read=lambda c, b: c.get_bucket_lifecycle_configuration(Bucket=b)["Rules"],
    ),
    "public_access": _PartApi(
        check="s3.public_access",
        operation="GetPublicAccessBlock",
        permission="s3:GetBucketPublicAccessBlock",
        not_configured="NoSuchPublicAccessBlockConfiguration",
        read=lambda c, b: c.get_public_access_block(Bucket=b)["PublicAccessBlockConfiguration"],
    ),
}


@attrs.frozen(kw_only=True)
class ConfigRead:
    """One part of the bucket's configuration as read: the document, or why it could not be."""

    document: Any = None
    """The part's document; None when the bucket has none."""
    unavailable: Finding | None = None
    """Set (a warning) when the part could not be read at all."""


def read_part(client: S3Client, bucket: str, part: Part) -> ConfigRead:
    """Read one part of the bucket's configuration, turning every refusal into a finding."""
    # botocore is present whenever an S3Client is: the s3 extra brought both.
    import botocore.exceptions  # noqa: PLC0415

    api = _PARTS[part]
    try:
        return ConfigRead(document=api.read(client, bucket))
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code == api.not_configured:
            return ConfigRead()
        if code in {"NotImplemented", "MethodNotAllowed"} or status == 501:
            message = f"could not check: the server does not implement {api.operation}"
            fix = "check this setting with the storage provider's own tools"
        elif code in {"AccessDenied", "AllAccessDisabled"} or status == 403:
            message = f"could not check: {api.operation} was denied ({code or status})"
            fix = f"run doctor with credentials allowed {api.permission} on the bucket"
        else:
            message = f"could not check: {api.operation} failed ({code or status})"
            fix = None
        return ConfigRead(unavailable=_finding(api.check, Status.WARN, message, fix))
    except botocore.exceptions.BotoCoreError as exc:
        message = f"could not check: {api.operation} failed ({type(exc).__name__})"
        return ConfigRead(unavailable=_finding(api.check, Status.WARN, message))


def has_default_encryption(document: Mapping[str, Any] | None) -> tuple[str, str | None] | None:
    """Return the bucket's default encryption algorithm and KMS key id, or None."""
    for rule in (document or {}).get("Rules", []):
        default = rule.get("ApplyServerSideEncryptionByDefault") or {}
        algorithm = default.get("SSEAlgorithm")
        if algorithm:
            return str(algorithm), default.get("KMSMasterKeyID")
    return None
