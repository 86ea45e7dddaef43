"""What a deployment's bucket should look like: prefixes, rule ids, :class:`BucketExpectations`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from helppet_recordings.origins import parse_cors_origins
from helppet_recordings.settings import RecordingSettings

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import (
        CORSRuleTypeDef,
        LifecycleRuleTypeDef,
        PublicAccessBlockConfigurationTypeDef,
        ServerSideEncryptionConfigurationTypeDef,
    )

    from helppet_recordings.environment import DeploymentSettings

STAGING_PREFIX: Final = "staging/"
"""Where unverified uploads are staged, relative to ``S3_RECORDINGS_PREFIX``.

The lifecycle rule expires objects under it; verified audio never lives there.
"""

CORS_RULE_ID: Final = "helppet-recordings-uploads"
LIFECYCLE_ABORT_RULE_ID: Final = "helppet-recordings-abort-incomplete-multipart"
LIFECYCLE_STAGING_RULE_ID: Final = "helppet-recordings-expire-staging"
PUBLIC_ACCESS_SETTINGS: Final = (
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
)
UPLOAD_METHODS: Final = ("POST", "PUT")
"""What browsers send to the bucket: form uploads (POST) and multipart parts (PUT)."""

CORS_METHODS: Final = ("GET", "HEAD", "POST", "PUT")
CORS_MAX_AGE_SECONDS: Final = 3000
_SECONDS_PER_DAY: Final = 24 * 60 * 60

Part = Literal["encryption", "cors", "lifecycle", "public_access"]


def staging_prefix(settings: RecordingSettings) -> str:
    """Return the staging prefix: the settings' own, else ``S3_RECORDINGS_PREFIX`` + staging/."""
    configured = getattr(settings, "s3_staging_prefix", None)
    if isinstance(configured, str) and configured:
        return configured
    return settings.s3_recordings_prefix + STAGING_PREFIX


def lifecycle_days(settings: RecordingSettings) -> int:
    """Days after which the lifecycle rules may remove an unfinished upload.

    One day more than the longest an upload may still be completed (URL
    lifetime plus grace), so storage never removes what the sweeper could
    still verify.
    """
    seconds = settings.s3_presigned_url_expiration + settings.upload_grace_seconds
    return max(1, math.ceil(seconds / _SECONDS_PER_DAY)) + 1


@attrs.frozen(kw_only=True)
class BucketExpectations:
    """What the bucket should look like for a deployment.

    ``origins`` are parsed as everywhere else
    (:func:`~helppet_recordings.origins.parse_cors_origins`): lowercased, as
    browsers send them and as the CORS rule must list them.
    """

    bucket: str
    origins: tuple[str, ...] = attrs.field(converter=parse_cors_origins)
    recordings_prefix: str
    staging_prefix: str
    days: int

    @classmethod
    def from_environment(cls, environment: DeploymentSettings) -> BucketExpectations:
        """Derive the expectations from the deployment's settings."""
        settings = environment.recording
        return cls(
            bucket=settings.s3_bucket_name,
            origins=environment.cors_origins,
            recordings_prefix=settings.s3_recordings_prefix,
            staging_prefix=staging_prefix(settings),
            days=lifecycle_days(settings),
        )

    def encryption(self) -> ServerSideEncryptionConfigurationTypeDef:
        """Return the ``ServerSideEncryptionConfiguration`` to put."""
        return {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}

    def cors_rule(self) -> CORSRuleTypeDef | None:
        """Return the CORS rule for the configured origins, or None when there are none."""
        if not self.origins:
            return None
        return {
            "ID": CORS_RULE_ID,
            "AllowedOrigins": list(self.origins),
            "AllowedMethods": list(CORS_METHODS),
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": CORS_MAX_AGE_SECONDS,
        }

    def lifecycle_rules(self) -> list[LifecycleRuleTypeDef]:
        """Return the lifecycle rules: abort incomplete multipart uploads, expire staging."""
        return [
            {
                "ID": LIFECYCLE_ABORT_RULE_ID,
                "Filter": {"Prefix": self.recordings_prefix},
                "Status": "Enabled",
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": self.days},
            },
            {
                "ID": LIFECYCLE_STAGING_RULE_ID,
                "Filter": {"Prefix": self.staging_prefix},
                "Status": "Enabled",
                "Expiration": {"Days": self.days},
            },
        ]

    def public_access_block(self) -> PublicAccessBlockConfigurationTypeDef:
        """Return the ``PublicAccessBlockConfiguration`` to put: everything blocked."""
        return {
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        }

    def configuration(self) -> dict[str, Any]:
        """Return the whole expected configuration, in the S3 API's shapes (JSON-able)."""
        rule = self.cors_rule()
        return {
            "bucket": self.bucket,
            "encryption": self.encryption(),
            "cors": None if rule is None else {"CORSRules": [rule]},
            "lifecycle": {"Rules": self.lifecycle_rules()},
            "public_access_block": self.public_access_block(),
        }
