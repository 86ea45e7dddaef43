"""Applying the expected configuration: put each part the bucket lacks, keep the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import attrs

from helppet_recordings.cli.bucket.evaluation import (
    evaluate_cors,
    evaluate_lifecycle,
    evaluate_public_access,
)
from helppet_recordings.cli.bucket.expectations import (
    CORS_RULE_ID,
    LIFECYCLE_ABORT_RULE_ID,
    LIFECYCLE_STAGING_RULE_ID,
    BucketExpectations,
    Part,
)
from helppet_recordings.cli.bucket.reading import has_default_encryption, read_part

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@attrs.frozen(kw_only=True)
class PartResult:
    """What ``bucket-setup --apply`` did to one part of the configuration."""

    part: str
    action: Literal["unchanged", "applied", "failed"]
    message: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape: ``part``, ``action``, ``message``, ``fix``."""
        return {"part": self.part, "action": self.action, "message": self.message, "fix": self.fix}


_Put = Callable[["S3Client", BucketExpectations, Any], None]
_Plan = Callable[[Any, BucketExpectations], tuple[bool, str]]


def apply_configuration(client: S3Client, expect: BucketExpectations) -> list[PartResult]:
    """Put each part of the expected configuration that the bucket lacks.

    Parts already as expected are left alone, so a second run changes
    nothing. Rules of the bucket's own (other CORS or lifecycle rules) are
    kept; ours are added or replaced by their IDs.
    """
    steps: list[tuple[Part, _Plan, _Put]] = [
        ("encryption", _encryption_plan, _put_encryption),
        ("cors", _cors_plan, _put_cors),
        ("lifecycle", _lifecycle_plan, _put_lifecycle),
        ("public_access", _public_access_plan, _put_public_access),
    ]
    results: list[PartResult] = []
    for part, decide, put in steps:
        read = read_part(client, expect.bucket, part)
        if read.unavailable is not None:
            results.append(
                PartResult(
                    part=part,
                    action="failed",
                    message=read.unavailable.message.replace("could not check", "not applied"),
                    fix=read.unavailable.fix,
                )
            )
            continue
        needed, note = decide(read.document, expect)
        if not needed:
            results.append(PartResult(part=part, action="unchanged", message=note))
            continue
        results.append(_put(client, expect, part, read.document, put=put, note=note))
    return results


def _put(
    client: S3Client,
    expect: BucketExpectations,
    part: str,
    current: Any,
    *,
    put: _Put,
    note: str,
) -> PartResult:
    import botocore.exceptions  # noqa: PLC0415

    try:
        put(client, expect, current)
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "")) or "error"
        fix = (
            "use credentials allowed to change the bucket's configuration"
            if code == "AccessDenied"
            else "set it with the storage provider's own tools"
            if code == "NotImplemented"
            else None
        )
        return PartResult(part=part, action="failed", message=f"not applied: {code}", fix=fix)
    except botocore.exceptions.BotoCoreError as exc:
        return PartResult(part=part, action="failed", message=f"not applied: {type(exc).__name__}")
    return PartResult(part=part, action="applied", message=note)


def _encryption_plan(document: Any, expect: BucketExpectations) -> tuple[bool, str]:
    current = has_default_encryption(document)
    if current is None:
        return True, "default encryption set to AES256 (SSE-S3)"
    return False, f"default encryption already on ({current[0]})"


def _put_encryption(client: S3Client, expect: BucketExpectations, _current: Any) -> None:
    client.put_bucket_encryption(
        Bucket=expect.bucket, ServerSideEncryptionConfiguration=expect.encryption()
    )


def _cors_plan(document: Any, expect: BucketExpectations) -> tuple[bool, str]:
    finding, needed = evaluate_cors(document, expect)
    if needed:
        return True, f"CORS rule '{CORS_RULE_ID}' set for {', '.join(expect.origins)}"
    return False, finding.message


def _put_cors(client: S3Client, expect: BucketExpectations, current: Any) -> None:
    rule = expect.cors_rule()
    assert rule is not None  # noqa: S101 - _cors_plan never asks without origins
    kept = [r for r in current or [] if r.get("ID") != CORS_RULE_ID]
    client.put_bucket_cors(Bucket=expect.bucket, CORSConfiguration={"CORSRules": [rule, *kept]})


def _lifecycle_plan(document: Any, expect: BucketExpectations) -> tuple[bool, str]:
    finding, needed = evaluate_lifecycle(document, expect)
    if needed:
        return True, (
            f"lifecycle rules '{LIFECYCLE_ABORT_RULE_ID}' and '{LIFECYCLE_STAGING_RULE_ID}' "
            f"set ({expect.days} days)"
        )
    return False, finding.message


def _put_lifecycle(client: S3Client, expect: BucketExpectations, current: Any) -> None:
    ours = {LIFECYCLE_ABORT_RULE_ID, LIFECYCLE_STAGING_RULE_ID}
    kept = [rule for rule in current or [] if rule.get("ID") not in ours]
    client.put_bucket_lifecycle_configuration(
        Bucket=expect.bucket,
        LifecycleConfiguration={"Rules": [*kept, *expect.lifecycle_rules()]},
    )


def _public_access_plan(document: Any, expect: BucketExpectations) -> tuple[bool, str]:
    finding, needed = evaluate_public_access(document)
    if needed:
        return True, "Block Public Access turned on (all four settings)"
    return False, finding.message


def _put_public_access(client: S3Client, expect: BucketExpectations, _current: Any) -> None:
    client.put_public_access_block(
        Bucket=expect.bucket, PublicAccessBlockConfiguration=expect.public_access_block()
    )
