"""The upload receiver: hostile multipart, size limits, bounded memory."""

from __future__ import annotations

import asyncio
import hashlib
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from helppet_recordings.storage.local import (
    LocalResponse,
    LocalUploadReceiver,
)
from helppet_recordings.testing.storage_contract import AUDIO
from tests.support.local_forms import (
    KEY,
    MiB,
    assert_refused,
    encode_form,
    error_code,
    files_under,
    make_storage,
    make_ticket,
    receive,
    split_chunks,
    streamed_body,
)

# ------------------------------------------------------------------ hostile multipart


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "application/json",
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=" + "x" * 71,
        "multipart/mixed; boundary=abc",
    ],
)
def test_bad_content_type_header_is_malformed(tmp_path: Path, content_type: str | None) -> None:
    """Anything but multipart/form-data with a sane boundary is refused before reading."""
    storage = make_storage(tmp_path)
    response = receive(storage, content_type, [b"whatever"])
    assert_refused(storage, response, 400, "MalformedPOSTRequest")
    assert response.headers["Connection"] == "close"


@pytest.mark.parametrize(
    "body",
    [
        b"garbage that is not multipart at all",
        b"--wrong-boundary\r\n\r\n",
        b"------helppet-test-boundary\r\nno-colon-header\r\n\r\nx",
        b"------helppet-test-boundary\r\nContent-Disposition: attachment\r\n\r\nx\r\n",
        b'------helppet-test-boundary\r\nContent-Disposition: form-data; filename="x"\r\n\r\nx\r\n',
        b"------helppet-test-boundary\r\nX-A: 1\r\nX-A: 2\r\n\r\nx\r\n",
        b"------helppet-test-boundary\r\n"
        + b"".join(f"X-{i}: v\r\n".encode() for i in range(9))
        + b"\r\nx\r\n",
    ],
)
def test_garbage_bodies_are_malformed(tmp_path: Path, body: bytes) -> None:
    """Bodies that are not well-formed multipart are refused with 400 and store nothing."""
    storage = make_storage(tmp_path)
    content_type = "multipart/form-data; boundary=----helppet-test-boundary"
    response = receive(storage, content_type, split_chunks(body))
    assert response.status == 400
    assert error_code(response) in {"MalformedPOSTRequest", "InvalidArgument"}
    assert files_under(storage.root) == []


def test_missing_file_is_refused(tmp_path: Path) -> None:
    """Fields without a file part are refused: S3 needs exactly one file."""
    storage = make_storage(tmp_path)
    boundary = "----helppet-test-boundary"
    body = (
        "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in make_ticket(storage).fields.items()
        )
        + f"--{boundary}--\r\n"
    )
    response = receive(storage, f"multipart/form-data; boundary={boundary}", [body.encode()])
    assert_refused(storage, response, 400, "InvalidArgument")
    assert b"exactly one file" in response.body


def test_empty_body_is_refused(tmp_path: Path) -> None:
    """A body with nothing in it is refused."""
    storage = make_storage(tmp_path)
    response = receive(storage, "multipart/form-data; boundary=abc", [])
    assert_refused(storage, response, 400, "InvalidArgument")


def test_duplicate_fields_are_refused(tmp_path: Path) -> None:
    """A field sent twice (whatever its case) is refused, so no value can shadow another."""
    storage = make_storage(tmp_path)
    fields = list(make_ticket(storage).fields.items())
    content_type, body = encode_form([*fields, ("KEY", "recordings/u/ctx/other.m4a")], AUDIO[:50])
    response = receive(storage, content_type, [body])
    assert_refused(storage, response, 400, "InvalidArgument")


@pytest.mark.parametrize("missing", ["key", "policy", "signature"])
def test_missing_required_field_is_refused(tmp_path: Path, missing: str) -> None:
    """The key, the policy and the signature must all precede the file."""
    storage = make_storage(tmp_path)
    fields = [(k, v) for k, v in make_ticket(storage).fields.items() if k != missing]
    content_type, body = encode_form(fields, AUDIO[:50])
    assert_refused(storage, receive(storage, content_type, [body]), 400, "InvalidArgument")


def test_missing_content_type_field_breaks_the_policy(tmp_path: Path) -> None:
    """Without the Content-Type field the policy's type condition fails."""
    storage = make_storage(tmp_path)
    fields = [(k, v) for k, v in make_ticket(storage).fields.items() if k != "Content-Type"]
    content_type, body = encode_form(fields, AUDIO[:50])
    assert_refused(storage, receive(storage, content_type, [body]), 403, "AccessDenied")


def test_fields_after_the_file_do_not_count(tmp_path: Path) -> None:
    """Fields after the file are ignored, as S3 does; required ones must come first."""
    storage = make_storage(tmp_path)
    fields = list(make_ticket(storage).fields.items())
    content_type, body = encode_form([], AUDIO[:50], after=fields)
    assert_refused(storage, receive(storage, content_type, [body]), 400, "InvalidArgument")
    content_type, body = encode_form(fields, AUDIO[:50], after=[("key", "elsewhere/x.m4a")])
    assert receive(storage, content_type, [body]).status == 204
    assert storage.head(KEY) is not None
    assert storage.head("elsewhere/x.m4a") is None


def test_extra_fields_are_refused_unless_ignorable(tmp_path: Path) -> None:
    """A field the policy does not cover is refused; ``x-ignore-`` fields are allowed."""
    storage = make_storage(tmp_path)
    fields = list(make_ticket(storage).fields.items())
    content_type, body = encode_form([*fields, ("x-amz-meta-owner", "mallory")], AUDIO[:50])
    response = receive(storage, content_type, [body])
    assert_refused(storage, response, 403, "AccessDenied")
    assert b"Extra input fields: x-amz-meta-owner" in response.body
    content_type, body = encode_form([*fields, ("x-ignore-trace", "1")], AUDIO[:50])
    assert receive(storage, content_type, [body]).status == 204


def test_huge_fields_before_the_file_are_refused(tmp_path: Path) -> None:
    """More than 20 KiB of fields before the file is refused without buffering it all."""
    storage = make_storage(tmp_path)
    content_type, body = encode_form([("x-ignore-pad", "p" * (21 * 1024))], AUDIO[:50])
    response = receive(storage, content_type, split_chunks(body, 1024))
    assert_refused(storage, response, 400, "MaxPostPreDataLengthExceeded")


def test_truncated_body_is_incomplete(tmp_path: Path) -> None:
    """A body that stops inside the file stores nothing and leaves no temporary file."""
    storage = make_storage(tmp_path)
    content_type, body = encode_form(make_ticket(storage).fields.items(), AUDIO[:500])
    response = receive(storage, content_type, [body[:-120]])
    assert_refused(storage, response, 400, "IncompleteBody")


def test_failing_body_source_is_incomplete(tmp_path: Path) -> None:
    """A body iterator that raises (client gone) is an incomplete body, not a crash."""
    storage = make_storage(tmp_path)
    content_type, body = encode_form(make_ticket(storage).fields.items(), AUDIO[:500])

    def broken() -> Iterator[bytes]:
        yield body[:300]
        msg = "client went away"
        raise ConnectionResetError(msg)

    response = receive(storage, content_type, broken())
    assert_refused(storage, response, 400, "IncompleteBody")


def test_size_limits_count_file_bytes_only(tmp_path: Path) -> None:
    """Exactly max bytes land; one more is EntityTooLarge; none is EntityTooSmall."""
    storage = make_storage(tmp_path)
    fields = make_ticket(storage, max_size=10).fields.items()
    for payload, code in [(b"x" * 11, "EntityTooLarge"), (b"", "EntityTooSmall")]:
        content_type, body = encode_form(fields, payload)
        assert_refused(storage, receive(storage, content_type, [body]), 400, code)
    content_type, body = encode_form(fields, b"x" * 10)
    assert receive(storage, content_type, [body]).status == 204


def test_body_that_looks_like_a_boundary_is_kept_intact(tmp_path: Path) -> None:
    """File bytes containing CRLF and dashes, split at every offset, arrive byte-exact."""
    storage = make_storage(tmp_path)
    payload = b"\r\n--\r\n------helppet-test-boundar\r\n-" * 20
    content_type, body = encode_form(make_ticket(storage).fields.items(), payload)
    for size in (1, 2, 3, 5, 64):
        assert receive(storage, content_type, split_chunks(body, size)).status == 204
        stored = storage.head(KEY)
        assert stored is not None
        assert (stored.size, stored.etag) == (len(payload), hashlib.md5(payload).hexdigest())  # noqa: S324


def test_sync_receiver_memory_is_bounded(tmp_path: Path) -> None:
    """Receiving 50 MB synchronously peaks at well under 4 MB of Python memory."""
    storage = make_storage(tmp_path, fsync=False)
    size = 50 * MiB
    encoded = encode_form(make_ticket(storage, max_size=size).fields.items(), b"")
    tracemalloc.start()
    try:
        response = receive(storage, encoded[0], streamed_body(encoded, size))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status == 204
    stored = storage.head(KEY)
    assert stored is not None
    assert stored.size == size
    assert peak < 4 * MiB, peak


def test_async_receiver_memory_is_bounded(tmp_path: Path) -> None:
    """Receiving 50 MB through the async pipeline peaks at a few batches of memory."""
    storage = make_storage(tmp_path, fsync=False)
    size = 50 * MiB
    encoded = encode_form(make_ticket(storage, max_size=size).fields.items(), b"")

    async def body() -> AsyncIterator[bytes]:
        for chunk in streamed_body(encoded, size):
            yield chunk

    async def run() -> LocalResponse:
        return await LocalUploadReceiver(storage).receive_async(encoded[0], body())

    tracemalloc.start()
    try:
        response = asyncio.run(run())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status == 204
    stored = storage.head(KEY)
    assert stored is not None
    assert stored.size == size
    assert peak < 6 * MiB, peak


def test_oversize_upload_stops_reading_early(tmp_path: Path) -> None:
    """Past the maximum the receiver stops consuming the body and asks to close."""
    storage = make_storage(tmp_path)
    encoded = encode_form(make_ticket(storage, max_size=MiB).fields.items(), b"")
    consumed = 0

    def counting() -> Iterator[bytes]:
        nonlocal consumed
        for chunk in streamed_body(encoded, 50 * MiB):
            consumed += len(chunk)
            yield chunk

    response = receive(storage, encoded[0], counting())
    assert_refused(storage, response, 400, "EntityTooLarge")
    assert response.headers["Connection"] == "close"
    assert consumed < 2 * MiB


def test_async_refusal_leaves_nothing(tmp_path: Path) -> None:
    """The async path refuses like the sync one and removes its temporary file."""
    storage = make_storage(tmp_path)
    encoded = encode_form(make_ticket(storage, max_size=3 * MiB).fields.items(), b"")

    async def body() -> AsyncIterator[bytes]:
        for chunk in streamed_body(encoded, 8 * MiB):
            yield chunk

    async def run() -> LocalResponse:
        return await LocalUploadReceiver(storage, batch_size=256 * 1024).receive_async(
            encoded[0], body()
        )

    assert_refused(storage, asyncio.run(run()), 400, "EntityTooLarge")
