"""HMAC-signed upload policies and download grants, and their verification.

An upload ticket looks like an S3 presigned POST: ``key``, ``Content-Type``,
``policy`` and ``signature`` fields. The policy is base64url JSON naming the
bucket, the exact key, the exact content type, the size range 1..max and the
expiry, and optionally the body's SHA-256 (then the ticket also carries S3's
``x-amz-checksum-algorithm`` and ``x-amz-checksum-sha256`` fields, which the
form must repeat exactly); the signature is HMAC-SHA256 of the policy under
the storage's secret. A download URL's query carries an expiry, the response
content type and filename, and an HMAC over all of them, the bucket and the
key. A part URL of a multipart upload carries the upload id, the part number,
the exact size and an expiry, with an HMAC over them, the bucket and the key.
Each kind of signature has its own context prefix, so one can never pass as
the other. Nothing is trusted that the secret did not sign.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import math
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import attrs

from helppet_recordings.storage._checksums import sha256_fields
from helppet_recordings.storage._http import content_disposition
from helppet_recordings.storage.local.refusal import (
    LocalStorageRefusal,
    condition_failed,
    signature_mismatch,
)

__all__ = [
    "DownloadGrant",
    "PartGrant",
    "Signer",
    "UploadPolicy",
]

_POLICY_VERSION: Final = 1
_UPLOAD_CONTEXT: Final = b"helppet-local-upload-v1\n"
_DOWNLOAD_CONTEXT: Final = b"helppet-local-download-v1\n"
_PART_CONTEXT: Final = b"helppet-local-part-v1\n"
_PART_PARAMETERS: Final = ("uploadId", "partNumber", "size", "expires", "sig")
_ALLOWED_FIELDS: Final = frozenset({"key", "content-type", "policy", "signature"})
_IGNORED_FIELD_PREFIX: Final = "x-ignore-"


@attrs.frozen(kw_only=True)
class UploadPolicy:
    """What a verified upload ticket allows: one object at ``key`` of ``content_type``."""

    bucket: str
    key: str
    content_type: str
    min_size: int
    max_size: int
    expires_at: int
    """Unix time after which the ticket is refused."""
    sha256: str | None = None
    """The body's SHA-256 the ticket pins (64 lower-case hex characters), or None."""

    @property
    def checksum_fields(self) -> dict[str, str]:
        """The checksum fields the form must carry exactly (none when nothing is pinned)."""
        return {} if self.sha256 is None else sha256_fields(self.sha256)


@attrs.frozen(kw_only=True)
class DownloadGrant:
    """A verified download URL: which object, and how to present it."""

    key: str
    content_type: str
    filename: str
    expires_at: int

    @property
    def content_disposition(self) -> str:
        """The ``attachment`` Content-Disposition naming ``filename``."""
        return content_disposition(self.filename)


@attrs.frozen(kw_only=True)
class PartGrant:
    """A verified part URL: exactly ``size`` bytes for part ``part_number`` of one upload."""

    key: str
    upload_id: str
    part_number: int
    size: int
    expires_at: int


class Signer:
    """Signs and verifies the tickets and download URLs of one bucket under one secret.

    ``clock`` returns Unix time; expiries are whole seconds.
    """

    def __init__(self, secret: bytes, bucket: str, clock: Callable[[], float]) -> None:
        self._secret = secret
        self._bucket = bucket
        self._clock = clock

    def upload_fields(
        self,
        *,
        key: str,
        content_type: str,
        max_size: int,
        expires_in: int,
        sha256: str | None = None,
    ) -> dict[str, str]:
        """Return the form fields of a POST upload of 1 to ``max_size`` bytes at ``key``.

        With ``sha256`` (64 hex characters) the policy pins the body's digest
        and the fields carry it as S3's checksum fields; ``ValueError`` if it
        is not a digest.
        """
        checksum = sha256_fields(sha256) if sha256 is not None else {}
        expires_at = math.floor(self._clock()) + expires_in
        document: dict[str, object] = {
            "v": _POLICY_VERSION,
            "bucket": self._bucket,
            "key": key,
            "content_type": content_type,
            "min": 1,
            "max": max_size,
            "exp": expires_at,
            "expiration": dt.datetime.fromtimestamp(expires_at, dt.UTC).isoformat(),
        }
        if sha256 is not None:
            # An optional member: policies signed without one keep verifying as before.
            document["sha256"] = sha256.lower()
        policy = _b64encode(json.dumps(document, separators=(",", ":"), sort_keys=True))
        return {
            "key": key,
            "Content-Type": content_type,
            **checksum,
            "policy": policy,
            "signature": self._sign(_UPLOAD_CONTEXT + policy.encode("ascii")),
        }

    def verify_upload(self, fields: Mapping[str, str]) -> UploadPolicy:
        """Check an upload's form fields (lower-case names) against its signed policy.

        Raises :class:`LocalStorageRefusal` as
        :meth:`~helppet_recordings.storage.local.LocalStorage.verify_upload`
        documents; whether the key maps to a safe path is the caller's check.
        """
        for name in ("key", "policy", "signature"):
            if name not in fields:
                raise LocalStorageRefusal(
                    400,
                    "InvalidArgument",
                    f"Bucket POST must contain a field named '{name}'. "
                    "If it is specified, please check the order of the fields.",
                    ArgumentName=name,
                )
        policy_text, signature = fields["policy"], fields["signature"]
        if not _signature_matches(
            signature, self._sign(_UPLOAD_CONTEXT + policy_text.encode("utf-8"))
        ):
            raise signature_mismatch()
        policy = _parse_policy(policy_text)
        if policy.bucket != self._bucket:
            raise condition_failed("bucket", policy.bucket)
        if math.floor(self._clock()) > policy.expires_at:
            raise LocalStorageRefusal(
                403, "AccessDenied", "Invalid according to Policy: Policy expired."
            )
        if fields["key"] != policy.key:
            raise condition_failed("key", policy.key)
        if fields.get("content-type") != policy.content_type:
            raise condition_failed("Content-Type", policy.content_type)
        checksum = policy.checksum_fields
        for name, value in checksum.items():
            if fields.get(name) != value:
                raise condition_failed(name, value)
        # Checksum fields a policy does not pin are extra fields: refused, never trusted.
        extra = sorted(
            name
            for name in fields
            if name not in _ALLOWED_FIELDS
            and name not in checksum
            and not name.startswith(_IGNORED_FIELD_PREFIX)
        )
        if extra:
            raise LocalStorageRefusal(
                403,
                "AccessDenied",
                f"Invalid according to Policy: Extra input fields: {', '.join(extra)}",
            )
        return policy

    def download_query(self, *, key: str, expires_in: int, content_type: str, filename: str) -> str:
        """Return the query of a download URL for ``key``: ``expires``, ``ct``, ``fn``, ``sig``."""
        expires_at = math.floor(self._clock()) + expires_in
        return urllib.parse.urlencode(
            {
                "expires": str(expires_at),
                "ct": content_type,
                "fn": filename,
                "sig": self._download_signature(key, expires_at, content_type, filename),
            },
            quote_via=urllib.parse.quote,
        )

    def verify_download(self, key: str, query: Mapping[str, str]) -> DownloadGrant:
        """Check a download URL's query for ``key``; raise :class:`LocalStorageRefusal` 403."""
        missing = [name for name in ("expires", "ct", "fn", "sig") if not query.get(name)]
        if missing:
            raise LocalStorageRefusal(
                403,
                "AccessDenied",
                "Query-string authentication requires the expires, ct, fn and sig parameters",
            )
        expires, content_type = query["expires"], query["ct"]
        filename, signature = query["fn"], query["sig"]
        if not expires.isascii() or not expires.isdigit() or len(expires) > 12:
            raise LocalStorageRefusal(403, "AccessDenied", "Invalid expires parameter")
        expires_at = int(expires)
        expected = self._download_signature(key, expires_at, content_type, filename)
        self._check_url(signature, expected, expires_at)
        return DownloadGrant(
            key=key, content_type=content_type, filename=filename, expires_at=expires_at
        )

    def part_query(
        self, *, key: str, upload_id: str, part_number: int, size: int, expires_in: int
    ) -> str:
        """Return a part URL's query: uploadId, partNumber, size, expires and sig."""
        expires_at = math.floor(self._clock()) + expires_in
        signature = self._part_signature(key, upload_id, part_number, size, expires_at)
        return urllib.parse.urlencode(
            {
                "uploadId": upload_id,
                "partNumber": str(part_number),
                "size": str(size),
                "expires": str(expires_at),
                "sig": signature,
            }
        )

    def verify_part(self, key: str, query: Mapping[str, str]) -> PartGrant:
        """Check a part URL's query for ``key``; raise :class:`LocalStorageRefusal` 403.

        ``AccessDenied`` when a parameter is missing or malformed or the URL
        expired, ``SignatureDoesNotMatch`` when anything signed was changed.
        """
        if any(not query.get(name) for name in _PART_PARAMETERS):
            raise LocalStorageRefusal(
                403,
                "AccessDenied",
                "Query-string authentication requires the uploadId, partNumber, size, "
                "expires and sig parameters",
            )
        numbers = [query[name] for name in ("partNumber", "size", "expires")]
        if not all(text.isascii() and text.isdigit() and len(text) <= 12 for text in numbers):
            raise LocalStorageRefusal(403, "AccessDenied", "Invalid part URL parameter")
        part_number, size, expires_at = (int(text) for text in numbers)
        upload_id = query["uploadId"]
        expected = self._part_signature(key, upload_id, part_number, size, expires_at)
        self._check_url(query["sig"], expected, expires_at)
        return PartGrant(
            key=key, upload_id=upload_id, part_number=part_number, size=size, expires_at=expires_at
        )

    def _check_url(self, signature: str, expected: str, expires_at: int) -> None:
        """Refuse a signed URL whose signature does not match, then one that expired (403)."""
        if not _signature_matches(signature, expected):
            raise signature_mismatch()
        if math.floor(self._clock()) > expires_at:
            raise LocalStorageRefusal(403, "AccessDenied", "Request has expired")

    def _part_signature(
        self, key: str, upload_id: str, part_number: int, size: int, expires_at: int
    ) -> str:
        canonical = json.dumps(
            [self._bucket, key, upload_id, part_number, size, expires_at], separators=(",", ":")
        )
        return self._sign(_PART_CONTEXT + canonical.encode("ascii"))

    def _sign(self, message: bytes) -> str:
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _download_signature(
        self, key: str, expires_at: int, content_type: str, filename: str
    ) -> str:
        canonical = json.dumps(
            [self._bucket, key, expires_at, content_type, filename], separators=(",", ":")
        )
        return self._sign(_DOWNLOAD_CONTEXT + canonical.encode("ascii"))


# ------------------------------------------------------------------------ helpers


def _b64encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def _signature_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("ascii"))


def _parse_policy(text: str) -> UploadPolicy:
    """Decode a policy the secret signed (so malformed means a bug or a leaked secret)."""
    try:
        padded = text + "=" * (-len(text) % 4)
        document = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if not isinstance(document, dict) or document.get("v") != _POLICY_VERSION:
            raise TypeError
        policy = UploadPolicy(
            bucket=_typed(document, "bucket", str),
            key=_typed(document, "key", str),
            content_type=_typed(document, "content_type", str),
            min_size=_typed(document, "min", int),
            max_size=_typed(document, "max", int),
            expires_at=_typed(document, "exp", int),
            sha256=_pinned_sha256(document),
        )
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        raise LocalStorageRefusal(
            400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON."
        ) from None
    return policy


def _pinned_sha256(document: dict[str, Any]) -> str | None:
    """Return the policy's optional ``sha256`` (64 lower-case hex characters), or None."""
    if "sha256" not in document:
        return None
    value = _typed(document, "sha256", str)
    if len(value) != 64 or not all(ch in "0123456789abcdef" for ch in value):
        raise ValueError(value)
    return value


_T = TypeVar("_T")


def _typed(document: dict[str, Any], name: str, kind: type[_T]) -> _T:
    value = document.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(name)
    return value
