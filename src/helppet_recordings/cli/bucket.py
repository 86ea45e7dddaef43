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

import math
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from helppet_recordings.cli.findings import Finding, Status
from helppet_recordings.settings import RecordingSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import (
        CORSRuleTypeDef,
        LifecycleRuleTypeDef,
        PublicAccessBlockConfigurationTypeDef,
        ServerSideEncryptionConfigurationTypeDef,
    )

    from helppet_recordings.environment import DeploymentSettings

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
    """What the bucket should look like for a deployment."""

    bucket: str
    origins: tuple[str, ...]
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


# ------------------------------------------------------------------------------ evaluation


def evaluate_cors(
    rules: list[Mapping[str, Any]] | None, expect: BucketExpectations
) -> tuple[Finding, bool]:
    """Check CORS; return the finding and whether ``bucket-setup`` must put the rule."""
    rules = rules or []
    wildcard = [rule for rule in rules if "*" in rule.get("AllowedOrigins", [])]
    if not expect.origins:
        if wildcard:
            return _finding(
                "s3.cors",
                Status.WARN,
                "a CORS rule lets every origin ('*') use the bucket",
                "narrow AllowedOrigins to the clinic's web app, and list it in "
                "HELPPET_CORS_ORIGINS",
            ), False
        return _finding(
            "s3.cors",
            Status.OK,
            "no browser origins configured (HELPPET_CORS_ORIGINS); phone apps need no CORS",
        ), False
    problems: list[str] = []
    for origin in expect.origins:
        for method in UPLOAD_METHODS:
            rule = _first_cors_match(rules, origin, method)
            if rule is None:
                problems.append(f"{origin} may not {method}")
            elif not any(h.lower() == "etag" for h in rule.get("ExposeHeaders", [])):
                problems.append(f"{origin} {method}: ETag not exposed")
    if problems:
        return _finding(
            "s3.cors",
            Status.FAIL,
            "CORS does not let browsers upload: " + "; ".join(problems),
            "run `helppet-recordings bucket-setup --apply`, or add a rule allowing "
            f"{', '.join(UPLOAD_METHODS)} from HELPPET_CORS_ORIGINS and exposing ETag",
        ), True
    if wildcard:
        return _finding(
            "s3.cors",
            Status.WARN,
            "uploads from the configured origins work, but a rule lets every origin ('*') in",
            "remove '*' from AllowedOrigins",
        ), False
    return _finding(
        "s3.cors",
        Status.OK,
        f"{', '.join(expect.origins)} may POST and PUT; ETag is exposed",
    ), False


def _first_cors_match(
    rules: list[Mapping[str, Any]], origin: str, method: str
) -> Mapping[str, Any] | None:
    # S3 applies the first rule whose origin and method match.
    for rule in rules:
        methods = {m.upper() for m in rule.get("AllowedMethods", [])}
        if method in methods and any(
            _origin_matches(pattern, origin) for pattern in rule.get("AllowedOrigins", [])
        ):
            return rule
    return None


def _origin_matches(pattern: str, origin: str) -> bool:
    expression = ".*".join(re.escape(part) for part in pattern.rstrip("/").split("*"))
    return re.fullmatch(expression, origin, flags=re.IGNORECASE) is not None


def evaluate_lifecycle(
    rules: list[Mapping[str, Any]] | None, expect: BucketExpectations
) -> tuple[Finding, bool]:
    """Check lifecycle rules; return the finding and whether ``bucket-setup`` must add ours."""
    enabled = [rule for rule in rules or [] if rule.get("Status") == "Enabled"]
    missing: list[str] = []
    problems: list[str] = []
    abort = [
        rule
        for rule in enabled
        if "AbortIncompleteMultipartUpload" in rule and _covers(rule, expect.recordings_prefix)
    ]
    if not abort:
        missing.append(
            f"no rule aborts incomplete multipart uploads under '{expect.recordings_prefix}'"
        )
    staging = [
        rule
        for rule in enabled
        if "Days" in rule.get("Expiration", {}) and _covers(rule, expect.staging_prefix)
    ]
    if not staging:
        missing.append(f"no rule expires unverified uploads under '{expect.staging_prefix}'")
    for rule in staging:
        if rule["Expiration"]["Days"] < expect.days:
            problems.append(
                f"rule '{rule.get('ID', '?')}' expires staged uploads after "
                f"{rule['Expiration']['Days']} days, before the sweeper may settle them "
                f"(at least {expect.days})"
            )
    for rule in enabled:
        if "Expiration" in rule and _may_expire_verified(rule, expect):
            problems.append(
                f"rule '{rule.get('ID', '?')}' expires objects under "
                f"'{_scope(rule)[0]}', which holds verified recordings"
            )
    if problems:
        return _finding(
            "s3.lifecycle",
            Status.FAIL,
            "; ".join(problems + missing),
            "remove or narrow these rules to the staging prefix "
            f"'{expect.staging_prefix}' (bucket-setup leaves other rules alone)",
        ), bool(missing)
    if missing:
        return _finding(
            "s3.lifecycle",
            Status.FAIL,
            "; ".join(missing),
            "run `helppet-recordings bucket-setup --apply` to add the rules",
        ), True
    return _finding(
        "s3.lifecycle",
        Status.OK,
        f"incomplete multipart uploads are aborted and '{expect.staging_prefix}' expires "
        f"(after {min(r['Expiration']['Days'] for r in staging)} days); "
        "no rule expires verified recordings",
    ), False


def _scope(rule: Mapping[str, Any]) -> tuple[str, bool]:
    """Return a rule's prefix and whether it applies to every object under it.

    A rule narrowed by tags or object size does not apply to every object.
    """
    if "Filter" not in rule:
        return str(rule.get("Prefix", "")), True
    rule_filter: Mapping[str, Any] = rule["Filter"] or {}
    if "And" in rule_filter:
        conditions: Mapping[str, Any] = rule_filter["And"]
        return str(conditions.get("Prefix", "")), set(conditions) <= {"Prefix"}
    return str(rule_filter.get("Prefix", "")), set(rule_filter) <= {"Prefix"}


def _covers(rule: Mapping[str, Any], prefix: str) -> bool:
    rule_prefix, unconditional = _scope(rule)
    return unconditional and prefix.startswith(rule_prefix)


def _may_expire_verified(rule: Mapping[str, Any], expect: BucketExpectations) -> bool:
    rule_prefix, _ = _scope(rule)  # tags may be added later: any expiration is suspect
    if rule_prefix.startswith(expect.staging_prefix):
        return False
    return rule_prefix.startswith(expect.recordings_prefix) or expect.recordings_prefix.startswith(
        rule_prefix
    )


def evaluate_public_access(config: Mapping[str, Any] | None) -> tuple[Finding, bool]:
    """Check Block Public Access; return the finding and whether it must be put."""
    config = config or {}
    off = [name for name in PUBLIC_ACCESS_SETTINGS if config.get(name) is not True]
    if not off:
        return _finding("s3.public_access", Status.OK, "Block Public Access is on"), False
    text = (
        "no Block Public Access configuration on the bucket"
        if not config
        else f"Block Public Access is off for {', '.join(off)}"
    )
    return _finding(
        "s3.public_access",
        Status.FAIL,
        text,
        "run `helppet-recordings bucket-setup --apply` (doctor reads the bucket's own "
        "setting, not the account's)",
    ), True


def _finding(check: str, status: Status, message: str, fix: str | None = None) -> Finding:
    return Finding(check=check, status=status, message=message, fix=fix)


# ------------------------------------------------------------------------------ reading


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


# ------------------------------------------------------------------------------ applying


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
