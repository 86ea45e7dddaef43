"""Evaluators: pure functions of the documents S3 returns, the one definition of "as expected"."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import attrs

from helppet_recordings.cli.bucket.expectations import (
    LIFECYCLE_ABORT_RULE_ID,
    LIFECYCLE_STAGING_RULE_ID,
    PUBLIC_ACCESS_SETTINGS,
    UPLOAD_METHODS,
    BucketExpectations,
)
from helppet_recordings.cli.findings import Finding, Status


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
    # Case-sensitive, as S3 compares: ``origin`` is lowercased, as browsers send it, so a
    # rule naming ``https://App.Example.org`` does not let that origin's uploads in.
    expression = ".*".join(re.escape(part) for part in pattern.rstrip("/").split("*"))
    return re.fullmatch(expression, origin) is not None


_OURS: Final = frozenset({LIFECYCLE_ABORT_RULE_ID, LIFECYCLE_STAGING_RULE_ID})
_REPLACE_OURS: Final = (
    "run `helppet-recordings bucket-setup --apply` to replace the package's rules"
)


@attrs.define
class _Verdicts:
    """What the lifecycle rules get wrong: failures, warnings, and the rules behind each."""

    missing: list[str] = attrs.Factory(list)
    failures: list[str] = attrs.Factory(list)
    failing: list[Mapping[str, Any]] = attrs.Factory(list)
    warnings: list[str] = attrs.Factory(list)
    warning: list[Mapping[str, Any]] = attrs.Factory(list)


def evaluate_lifecycle(
    rules: list[Mapping[str, Any]] | None, expect: BucketExpectations
) -> tuple[Finding, bool]:
    """Check lifecycle rules; return the finding and whether ``bucket-setup`` must put ours.

    Ours are needed when one is missing, or when a rule of ours (by its ID) is
    at fault: an expiration shorter than uploads may take (written before
    ``S3_PRESIGNED_URL_EXPIRATION`` was raised, say), or over a prefix that now
    holds verified recordings. The bucket's own rules are never ours to change.

    Failures: a rule is missing, staged uploads expire before the sweeper may
    settle them, or verified recordings may expire. A warning: a rule aborts
    multipart uploads under the recordings prefix sooner than
    ``expect.days`` after they start, so a phone's resumable upload may be
    aborted while it is still allowed to finish (it fails and starts over; no
    verified audio is lost).
    """
    enabled = [rule for rule in rules or [] if rule.get("Status") == "Enabled"]
    verdicts = _Verdicts()
    staging = _check_presence(enabled, expect, verdicts)
    _check_early_aborts(enabled, expect, verdicts)
    for rule in enabled:
        if _expires_objects(rule) and _may_expire_verified(rule, expect):
            verdicts.failing.append(rule)
            verdicts.failures.append(
                f"rule '{rule.get('ID', '?')}' expires objects under "
                f"'{_scope(rule)[0]}', which holds verified recordings"
            )
    if verdicts.failures or verdicts.missing or verdicts.warnings:
        return _lifecycle_finding(verdicts, expect)
    return _finding(
        "s3.lifecycle",
        Status.OK,
        f"incomplete multipart uploads are aborted and '{expect.staging_prefix}' expires "
        f"(after {min(r['Expiration']['Days'] for r in staging)} days); "
        "no rule expires verified recordings",
    ), False


def _check_presence(
    enabled: list[Mapping[str, Any]], expect: BucketExpectations, verdicts: _Verdicts
) -> list[Mapping[str, Any]]:
    """Note a missing abort or staging rule, and staging expiring too early; return staging's."""
    abort = [
        rule
        for rule in enabled
        if "AbortIncompleteMultipartUpload" in rule and _covers(rule, expect.recordings_prefix)
    ]
    if not abort:
        verdicts.missing.append(
            f"no rule aborts incomplete multipart uploads under '{expect.recordings_prefix}'"
        )
    staging = [
        rule
        for rule in enabled
        if "Days" in rule.get("Expiration", {}) and _covers(rule, expect.staging_prefix)
    ]
    if not staging:
        verdicts.missing.append(
            f"no rule expires unverified uploads under '{expect.staging_prefix}'"
        )
    for rule in staging:
        if rule["Expiration"]["Days"] < expect.days:
            verdicts.failing.append(rule)
            verdicts.failures.append(
                f"rule '{rule.get('ID', '?')}' expires staged uploads after "
                f"{rule['Expiration']['Days']} days, before the sweeper may settle them "
                f"(at least {expect.days})"
            )
    return staging


def _check_early_aborts(
    enabled: list[Mapping[str, Any]], expect: BucketExpectations, verdicts: _Verdicts
) -> None:
    """Warn about rules aborting multipart uploads under the recordings prefix too soon."""
    for rule in enabled:
        days = (rule.get("AbortIncompleteMultipartUpload") or {}).get("DaysAfterInitiation")
        if isinstance(days, int) and days < expect.days and _overlaps(rule, expect):
            verdicts.warning.append(rule)
            verdicts.warnings.append(
                f"rule '{rule.get('ID', '?')}' aborts multipart uploads after {days} "
                f"day{'' if days == 1 else 's'}, while a resumable upload under "
                f"'{expect.recordings_prefix}' may still be completed (at least {expect.days})"
            )


def _lifecycle_finding(verdicts: _Verdicts, expect: BucketExpectations) -> tuple[Finding, bool]:
    """Return the finding for what is wrong, and whether bucket-setup must put ours."""
    ours_at_fault = any(rule.get("ID") in _OURS for rule in verdicts.failing + verdicts.warning)
    fixes: list[str] = []
    if verdicts.missing and not ours_at_fault:
        fixes.append("run `helppet-recordings bucket-setup --apply` to add the rules")
    if ours_at_fault:
        fixes.append(_REPLACE_OURS)
    if any(rule.get("ID") not in _OURS for rule in verdicts.failing):
        fixes.append(
            "remove or narrow these rules to the staging prefix "
            f"'{expect.staging_prefix}' (bucket-setup leaves other rules alone)"
        )
    if any(rule.get("ID") not in _OURS for rule in verdicts.warning):
        fixes.append(
            f"raise their DaysAfterInitiation to at least {expect.days}, or narrow them away "
            f"from '{expect.recordings_prefix}' (bucket-setup leaves other rules alone)"
        )
    status = Status.FAIL if verdicts.failures or verdicts.missing else Status.WARN
    message = "; ".join(verdicts.failures + verdicts.missing + verdicts.warnings)
    finding = _finding("s3.lifecycle", status, message, "; ".join(fixes))
    return finding, bool(verdicts.missing) or ours_at_fault


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


def _overlaps(rule: Mapping[str, Any], expect: BucketExpectations) -> bool:
    """Whether the rule's prefix and the recordings prefix share objects (tags aside)."""
    rule_prefix, _ = _scope(rule)
    return rule_prefix.startswith(expect.recordings_prefix) or expect.recordings_prefix.startswith(
        rule_prefix
    )


def _expires_objects(rule: Mapping[str, Any]) -> bool:
    """Whether the rule expires current objects.

    ``ExpiredObjectDeleteMarker`` alone removes only delete markers that no
    older version is left behind, never an object.
    """
    expiration = rule.get("Expiration") or {}
    return "Days" in expiration or "Date" in expiration


def _may_expire_verified(rule: Mapping[str, Any], expect: BucketExpectations) -> bool:
    rule_prefix, _ = _scope(rule)  # tags may be added later: any expiration is suspect
    if rule_prefix.startswith(expect.staging_prefix):
        return False
    return _overlaps(rule, expect)


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
