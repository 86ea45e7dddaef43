"""The contract every storage whose tickets pin the body's SHA-256 passes.

:class:`ChecksumPinningContract` is a mixin for backends that implement
:class:`~helppet_recordings.storage_capabilities.ChecksumPinning` with
``pins_checksums`` True. It needs ``storage`` (an empty store) and
``send_upload`` (``send_upload(ticket, body, fields) -> bool``: hand a body to
storage with a form's fields, as a phone would; True when it was stored).
:class:`~helppet_recordings.testing.storage_contract.HttpStorageContract`
supplies ``send_upload`` as a real POST when this mixin is listed after it;
other backends supply their own.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping

import pytest

from helppet_recordings.models import UploadTicket
from helppet_recordings.ports import RecordingStorage
from helppet_recordings.storage_capabilities import ChecksumPinning
from helppet_recordings.testing.storage_contract import AUDIO, MAX_SIZE, SendUpload, _md5

__all__ = ["ChecksumPinningContract"]


def _sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _sha256_base64(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


class ChecksumPinningContract:
    """Tickets that pin the body's SHA-256: only those exact bytes can ever land."""

    pinned_prefix = "recordings/u/ctx/"

    @pytest.fixture
    def storage(self) -> RecordingStorage:
        """An empty storage backend."""
        raise NotImplementedError

    @pytest.fixture
    def send_upload(self, storage: RecordingStorage) -> SendUpload:
        """Hand a body over with a form's fields as a phone would; True if it was stored."""
        raise NotImplementedError

    def pinned_ticket(
        self, storage: RecordingStorage, name: str, body: bytes = AUDIO
    ) -> UploadTicket:
        """A ticket at ``name`` pinning ``body``'s SHA-256."""
        assert isinstance(storage, ChecksumPinning)
        return storage.create_upload(
            key=f"{self.pinned_prefix}{name}",
            content_type="audio/mp4",
            max_size=MAX_SIZE,
            expires_in=600,
            sha256=_sha256(body),
        )

    def test_pins_checksums(self, storage: RecordingStorage) -> None:
        """The backend is a ChecksumPinning whose pinned tickets may name the final key."""
        assert isinstance(storage, ChecksumPinning)
        assert storage.pins_checksums is True

    def test_pinned_ticket_carries_the_s3_checksum_fields(self, storage: RecordingStorage) -> None:
        """The fields carry SHA256 and the digest in base64, as S3's; an unpinned ticket none."""
        ticket = self.pinned_ticket(storage, "fields.m4a")
        assert ticket.fields["x-amz-checksum-algorithm"] == "SHA256"
        assert ticket.fields["x-amz-checksum-sha256"] == _sha256_base64(AUDIO)
        plain = storage.create_upload(
            key=ticket.key, content_type="audio/mp4", max_size=MAX_SIZE, expires_in=600
        )
        assert not any(name.startswith("x-amz-checksum") for name in plain.fields)

    def test_right_bytes_land_and_head_reports_their_sha256(
        self, storage: RecordingStorage, send_upload: SendUpload
    ) -> None:
        """The pinned body is stored, and HEAD reports its SHA-256 and MD5."""
        ticket = self.pinned_ticket(storage, "right.m4a")
        assert send_upload(ticket, AUDIO, ticket.fields)
        stored = storage.head(ticket.key)
        assert stored is not None
        assert (stored.size, stored.sha256, stored.md5) == (len(AUDIO), _sha256(AUDIO), _md5(AUDIO))

    def test_other_bytes_are_refused_and_the_key_keeps_what_it_held(
        self, storage: RecordingStorage, send_upload: SendUpload
    ) -> None:
        """Other bytes of the same size store nothing, nor replace the pinned bytes once there."""
        ticket = self.pinned_ticket(storage, "other.m4a")
        forged = AUDIO[::-1]
        assert not send_upload(ticket, forged, ticket.fields)
        assert storage.head(ticket.key) is None
        assert send_upload(ticket, AUDIO, ticket.fields)
        before = storage.head(ticket.key)
        assert not send_upload(ticket, forged, ticket.fields)
        assert storage.head(ticket.key) == before
        assert storage.read_range(ticket.key, offset=0, length=MAX_SIZE) == AUDIO

    def test_the_same_ticket_used_twice_keeps_etag_and_bytes(
        self, storage: RecordingStorage, send_upload: SendUpload
    ) -> None:
        """A replay of the pinned bytes leaves the same ETag, checksum and content."""
        ticket = self.pinned_ticket(storage, "twice.m4a")
        assert send_upload(ticket, AUDIO, ticket.fields)
        first = storage.head(ticket.key)
        assert send_upload(ticket, AUDIO, ticket.fields)
        second = storage.head(ticket.key)
        assert first is not None
        assert second is not None
        assert (second.etag, second.sha256, second.size) == (first.etag, first.sha256, first.size)
        assert storage.read_range(ticket.key, offset=0, length=MAX_SIZE) == AUDIO

    @pytest.mark.parametrize(
        "change",
        [
            {"x-amz-checksum-sha256": None},
            {"x-amz-checksum-algorithm": None},
            {"x-amz-checksum-sha256": _sha256_base64(AUDIO[::-1])},
        ],
        ids=["without-digest", "without-algorithm", "other-digest"],
    )
    def test_changed_checksum_fields_are_refused(
        self,
        storage: RecordingStorage,
        send_upload: SendUpload,
        change: Mapping[str, str | None],
    ) -> None:
        """Dropping a checksum field, or declaring the digest of the bytes sent, stores nothing."""
        ticket = self.pinned_ticket(storage, "changed.m4a")
        fields = {
            name: value for name, value in {**ticket.fields, **change}.items() if value is not None
        }
        assert not send_upload(ticket, AUDIO[::-1], fields)
        assert storage.head(ticket.key) is None

    @pytest.mark.parametrize("sent", [AUDIO[::-1], AUDIO], ids=["other-bytes", "same-bytes"])
    def test_checksum_fields_added_to_an_unpinned_ticket_are_refused(
        self, storage: RecordingStorage, send_upload: SendUpload, sent: bytes
    ) -> None:
        """Checksum fields the policy does not cover are extra fields: nothing is stored."""
        ticket = storage.create_upload(
            key=f"{self.pinned_prefix}added.m4a",
            content_type="audio/mp4",
            max_size=MAX_SIZE,
            expires_in=600,
        )
        claimed = {
            "x-amz-checksum-algorithm": "SHA256",
            "x-amz-checksum-sha256": _sha256_base64(AUDIO),
        }
        assert not send_upload(ticket, sent, {**ticket.fields, **claimed})
        assert storage.head(ticket.key) is None
