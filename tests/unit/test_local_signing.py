"""LocalStorage's signed upload tickets: the policy, the secret, the bucket, the expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from helppet_recordings.storage.local import (
    LocalStorage,
)
from helppet_recordings.testing.storage_contract import AUDIO
from tests.support.local_forms import (
    KEY,
    SECRET,
    FakeClock,
    encode_form,
    error_code,
    files_under,
    make_storage,
    make_ticket,
    receive,
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
