"""The contract every MultipartStorage backend passes (resumable uploads, storage side).

:class:`MultipartContract` is a mixin: a backend's test module subclasses it
and supplies two fixtures, ``storage`` (an empty storage that implements both
:class:`~helppet_recordings.ports.RecordingStorage` and
:class:`~helppet_recordings.ports.MultipartStorage`) and ``send_part``
(``send_part(url, body) -> bool``: send ``body`` to a signed part URL as a
client's ``PUT`` would; True when storage kept the part, False when it
refused it). Optionally it overrides ``advance_clock`` (default: sleep) for
a storage whose clock a test can move, and ``retry_pause`` for a storage
that orders a retried part's uploads by a coarse clock.

The parts are planned as a service plans them: 5 MiB parts (S3's minimum)
and a short last one. Among the rules: a part of the wrong size is refused
and nothing of it kept; a retried part is listed once and the last upload
wins; after completion or abort no part URL is honoured (completion happens
at the final key, so a completed upload id that took no more parts is what
stops a replayed part URL).
"""

from __future__ import annotations

import functools
import hashlib
import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import pytest

from helppet_recordings.errors import StorageError
from helppet_recordings.models import StoredObject
from helppet_recordings.multipart import MIN_PART_SIZE, PlannedPart, plan_parts
from helppet_recordings.ports import MultipartStorage, RecordingStorage
from helppet_recordings.storage_capabilities import EncryptionChecking
from helppet_recordings.testing._watch import Watch

__all__ = ["LAST_PART_SIZE", "PLAN", "SOURCE", "MultipartContract", "SendPart"]

SendPart = Callable[[str, bytes], bool]
"""``send_part(url, body)``: PUT ``body`` to a part URL; True when storage kept it."""

LAST_PART_SIZE = 12_345
SOURCE = random.Random(7).randbytes(2 * MIN_PART_SIZE + LAST_PART_SIZE)  # noqa: S311 - test bytes
"""Three parts at the smallest part size S3 takes: two of 5 MiB and a short last one."""

PLAN = plan_parts(len(SOURCE), preferred_part_size=MIN_PART_SIZE)


def _md5(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()  # noqa: S324 - S3 part ETags are MD5 by definition


def _body(part: PlannedPart, source: bytes = SOURCE) -> bytes:
    return source[part.offset : part.offset + part.size]


def _upload_or_object(storage: Any, key: str, upload_id: str) -> bool:
    """Whether ``list_parts`` finds the upload, or else HEAD finds the object at ``key``."""
    try:
        storage.list_parts(key=key, upload_id=upload_id)
    except StorageError as exc:
        if exc.details.get("storage_error") != "NoSuchUpload":
            raise
        return storage.head(key) is not None
    return True


class MultipartContract:
    """Multipart uploads as a client and the service use them, on one backend."""

    prefix = "recordings/"
    content_type = "audio/mp4"
    retry_pause: ClassVar[float] = 0.0
    """Seconds between two uploads of one part, for a storage that orders them by a clock."""

    @pytest.fixture
    def storage(self) -> Any:
        """An empty storage with multipart uploads (both storage ports)."""
        raise NotImplementedError

    @pytest.fixture
    def send_part(self, storage: Any) -> SendPart:
        """Send a body to a signed part URL as a client's PUT; True when storage kept it."""
        raise NotImplementedError

    @pytest.fixture
    def advance_clock(self, storage: Any) -> Callable[[float], None]:
        """Let ``seconds`` pass for the storage's signatures (by default: sleep)."""
        return time.sleep

    # ------------------------------------------------------------------- helpers

    def key(self, name: str) -> str:
        """A key under the test prefix."""
        return f"{self.prefix}u/ctx/{name}"

    def start(self, storage: MultipartStorage, name: str) -> tuple[str, str]:
        """Start an upload at a fresh key; return the key and the upload id."""
        key = self.key(name)
        return key, storage.create_multipart_upload(key=key, content_type=self.content_type)

    def url(
        self,
        storage: MultipartStorage,
        key: str,
        upload_id: str,
        part: PlannedPart,
        *,
        expires_in: int = 300,
    ) -> str:
        """A signed URL for ``part``."""
        return storage.sign_upload_part(
            key=key,
            upload_id=upload_id,
            part_number=part.part_number,
            size=part.size,
            expires_in=expires_in,
        )

    def send(
        self,
        storage: MultipartStorage,
        send_part: SendPart,
        key: str,
        upload_id: str,
        parts: Iterable[PlannedPart],
        *,
        source: bytes = SOURCE,
    ) -> list[bool]:
        """Sign and send each part, three at a time, in the order given."""

        def one(part: PlannedPart) -> bool:
            return send_part(self.url(storage, key, upload_id, part), _body(part, source))

        with ThreadPoolExecutor(max_workers=3) as pool:
            return list(pool.map(one, parts))

    def complete(self, storage: MultipartStorage, key: str, upload_id: str) -> StoredObject:
        """Complete from what storage lists, as the service does."""
        listed = storage.list_parts(key=key, upload_id=upload_id)
        return storage.complete_multipart_upload(
            key=key, upload_id=upload_id, parts=[(part.part_number, part.etag) for part in listed]
        )

    def assert_no_upload(self, storage: MultipartStorage, key: str, upload_id: str) -> None:
        """``list_parts`` says the upload is gone (NoSuchUpload)."""
        with pytest.raises(StorageError) as raised:
            storage.list_parts(key=key, upload_id=upload_id)
        assert raised.value.details["storage_error"] == "NoSuchUpload"

    # --------------------------------------------------------------------- tests

    def test_plan_is_two_minimum_parts_and_a_short_one(self) -> None:
        """The source is cut as the tests assume: two 5 MiB parts and a short third."""
        assert PLAN.part_size == MIN_PART_SIZE
        assert [part.size for part in PLAN.parts] == [MIN_PART_SIZE] * 2 + [LAST_PART_SIZE]

    def test_satisfies_the_port(self, storage: Any) -> None:
        """The backend structurally implements both storage protocols."""
        assert isinstance(storage, MultipartStorage)
        assert isinstance(storage, RecordingStorage)

    def test_parts_out_of_order_and_in_parallel_assemble_the_source(
        self, storage: Any, send_part: SendPart
    ) -> None:
        """Parts sent last first by three threads, completed from list_parts, equal the source."""
        key, upload_id = self.start(storage, "parallel.m4a")
        assert self.send(storage, send_part, key, upload_id, reversed(PLAN.parts)) == [True] * 3

        listed = storage.list_parts(key=key, upload_id=upload_id)
        assert listed == [(p.part_number, p.size, _md5(_body(p))) for p in PLAN.parts]
        stored = self.complete(storage, key, upload_id)

        assert (stored.key, stored.size, stored.content_type) == (
            key,
            len(SOURCE),
            self.content_type,
        )
        if isinstance(storage, EncryptionChecking):
            assert storage.encryption_matches(stored)
        else:
            assert stored.server_side_encryption in {None, "AES256"}
        head = storage.head(key)
        assert head is not None
        assert (head.size, head.content_type, head.etag, head.server_side_encryption) == (
            stored.size,
            stored.content_type,
            stored.etag,
            stored.server_side_encryption,
        )
        assert storage.read_range(key, offset=0, length=len(SOURCE) + 1) == SOURCE
        assert storage.list_multipart_uploads(prefix=self.prefix) == []

    def test_a_completion_never_hides_the_upload(self, storage: Any, send_part: SendPart) -> None:
        """Threads listing the parts, else HEADing the key, during completion always find one.

        A second completion of the upload looks that way: an instant where
        the upload is gone and its object not yet there answers it "not
        found". Once ``list_parts`` says NoSuchUpload, the object must be there.
        """
        key, upload_id = self.start(storage, "watched.m4a")
        assert self.send(storage, send_part, key, upload_id, PLAN.parts) == [True] * 3
        listed = storage.list_parts(key=key, upload_id=upload_id)
        watching = Watch(functools.partial(_upload_or_object, storage, key, upload_id))

        with watching:
            stored = storage.complete_multipart_upload(
                key=key, upload_id=upload_id, parts=[(p.part_number, p.etag) for p in listed]
            )

        assert stored.size == len(SOURCE)
        assert watching.looks > 0
        assert watching.misses == 0, f"{watching.misses} of {watching.looks} found nothing"
        self.assert_no_upload(storage, key, upload_id)

    def test_missing_part_is_resumed_by_sending_only_it(
        self, storage: Any, send_part: SendPart
    ) -> None:
        """After an interruption list_parts shows the gap; sending only that part completes it."""
        key, upload_id = self.start(storage, "resumed.m4a")
        first_round = [part for part in PLAN.parts if part.part_number != 2]
        assert self.send(storage, send_part, key, upload_id, first_round) == [True, True]

        held = [part.part_number for part in storage.list_parts(key=key, upload_id=upload_id)]
        assert held == [1, 3]
        missing = [part for part in PLAN.parts if part.part_number not in held]
        assert self.send(storage, send_part, key, upload_id, missing) == [True]

        self.complete(storage, key, upload_id)
        assert storage.read_range(key, offset=0, length=len(SOURCE)) == SOURCE

    @pytest.mark.parametrize("delta", [-1, 1])
    def test_part_of_the_wrong_size_is_refused(
        self, storage: Any, send_part: SendPart, delta: int
    ) -> None:
        """A body one byte short or long of the signed size is refused and nothing is listed."""
        key, upload_id = self.start(storage, "wrong-size.m4a")
        part = PLAN.part(1)
        url = self.url(storage, key, upload_id, part)

        assert send_part(url, SOURCE[: part.size + delta]) is False

        assert storage.list_parts(key=key, upload_id=upload_id) == []
        storage.abort_multipart_upload(key=key, upload_id=upload_id)

    def test_retried_part_is_listed_once_and_the_last_one_wins(
        self, storage: Any, send_part: SendPart
    ) -> None:
        """A part sent twice (same URL) is listed once, with the second ETag, and that lands."""
        key, upload_id = self.start(storage, "retried.m4a")
        part = PlannedPart(1, 0, 10)
        url = self.url(storage, key, upload_id, part)
        assert send_part(url, b"y" * 10)
        time.sleep(self.retry_pause)
        assert send_part(url, b"z" * 10)

        listed = storage.list_parts(key=key, upload_id=upload_id)

        assert listed == [(1, 10, _md5(b"z" * 10))]
        self.complete(storage, key, upload_id)
        assert storage.read_range(key, offset=0, length=11) == b"z" * 10

    def test_abort_forgets_the_upload_and_refuses_its_parts(
        self, storage: Any, send_part: SendPart
    ) -> None:
        """After abort: not listed, NoSuchUpload, aborting again is fine, its part URLs refused."""
        key, upload_id = self.start(storage, "aborted.m4a")
        last = PLAN.parts[-1]
        assert self.send(storage, send_part, key, upload_id, [last]) == [True]
        url = self.url(storage, key, upload_id, PLAN.part(1))
        uploads = storage.list_multipart_uploads(prefix=self.prefix)
        assert [(info.key, info.upload_id) for info in uploads] == [(key, upload_id)]

        storage.abort_multipart_upload(key=key, upload_id=upload_id)
        storage.abort_multipart_upload(key=key, upload_id=upload_id)

        assert storage.list_multipart_uploads(prefix=self.prefix) == []
        self.assert_no_upload(storage, key, upload_id)
        assert send_part(url, _body(PLAN.part(1))) is False
        self.assert_no_upload(storage, key, upload_id)
        assert storage.head(key) is None

    def test_after_completion_every_part_url_is_refused(
        self, storage: Any, send_part: SendPart
    ) -> None:
        """A completed upload takes no more parts, by old or new URLs; the object is unchanged."""
        key, upload_id = self.start(storage, "replayed.m4a")
        urls = [self.url(storage, key, upload_id, part) for part in PLAN.parts]
        assert self.send(storage, send_part, key, upload_id, PLAN.parts) == [True] * 3
        stored = self.complete(storage, key, upload_id)

        fresh = self.url(storage, key, upload_id, PLAN.part(3))
        other = bytes(reversed(SOURCE))
        for part, url in [*zip(PLAN.parts, urls, strict=True), (PLAN.part(3), fresh)]:
            assert send_part(url, _body(part, other)) is False

        self.assert_no_upload(storage, key, upload_id)
        head = storage.head(key)
        assert head is not None
        assert (head.size, head.etag) == (stored.size, stored.etag)
        assert storage.read_range(key, offset=0, length=len(SOURCE)) == SOURCE

    def test_expired_part_url_is_refused(
        self, storage: Any, send_part: SendPart, advance_clock: Callable[[float], None]
    ) -> None:
        """A part URL used after its expiry is refused and nothing kept; a fresh URL then works."""
        key, upload_id = self.start(storage, "expired.m4a")
        part = PlannedPart(1, 0, 10)
        url = self.url(storage, key, upload_id, part, expires_in=1)
        advance_clock(2.1)

        assert send_part(url, b"x" * 10) is False
        assert storage.list_parts(key=key, upload_id=upload_id) == []
        assert send_part(self.url(storage, key, upload_id, part), b"x" * 10)
        assert storage.list_parts(key=key, upload_id=upload_id) == [(1, 10, _md5(b"x" * 10))]
        storage.abort_multipart_upload(key=key, upload_id=upload_id)

    def test_listing_is_narrowed_by_prefix(self, storage: Any) -> None:
        """list_multipart_uploads returns only the uploads under the prefix, with aware times."""
        inside, inside_id = self.start(storage, "listed.m4a")
        outside = "elsewhere/b.m4a"
        outside_id = storage.create_multipart_upload(key=outside, content_type=self.content_type)

        listed = storage.list_multipart_uploads(prefix=self.prefix)

        assert [(info.key, info.upload_id) for info in listed] == [(inside, inside_id)]
        assert listed[0].initiated.tzinfo is not None
        assert listed[0].initiated.utcoffset() is not None
        storage.abort_multipart_upload(key=inside, upload_id=inside_id)
        storage.abort_multipart_upload(key=outside, upload_id=outside_id)

    def test_complete_with_an_unknown_etag_is_refused(
        self, storage: Any, send_part: SendPart
    ) -> None:
        """An ETag storage does not hold fails completion; the upload and its parts stay."""
        key, upload_id = self.start(storage, "unknown-etag.m4a")
        part = PlannedPart(1, 0, 10)
        assert send_part(self.url(storage, key, upload_id, part), b"x" * 10)

        with pytest.raises(StorageError):
            storage.complete_multipart_upload(key=key, upload_id=upload_id, parts=[(1, _md5(b"?"))])

        assert storage.head(key) is None
        assert storage.list_parts(key=key, upload_id=upload_id) == [(1, 10, _md5(b"x" * 10))]
        storage.abort_multipart_upload(key=key, upload_id=upload_id)

    def test_a_small_part_before_the_last_is_refused(
        self, storage: Any, send_part: SendPart
    ) -> None:
        """Completing with a part below 5 MiB that is not the last fails; the upload stays."""
        source = bytes(range(256)) * 8
        plan = plan_parts(len(source), min_part_size=1, preferred_part_size=1024)
        key, upload_id = self.start(storage, "too-small.m4a")
        sent = self.send(storage, send_part, key, upload_id, plan.parts, source=source)
        assert sent == [True, True]

        with pytest.raises(StorageError) as raised:
            self.complete(storage, key, upload_id)

        assert raised.value.details["storage_error"] == "EntityTooSmall"
        assert storage.head(key) is None
        assert len(storage.list_parts(key=key, upload_id=upload_id)) == 2
        storage.abort_multipart_upload(key=key, upload_id=upload_id)
