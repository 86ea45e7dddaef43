"""The bucket configuration a deployment expects: what it is, how to check it, how to make it.

``doctor`` checks a bucket against :class:`BucketExpectations`; ``bucket-setup``
shows :meth:`BucketExpectations.configuration` and, with ``--apply``, puts
the parts that are missing (:func:`apply_configuration`). The evaluators are
pure functions of the documents S3 returns, so they are the single definition
of "as expected" for both commands.

Expected, for the bucket ``S3_BUCKET_NAME``:

- default encryption (SSE-S3 ``AES256``; ``aws:kms`` is accepted too);
- CORS letting each ``HELPPET_CORS_ORIGINS`` origin POST (form uploads) and
  PUT (multipart parts), exposing ``ETag`` (the client needs each part's);
- lifecycle rules: abort incomplete multipart uploads under
  ``S3_RECORDINGS_PREFIX`` and expire unverified uploads under the staging
  prefix, both after :func:`lifecycle_days`; and no rule that expires
  verified recordings;
- Block Public Access on, all four settings.
"""

from __future__ import annotations

from helppet_recordings.cli.bucket.applying import PartResult, apply_configuration
from helppet_recordings.cli.bucket.evaluation import (
    evaluate_cors,
    evaluate_lifecycle,
    evaluate_public_access,
)
from helppet_recordings.cli.bucket.expectations import (
    CORS_MAX_AGE_SECONDS as CORS_MAX_AGE_SECONDS,
)
from helppet_recordings.cli.bucket.expectations import (
    CORS_METHODS as CORS_METHODS,
)
from helppet_recordings.cli.bucket.expectations import (
    CORS_RULE_ID,
    LIFECYCLE_ABORT_RULE_ID,
    LIFECYCLE_STAGING_RULE_ID,
    PUBLIC_ACCESS_SETTINGS,
    STAGING_PREFIX,
    BucketExpectations,
    lifecycle_days,
    staging_prefix,
)
from helppet_recordings.cli.bucket.expectations import (
    UPLOAD_METHODS as UPLOAD_METHODS,
)
from helppet_recordings.cli.bucket.expectations import (
    Part as Part,
)
from helppet_recordings.cli.bucket.reading import ConfigRead, has_default_encryption, read_part

__all__ = [
    "CORS_RULE_ID",
    "LIFECYCLE_ABORT_RULE_ID",
    "LIFECYCLE_STAGING_RULE_ID",
    "PUBLIC_ACCESS_SETTINGS",
    "STAGING_PREFIX",
    "BucketExpectations",
    "ConfigRead",
    "PartResult",
    "apply_configuration",
    "evaluate_cors",
    "evaluate_lifecycle",
    "evaluate_public_access",
    "has_default_encryption",
    "lifecycle_days",
    "read_part",
    "staging_prefix",
]
