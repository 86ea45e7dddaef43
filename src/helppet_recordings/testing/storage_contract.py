"""The contract every RecordingStorage backend passes.

:class:`StorageContract` covers what the service asks of storage. A backend's
test module subclasses it and supplies ``storage`` (an empty store) and
``put_object`` (stores bytes at a key the way a finished upload would).

:class:`HttpStorageContract` adds what a phone sees: real multipart POST
uploads against the ticket's policy and real GETs of download URLs, over
HTTP. Backends that serve HTTP (SeaweedFS, LocalStorage) run it; moto does
not, because it enforces none of a POST policy.

:class:`PromoteContract` is a mixin for backends that move a verified
staging object to its final key (``promote``); it needs the same two
fixtures and is added next to one of the classes above.
:class:`PinnedReadsContract` is the same kind of mixin for backends whose
ranged reads can be pinned to an ETag (``PinnedReads.read_pinned``).

:class:`HttpStorageContract` also supplies ``send_upload`` (a real POST of a
body with a form's fields), which
:class:`~helppet_recordings.testing.checksum_contract.ChecksumPinningContract`
needs when it is listed after it.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Mapping

import httpx
import pytest

from helppet_recordings.models import UploadTicket
from helppet_recordings.ports import RecordingStorage
from helppet_recordings.testing._storage_basics import (
    AUDIO,
    MAX_SIZE,
    PutObject,
    SendUpload,
    StorageFixtures,
    _md5,
)
from helppet_recordings.testing.pinned_reads_contract import PinnedReadsContract
from helppet_recordings.testing.promote_contract import PromoteContract

__all__ = [
    "AUDIO",
    "MAX_SIZE",
    "HttpStorageContract",
    "PinnedReadsContract",
    "PromoteContract",
    "PutObject",
    "SendUpload",
    "StorageContract",
    "_md5",
]


class StorageContract(StorageFixtures):
    """Behaviour shared by every storage backend."""

    prefix = "recordings/"

    def key(self, name: str) -> str:
        """A key under the test prefix."""
        return f"{self.prefix}u/ctx/{name}"

    def test_satisfies_the_port(self, storage: RecordingStorage) -> None:
        """The backend structurally implements the storage protocol."""
        assert isinstance(storage, RecordingStorage)

    def test_ticket_pins_key_type_size_and_expiry(self, storage: RecordingStorage) -> None:
        """A ticket names the key, the bucket, the content type, the limits and a POST URL."""
        key = self.key("ticket.m4a")
        ticket = storage.create_upload(
            key=key, content_type="audio/mp4", max_size=MAX_SIZE, expires_in=600
        )
        assert isinstance(ticket, UploadTicket)
        assert (ticket.key, ticket.bucket) == (key, storage.bucket)
        assert (ticket.expires_in, ticket.max_size) == (600, MAX_SIZE)
        assert ticket.fields["key"] == key
        assert ticket.fields["Content-Type"] == "audio/mp4"
        assert ticket.url.startswith(("http://", "https://"))
        assert all(isinstance(v, str) for v in ticket.fields.values())

    def test_head_reports_size_type_and_md5(
        self, storage: RecordingStorage, put_object: PutObject
    ) -> None:
        """HEAD of a stored object gives its size, content type and MD5 ETag."""
        key = self.key("head.wav")
        put_object(key, AUDIO, "audio/wav")
        stored = storage.head(key)
        assert stored is not None
        assert (stored.key, stored.size, stored.content_type) == (key, len(AUDIO), "audio/wav")
        assert stored.etag == _md5(AUDIO)
        assert stored.server_side_encryption in {None, "AES256"}

    def test_head_of_missing_object_is_none(self, storage: RecordingStorage) -> None:
        """A key that holds nothing is None, not an error."""
        assert storage.head(self.key("missing.m4a")) is None

    def test_read_range_returns_the_asked_bytes(
        self, storage: RecordingStorage, put_object: PutObject
    ) -> None:
        """A ranged read returns exactly the bytes asked for, fewer at the end, none past it."""
        key = self.key("range.wav")
        put_object(key, AUDIO, "audio/wav")
        assert storage.read_range(key, offset=0, length=12) == AUDIO[:12]
        assert storage.read_range(key, offset=100, length=50) == AUDIO[100:150]
        assert storage.read_range(key, offset=len(AUDIO) - 4, length=64) == AUDIO[-4:]
        assert storage.read_range(key, offset=len(AUDIO) + 10, length=8) == b""

    def test_read_range_of_missing_object_is_none(self, storage: RecordingStorage) -> None:
        """A ranged read of a key that holds nothing is None, not an error."""
        assert storage.read_range(self.key("absent.wav"), offset=0, length=16) is None

    def test_delete_removes_and_is_idempotent(
        self, storage: RecordingStorage, put_object: PutObject
    ) -> None:
        """Deleting removes the object; deleting again, or a missing key, is fine."""
        key = self.key("gone.m4a")
        put_object(key, AUDIO, "audio/mp4")
        storage.delete(key)
        assert storage.head(key) is None
        storage.delete(key)
        storage.delete(self.key("never-existed.m4a"))

    def test_iter_objects_lists_only_the_prefix(
        self, storage: RecordingStorage, put_object: PutObject
    ) -> None:
        """Listing yields every object under the prefix, in key order, and nothing outside it."""
        inside = [self.key(f"n{i}.m4a") for i in range(3)]
        for key in inside:
            put_object(key, AUDIO, "audio/mp4")
        put_object("elsewhere/x.m4a", AUDIO, "audio/mp4")
        listed = [(obj.key, obj.size) for obj in storage.iter_objects(self.prefix)]
        assert listed == [(key, len(AUDIO)) for key in inside]

    def test_iter_objects_lists_in_ascending_key_order(
        self, storage: RecordingStorage, put_object: PutObject
    ) -> None:
        """Keys come in code point order (S3's), not by case, number or insertion."""
        # In code point order 10 comes before 9, B before a, and z before é.
        names = ["é.m4a", "9.m4a", "b/1.m4a", "B.m4a", "a.m4a", "z.m4a", "10.m4a"]
        self._assert_listed_in_order(storage, put_object, "order/", names)

    def test_iter_objects_orders_keys_across_directory_boundaries(
        self, storage: RecordingStorage, put_object: PutObject
    ) -> None:
        """``a-1``, ``a.m4a``, ``a/1.m4a``, ``a0``: '-' < '.' < '/' < '0', as S3 lists them."""
        # A directory walk lists a/1.m4a first (the directory a sorts before its siblings).
        self._assert_listed_in_order(
            storage, put_object, "nested/", ["a0.m4a", "a/1.m4a", "a.m4a", "a-1.m4a"]
        )

    def _assert_listed_in_order(
        self, storage: RecordingStorage, put_object: PutObject, prefix: str, names: list[str]
    ) -> None:
        """Store ``names`` under ``prefix``; ``iter_objects`` must list them in code point order."""
        keys = [self.key(f"{prefix}{name}") for name in names]
        for key in keys:
            put_object(key, AUDIO, "audio/mp4")
        listed = [obj.key for obj in storage.iter_objects(self.key(prefix))]
        assert listed == sorted(keys), "iter_objects must yield keys in ascending code point order"

    def test_keys_that_extend_a_key_name_coexist(
        self, storage: RecordingStorage, put_object: PutObject
    ) -> None:
        """``a`` and ``a.json/b``, stored in either order, are two objects with their own bytes."""
        keys = [
            self.key("first/a"),
            self.key("first/a.json/b"),
            self.key("second/a.json/b"),
            self.key("second/a"),
        ]
        bodies = {key: AUDIO + key.encode() for key in keys}
        for key in keys:
            put_object(key, bodies[key], "audio/wav")
        for key, body in bodies.items():
            stored = storage.head(key)
            assert stored is not None, key
            assert (stored.size, stored.etag) == (len(body), _md5(body))
            assert storage.read_range(key, offset=0, length=len(body) + 1) == body
        assert [obj.key for obj in storage.iter_objects(self.key(""))] == sorted(keys)

    def test_a_key_with_a_255_byte_last_segment_is_stored(
        self, storage: RecordingStorage, put_object: PutObject
    ) -> None:
        """The longest segment a key may have is stored, read and deleted like any other."""
        key = self.key("s" * 251 + ".wav")
        put_object(key, AUDIO, "audio/wav")
        stored = storage.head(key)
        assert stored is not None
        assert stored.etag == _md5(AUDIO)
        assert [obj.key for obj in storage.iter_objects(self.prefix)] == [key]
        storage.delete(key)
        assert storage.head(key) is None

    def test_object_url_names_the_object(self, storage: RecordingStorage) -> None:
        """The record URI is stable and contains the key."""
        key = self.key("uri.m4a")
        assert storage.object_url(key) == storage.object_url(key)
        assert key in storage.object_url(key)


class HttpStorageContract(StorageContract):
    """What a phone sees: real POST uploads and GET downloads, with the policy enforced."""

    signature_field: str
    """The upload field that carries the signature."""

    def post(
        self,
        ticket: UploadTicket,
        body: bytes,
        *,
        fields: Mapping[str, str] | None = None,
        url: str | None = None,
    ) -> httpx.Response:
        """POST a multipart upload: every field, then the file as ``file``."""
        data = dict(ticket.fields if fields is None else fields)
        content_type = data.get("Content-Type", "application/octet-stream")
        return httpx.post(
            url or ticket.url,
            data=data,
            files={"file": ("recording", body, content_type)},
            timeout=30,
        )

    def ticket(
        self, storage: RecordingStorage, name: str, *, expires_in: int = 600
    ) -> UploadTicket:
        """A ticket for an audio/mp4 upload of at most ``MAX_SIZE`` bytes."""
        return storage.create_upload(
            key=self.key(name), content_type="audio/mp4", max_size=MAX_SIZE, expires_in=expires_in
        )

    @pytest.fixture
    def send_upload(self) -> SendUpload:
        """POST a body with the given fields over HTTP; True if the server stored it."""

        def send(ticket: UploadTicket, body: bytes, fields: Mapping[str, str]) -> bool:
            response = self.post(ticket, body, fields=fields)
            assert response.status_code < 500, (response.status_code, response.text)
            return response.is_success

        return send

    def assert_refused(self, response: httpx.Response, storage: RecordingStorage, key: str) -> None:
        """The server answered 4xx and stored nothing at ``key``."""
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
        assert storage.head(key) is None

    def test_valid_upload_lands(self, storage: RecordingStorage) -> None:
        """A POST of exactly the ticket's fields stores the bytes with the signed type."""
        ticket = self.ticket(storage, "valid.m4a")
        response = self.post(ticket, AUDIO)
        assert 200 <= response.status_code < 300, response.text
        stored = storage.head(ticket.key)
        assert stored is not None
        assert (stored.size, stored.content_type, stored.etag) == (
            len(AUDIO),
            "audio/mp4",
            _md5(AUDIO),
        )

    def test_upload_of_exactly_max_size_lands(self, storage: RecordingStorage) -> None:
        """The size range includes its upper bound."""
        ticket = self.ticket(storage, "max.m4a")
        response = self.post(ticket, b"a" * MAX_SIZE)
        assert 200 <= response.status_code < 300, response.text
        stored = storage.head(ticket.key)
        assert stored is not None
        assert stored.size == MAX_SIZE

    def test_oversize_upload_is_refused(self, storage: RecordingStorage) -> None:
        """One byte over the limit is refused and nothing is stored."""
        ticket = self.ticket(storage, "big.m4a")
        self.assert_refused(self.post(ticket, b"a" * (MAX_SIZE + 1)), storage, ticket.key)

    def test_empty_upload_is_refused(self, storage: RecordingStorage) -> None:
        """An empty file is outside the 1..max range."""
        ticket = self.ticket(storage, "empty.m4a")
        self.assert_refused(self.post(ticket, b""), storage, ticket.key)

    def test_other_content_type_is_refused(self, storage: RecordingStorage) -> None:
        """Changing the Content-Type field breaks the policy."""
        ticket = self.ticket(storage, "type.m4a")
        fields = {**ticket.fields, "Content-Type": "text/html"}
        self.assert_refused(self.post(ticket, AUDIO, fields=fields), storage, ticket.key)

    def test_other_key_is_refused(self, storage: RecordingStorage) -> None:
        """A ticket cannot be reused for another key."""
        ticket = self.ticket(storage, "key.m4a")
        other = self.key("someone-else.m4a")
        response = self.post(ticket, AUDIO, fields={**ticket.fields, "key": other})
        self.assert_refused(response, storage, ticket.key)
        assert storage.head(other) is None

    def test_tampered_signature_is_refused(self, storage: RecordingStorage) -> None:
        """Changing one character of the signature is refused."""
        ticket = self.ticket(storage, "sig.m4a")
        signature = ticket.fields[self.signature_field]
        flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
        fields = {**ticket.fields, self.signature_field: flipped}
        self.assert_refused(self.post(ticket, AUDIO, fields=fields), storage, ticket.key)

    def test_expired_ticket_is_refused(self, storage: RecordingStorage) -> None:
        """A ticket used after its expiry is refused."""
        ticket = self.ticket(storage, "late.m4a", expires_in=1)
        time.sleep(2.2)
        self.assert_refused(self.post(ticket, AUDIO), storage, ticket.key)

    def test_download_url_serves_bytes_as_attachment(self, storage: RecordingStorage) -> None:
        """A signed download URL returns the bytes, the type and the download filename."""
        ticket = self.ticket(storage, "down.m4a")
        assert self.post(ticket, AUDIO).is_success
        url = storage.create_download_url(
            key=ticket.key, expires_in=60, content_type="audio/mp4", filename="Bello's visit.m4a"
        )
        response = httpx.get(url, timeout=30)
        assert response.status_code == 200
        assert response.content == AUDIO
        assert response.headers["content-type"] == "audio/mp4"
        disposition = response.headers["content-disposition"]
        assert disposition.startswith("attachment;")
        assert urllib.parse.quote("Bello's visit.m4a", safe="") in disposition

    def test_tampered_download_url_is_refused(self, storage: RecordingStorage) -> None:
        """Pointing a signed download URL at another key is refused."""
        first, second = self.ticket(storage, "d1.m4a"), self.ticket(storage, "d2.m4a")
        assert self.post(first, AUDIO).is_success
        assert self.post(second, b"secret" * 10).is_success
        url = storage.create_download_url(
            key=first.key, expires_in=60, content_type="audio/mp4", filename="a.m4a"
        )
        tampered = url.replace("d1.m4a", "d2.m4a")
        assert tampered != url
        response = httpx.get(tampered, timeout=30)
        assert response.status_code == 403
        assert b"secret" not in response.content
