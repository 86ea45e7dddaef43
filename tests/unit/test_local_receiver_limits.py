"""The receiver's limits without HTTP: the pre-data cap, timeouts, cancellation."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from helppet_recordings.storage.local import (
    MAX_PRE_DATA_BYTES,
    LocalResponse,
    LocalStorage,
    LocalUploadReceiver,
)
from tests.support.local_forms import (
    BOUNDARY,
    KEY,
    MiB,
    assert_refused,
    encode_form,
    error_code,
    files_under,
    make_storage,
    make_ticket,
    split_chunks,
)


def _padded_form(storage: LocalStorage, pre_data: int, payload: bytes) -> tuple[str, bytes]:
    """A valid upload whose bytes before the file's content are exactly ``pre_data`` long."""
    fields = list(make_ticket(storage).fields.items())
    _, bare = encode_form([*fields, ("x-ignore-pad", "")], payload)
    padding = pre_data - bare.index(payload)
    assert padding >= 0
    return encode_form([*fields, ("x-ignore-pad", "p" * padding)], payload)


# ------------------------------------------------------------------------ pre-data cap


@pytest.mark.parametrize("chunk_size", [1000, 64 * 1024])
def test_pre_data_limit_counts_every_byte_before_the_file(tmp_path: Path, chunk_size: int) -> None:
    """Exactly MAX_PRE_DATA_BYTES before the file's content is accepted; one more is refused."""
    storage = make_storage(tmp_path)
    receiver = LocalUploadReceiver(storage)
    content_type, body = _padded_form(storage, MAX_PRE_DATA_BYTES, b"audio bytes")
    assert receiver.receive(content_type, split_chunks(body, chunk_size)).status == 204
    storage.delete(KEY)
    content_type, body = _padded_form(storage, MAX_PRE_DATA_BYTES + 1, b"audio bytes")
    response = receiver.receive(content_type, split_chunks(body, chunk_size))
    assert_refused(storage, response, 400, "MaxPostPreDataLengthExceeded")


def test_async_receiver_reads_no_more_than_the_cap_without_a_ticket(tmp_path: Path) -> None:
    """Garbage without a ticket is refused once the cap is passed: later chunks are never read."""
    storage = make_storage(tmp_path)
    pulled = 0

    async def garbage() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(1024):  # 4 MiB on offer
            pulled += 4096
            yield b"\x00" * 4096

    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    response = asyncio.run(LocalUploadReceiver(storage).receive_async(content_type, garbage()))
    assert response.status == 400
    assert error_code(response) in {"MalformedPOSTRequest", "MaxPostPreDataLengthExceeded"}
    assert response.headers["Connection"] == "close"
    assert pulled <= MAX_PRE_DATA_BYTES + 4096
    assert files_under(storage.root) == []


def test_async_receiver_refuses_a_forged_ticket_before_batching(tmp_path: Path) -> None:
    """With a forged signature the file's first chunk is refused; the next is never read."""
    storage = make_storage(tmp_path)
    fields = {**make_ticket(storage).fields, "signature": "f" * 64}
    content_type, head = encode_form(fields.items(), b"")
    head = head[: head.index(b"audio/mp4\r\n\r\n") + len(b"audio/mp4\r\n\r\n")]
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        pulled += 1
        yield head
        for _ in range(64):
            pulled += 1
            yield os.urandom(64 * 1024)

    response = asyncio.run(LocalUploadReceiver(storage).receive_async(content_type, body()))
    assert (response.status, error_code(response)) == (403, "SignatureDoesNotMatch")
    assert pulled == 1
    assert files_under(storage.root) == []


# ---------------------------------------------------------------------------- timeouts


@pytest.mark.parametrize(
    ("options", "pause_after"),
    [
        ({"idle_timeout": 0.05}, 3),
        ({"fields_timeout": 0.05}, 0),
        ({"body_timeout": 0.15, "idle_timeout": 0.1}, 3),
    ],
)
def test_sync_receiver_refuses_late_chunks(
    tmp_path: Path, options: dict[str, Any], pause_after: int
) -> None:
    """A chunk that arrives after a timeout ran out is refused, and nothing is kept."""
    storage = make_storage(tmp_path)
    content_type, body = encode_form(make_ticket(storage).fields.items(), b"x" * 5000)
    pieces = split_chunks(body, 500)

    def slow() -> Iterator[bytes]:
        for index, piece in enumerate(pieces):
            if index >= pause_after:
                time.sleep(0.06)
            yield piece

    response = LocalUploadReceiver(storage, **options).receive(content_type, slow())
    assert_refused(storage, response, 400, "RequestTimeout")
    assert response.headers["Connection"] == "close"


def test_async_receiver_times_out_a_silent_body(tmp_path: Path) -> None:
    """An async body that stops mid-file is refused after the idle timeout; its file removed."""
    storage = make_storage(tmp_path)
    content_type, body = encode_form(make_ticket(storage).fields.items(), b"x" * 5000)

    async def stalls() -> AsyncIterator[bytes]:
        yield body[:3000]
        await asyncio.sleep(30)
        yield body[3000:]

    async def run() -> tuple[LocalResponse, float]:
        receiver = LocalUploadReceiver(storage, idle_timeout=0.1)
        started = time.monotonic()
        response = await receiver.receive_async(content_type, stalls())
        return response, time.monotonic() - started

    response, waited = asyncio.run(run())
    assert_refused(storage, response, 400, "RequestTimeout")
    assert waited < 5


@pytest.mark.parametrize(
    "options",
    [
        {"batch_size": 0},
        {"idle_timeout": 0},
        {"fields_timeout": -1.0},
        {"body_timeout": 0.0},
    ],
)
def test_nonsense_limits_are_refused(tmp_path: Path, options: dict[str, Any]) -> None:
    """Zero or negative sizes and timeouts are programming errors."""
    with pytest.raises(ValueError, match="must be a positive"):
        LocalUploadReceiver(make_storage(tmp_path), **options)


def test_no_timeouts_when_disabled(tmp_path: Path) -> None:
    """None disables a timeout: a slow body is received whole."""
    storage = make_storage(tmp_path)
    content_type, body = encode_form(make_ticket(storage).fields.items(), b"x" * 2000)

    def slow() -> Iterator[bytes]:
        for piece in split_chunks(body, 1000):
            time.sleep(0.02)
            yield piece

    receiver = LocalUploadReceiver(
        storage, idle_timeout=None, fields_timeout=None, body_timeout=None
    )
    assert receiver.receive(content_type, slow()).status == 204


# ------------------------------------------------------------------------ cancellation


@pytest.mark.parametrize("max_size", [64 * MiB, MiB])
def test_cancelled_request_removes_its_file_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, max_size: int
) -> None:
    """A request cancelled mid-batch (even one already too large) leaves no file, logs nothing."""
    storage = make_storage(tmp_path, fsync=False)
    content_type, head = encode_form(make_ticket(storage, max_size=max_size).fields.items(), b"")
    head = head[: head.index(b"audio/mp4\r\n\r\n") + len(b"audio/mp4\r\n\r\n")]
    started = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield head
        yield os.urandom(MiB + 1)  # one batch, handed to a worker
        started.set()
        await asyncio.sleep(30)

    async def run() -> None:
        receiver = LocalUploadReceiver(storage, batch_size=MiB)
        task = asyncio.create_task(receiver.receive_async(content_type, body()))
        await started.wait()
        await asyncio.sleep(0.2)  # the worker has written (or refused) the batch
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.WARNING):
        asyncio.run(run())  # waits for the executor, so every worker is done
        gc.collect()  # an unobserved failed future would be reported now
    assert files_under(storage.root) == []
    assert caplog.records == []
