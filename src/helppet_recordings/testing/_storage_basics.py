"""What the storage contracts share: sample audio, the fixtures' types, the fixtures."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

import pytest

from helppet_recordings.models import UploadTicket
from helppet_recordings.ports import RecordingStorage

__all__ = ["AUDIO", "MAX_SIZE", "PutObject", "SendUpload", "StorageFixtures"]

AUDIO = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8
MAX_SIZE = 64 * 1024

PutObject = Callable[[str, bytes, str], None]
"""``put_object(key, body, content_type)``: store an object as a finished upload would."""

SendUpload = Callable[[UploadTicket, bytes, Mapping[str, str]], bool]
"""``send_upload(ticket, body, fields)``: hand ``body`` over with ``fields``; True if stored."""


def _md5(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()  # noqa: S324 - S3 ETags are MD5 by definition


class StorageFixtures:
    """The two fixtures a backend's test module supplies to every storage contract."""

    @pytest.fixture
    def storage(self) -> RecordingStorage:
        """An empty storage backend."""
        raise NotImplementedError

    @pytest.fixture
    def put_object(self, storage: RecordingStorage) -> PutObject:
        """Store bytes at a key as a finished upload would."""
        raise NotImplementedError
