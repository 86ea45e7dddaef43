"""LocalStorage's signed upload tickets: policy, secret, bucket, expiry and pinned SHA-256."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from helppet_recordings.models import UploadTicket
from helppet_recordings.storage.local import (
    LocalStorage,
)
from helppet_recordings.testing.storage_contract import AUDIO
from tests.support.local_forms import (
    KEY,
    SECRET,
    FakeClock,
    assert_refused,
    encode_form,
    error_code,
    files_under,
    make_storage,
    make_ticket,
    receive,
    split_chunks,
)

# ---------------------------------------------------------------------- signed tickets


def test_ticket_policy_is_signed_json(tmp_path: Path) -> None:
    """The policy names bucket, key, type, size range and expiry; the signature is its HMAC."""
    clock = FakeClock()
    storage = make_storage(tmp_path, clock=clock)
    ticket = make_ticket(storage, max_size=4321)
    assert set(ticket.fields) == {"key", "Content-Type", "policy", "signature"}
    policy_text = ticket.fields["policy"]
    document = json.loads(base64.urlsafe_b64decode(policy_text + "=" * (-len(policy_text) % 4)))
    assert document["bucket"] == "local"
    assert (document["key"], document["content_type"]) == (KEY, "audio/mp4")
    assert (document["min"], document["max"]) == (1, 4321)
    assert document["exp"] == int(clock.now) + 600
    assert document["expiration"].startswith("2026-11-18T")
    expected = hmac.new(
        SECRET.encode(), b"helppet-local-upload-v1\n" + policy_text.encode(), hashlib.sha256
    ).hexdigest()
    assert ticket.fields["signature"] == expected


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"max_size": 0}, "max_size"),
        ({"expires_in": 0}, "expires_in"),
        ({"content_type": "audio/mp4\r\nX-Evil: 1"}, "content_type"),
        ({"key": "../escape.m4a"}, "segment"),
    ],
)
def test_create_upload_rejects_nonsense(
    tmp_path: Path, kwargs: dict[str, object], problem: str
) -> None:
    """Unsafe keys, header injection and non-positive limits are programming errors."""
    arguments: dict[str, object] = {
        "key": KEY,
        "content_type": "audio/mp4",
        "max_size": 10,
        "expires_in": 60,
        **kwargs,
    }
    with pytest.raises(ValueError, match=problem):
        make_storage(tmp_path).create_upload(**arguments)  # type: ignore[arg-type]


def test_ticket_from_another_secret_is_refused(tmp_path: Path) -> None:
    """A ticket signed with another secret does not verify."""
    storage = make_storage(tmp_path)
    other = LocalStorage(tmp_path / "other", secret="another-secret-0123456789")
    content_type, body = encode_form(make_ticket(other).fields.items(), AUDIO[:100])
    response = receive(storage, content_type, [body])
    assert (response.status, error_code(response)) == (403, "SignatureDoesNotMatch")
    assert files_under(tmp_path / "objects") == []


def test_ticket_for_another_bucket_is_refused(tmp_path: Path) -> None:
    """Two storages sharing a secret do not accept each other's tickets."""
    storage = make_storage(tmp_path)
    other = make_storage(tmp_path / "b", bucket="other")
    content_type, body = encode_form(make_ticket(other).fields.items(), AUDIO[:100])
    response = receive(storage, content_type, [body])
    assert (response.status, error_code(response)) == (403, "AccessDenied")
    assert b"$bucket" in response.body


def test_expiry_is_enforced_by_the_clock(tmp_path: Path) -> None:
    """A ticket works up to its expiry second and is refused after it."""
    clock = FakeClock()
    storage = make_storage(tmp_path, clock=clock)
    ticket = storage.create_upload(key=KEY, content_type="audio/mp4", max_size=99, expires_in=5)
    content_type, body = encode_form(ticket.fields.items(), b"abc")
    clock.now += 6
    response = receive(storage, content_type, [body])
    assert (response.status, error_code(response)) == (403, "AccessDenied")
    assert b"Policy expired" in response.body
    clock.now -= 1
    assert receive(storage, content_type, [body]).status == 204


# ------------------------------------------------------------------ pinned checksums

BODY = AUDIO[:1000]
BODY_SHA256 = hashlib.sha256(BODY).hexdigest()
OTHER = BODY[::-1]  # same size, other bytes


def _b64(digest_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(digest_hex)).decode()


def _pinned(
    storage: LocalStorage, *, sha256: str = BODY_SHA256, max_size: int = 10_000
) -> UploadTicket:
    return storage.create_upload(
        key=KEY, content_type="audio/mp4", max_size=max_size, expires_in=600, sha256=sha256
    )


def _policy_document(policy_text: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(policy_text + "=" * (-len(policy_text) % 4))
    )
    return document


def _signed(document: dict[str, Any]) -> dict[str, str]:
    """Fields of a policy the test signs itself with the storage's secret."""
    text = base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")
    signature = hmac.new(
        SECRET.encode(), b"helppet-local-upload-v1\n" + text.encode(), hashlib.sha256
    ).hexdigest()
    return {"policy": text, "signature": signature}


def _stored_state(storage: LocalStorage) -> tuple[list[str], bytes, bytes, int]:
    """Every file under the root, the object's bytes, its sidecar and its inode."""
    data = storage.root / "objects" / KEY
    meta = storage.root / "sidecars" / KEY
    return files_under(storage.root), data.read_bytes(), meta.read_bytes(), data.stat().st_ino


def test_pinned_ticket_signs_the_sha256_and_carries_s3_fields(tmp_path: Path) -> None:
    """The fields carry S3's checksum fields; the policy pins the digest in lower-case hex."""
    storage = make_storage(tmp_path)
    ticket = _pinned(storage, sha256=BODY_SHA256.upper())
    assert ticket.fields["x-amz-checksum-algorithm"] == "SHA256"
    assert ticket.fields["x-amz-checksum-sha256"] == _b64(BODY_SHA256)
    document = _policy_document(ticket.fields["policy"])
    assert (document["sha256"], document["v"]) == (BODY_SHA256, 1)
    plain = _policy_document(make_ticket(storage).fields["policy"])
    assert "sha256" not in plain  # the policy of an unpinned ticket is as it always was


def _hand_signed_policy(clock: FakeClock, **members: object) -> dict[str, object]:
    """A version-1 upload policy for KEY (audio/mp4, 60 s), with ``members`` added or replaced."""
    return {
        "v": 1,
        "bucket": "local",
        "key": KEY,
        "content_type": "audio/mp4",
        "min": 1,
        "exp": int(clock.now) + 60,
        **members,
    }


def test_a_policy_signed_without_a_sha256_member_still_verifies(tmp_path: Path) -> None:
    """A ticket signed before pinning existed (no sha256 member) stores any body, as before."""
    clock = FakeClock()
    storage = make_storage(tmp_path, clock=clock)
    document = _hand_signed_policy(clock, max=99, expiration="2026-11-18T00:00:00+00:00")
    fields = {"key": KEY, "Content-Type": "audio/mp4", **_signed(document)}
    content_type, body = encode_form(fields.items(), b"abc")
    assert receive(storage, content_type, [body]).status == 204
    stored = storage.head(KEY)
    assert stored is not None
    assert stored.sha256 == hashlib.sha256(b"abc").hexdigest()


@pytest.mark.parametrize("member", ["", "ab" * 31, BODY_SHA256.upper(), "zz" * 32, 7])
def test_a_signed_policy_with_a_malformed_sha256_is_invalid(tmp_path: Path, member: object) -> None:
    """A sha256 member that is not 64 lower-case hex characters makes the policy invalid."""
    clock = FakeClock()
    storage = make_storage(tmp_path, clock=clock)
    document = _hand_signed_policy(clock, max=9999, sha256=member)
    fields = {"key": KEY, "Content-Type": "audio/mp4", **_signed(document)}
    content_type, body = encode_form(fields.items(), BODY)
    response = receive(storage, content_type, [body])
    assert_refused(storage, response, 400, "InvalidPolicyDocument")


@pytest.mark.parametrize(
    "bad", ["", "ab" * 31, "zz" * 32, _b64(BODY_SHA256), BODY_SHA256 + "00", b"ab" * 32, 5]
)
def test_create_upload_rejects_a_sha256_that_is_not_a_digest(tmp_path: Path, bad: object) -> None:
    """Anything but 64 hex characters is a ValueError, before anything is signed."""
    with pytest.raises(ValueError, match="sha256"):
        make_storage(tmp_path).create_upload(
            key=KEY,
            content_type="audio/mp4",
            max_size=10,
            expires_in=60,
            sha256=bad,  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("size", [7, 200 * 1024], ids=["small-chunks", "parallel-digest"])
def test_pinned_bytes_land_and_head_reports_their_sha256(tmp_path: Path, size: int) -> None:
    """The pinned body lands whichever way it is chunked; HEAD reports its SHA-256."""
    body = (BODY * 400)[:300_000]
    storage = make_storage(tmp_path)
    ticket = _pinned(storage, sha256=hashlib.sha256(body).hexdigest(), max_size=len(body))
    content_type, encoded = encode_form(ticket.fields.items(), body)
    response = receive(storage, content_type, split_chunks(encoded, size))
    assert response.status == 204, response.body
    stored = storage.head(KEY)
    assert stored is not None
    assert (stored.size, stored.sha256) == (len(body), hashlib.sha256(body).hexdigest())
    assert files_under(storage.root) == [f"objects/{KEY}", f"sidecars/{KEY}"]


@pytest.mark.parametrize("size", [7, 200 * 1024], ids=["small-chunks", "parallel-digest"])
def test_other_bytes_are_refused_with_bad_digest_leaving_nothing(tmp_path: Path, size: int) -> None:
    """One byte changed at the very end: 400 BadDigest, no object, no sidecar, no temp file."""
    body = (BODY * 400)[:300_000]
    storage = make_storage(tmp_path)
    ticket = _pinned(storage, sha256=hashlib.sha256(body).hexdigest(), max_size=len(body))
    forged = body[:-1] + bytes([body[-1] ^ 1])
    content_type, encoded = encode_form(ticket.fields.items(), forged)
    response = receive(storage, content_type, split_chunks(encoded, size))
    assert_refused(storage, response, 400, "BadDigest")
    assert b"SHA256" in response.body
    assert storage.head(KEY) is None


def test_bad_digest_leaves_an_earlier_upload_untouched(tmp_path: Path) -> None:
    """Other bytes on a ticket already used with the right ones change no byte, sidecar or inode."""
    storage = make_storage(tmp_path)
    ticket = _pinned(storage)
    content_type, right = encode_form(ticket.fields.items(), BODY)
    assert receive(storage, content_type, [right]).status == 204
    before = _stored_state(storage)
    _, forged = encode_form(ticket.fields.items(), OTHER)
    response = receive(storage, content_type, [forged])
    assert (response.status, error_code(response)) == (400, "BadDigest")
    assert _stored_state(storage) == before


def test_the_same_pinned_ticket_twice_keeps_etag_and_bytes(tmp_path: Path) -> None:
    """Written again with the pinned bytes, the object has the same ETag, SHA-256 and content."""
    storage = make_storage(tmp_path)
    ticket = _pinned(storage)
    content_type, right = encode_form(ticket.fields.items(), BODY)
    first = receive(storage, content_type, [right])
    head_first = storage.head(KEY)
    second = receive(storage, content_type, [right])
    head_second = storage.head(KEY)
    assert (first.status, second.status) == (204, 204)
    assert first.headers["ETag"] == second.headers["ETag"]
    assert head_first is not None
    assert head_second is not None
    assert (head_second.etag, head_second.sha256) == (head_first.etag, head_first.sha256)
    assert (storage.root / "objects" / KEY).read_bytes() == BODY


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"x-amz-checksum-sha256": None}, "x-amz-checksum-sha256"),
        ({"x-amz-checksum-algorithm": None}, "x-amz-checksum-algorithm"),
        ({"x-amz-checksum-algorithm": "sha256"}, "x-amz-checksum-algorithm"),
        (
            {"x-amz-checksum-sha256": _b64(hashlib.sha256(OTHER).hexdigest())},
            "x-amz-checksum-sha256",
        ),
        ({"x-amz-checksum-sha256": BODY_SHA256}, "x-amz-checksum-sha256"),
    ],
    ids=["no-digest", "no-algorithm", "lower-case-algorithm", "other-digest", "hex-digest"],
)
def test_missing_or_altered_checksum_fields_are_refused(
    tmp_path: Path, change: dict[str, str | None], field: str
) -> None:
    """Each checksum field must be exactly the signed one: 403 Policy Condition failed."""
    storage = make_storage(tmp_path)
    ticket = _pinned(storage)
    fields = {k: v for k, v in {**ticket.fields, **change}.items() if v is not None}
    content_type, body = encode_form(fields.items(), OTHER)
    response = receive(storage, content_type, [body])
    assert_refused(storage, response, 403, "AccessDenied")
    assert f'"${field}"'.encode() in response.body


def test_checksum_fields_on_an_unpinned_ticket_are_extra_fields(tmp_path: Path) -> None:
    """A form cannot add a checksum its ticket did not pin: 403 Extra input fields."""
    storage = make_storage(tmp_path)
    claimed = {"x-amz-checksum-algorithm": "SHA256", "x-amz-checksum-sha256": _b64(BODY_SHA256)}
    content_type, body = encode_form({**make_ticket(storage).fields, **claimed}.items(), BODY)
    response = receive(storage, content_type, [body])
    assert_refused(storage, response, 403, "AccessDenied")
    assert b"Extra input fields: x-amz-checksum-algorithm, x-amz-checksum-sha256" in response.body
