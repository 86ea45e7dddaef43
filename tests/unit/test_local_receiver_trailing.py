"""After the file is stored: what is left of a POST body, and whether the connection stays.

A client's body normally ends with the file's closing boundary; the answer
then keeps the connection for the next request. Anything longer (an ignored
part of any size), or a body that stalls after the file, is not read to its
end: the answer says ``Connection: close``, so no request outlives the
receive deadlines once its file is stored.
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from helppet_recordings.storage.local import LocalResponse, LocalUploadReceiver
from helppet_recordings.storage.local.receiver import TRAILING_BYTES
from helppet_recordings.testing.storage_contract import AUDIO
from tests.support.local_forms import (
    BOUNDARY,
    KEY,
    encode_form,
    make_storage,
    make_ticket,
    receive,
    split_chunks,
)


def _closes(response: LocalResponse) -> bool:
    return response.headers.get("Connection") == "close"


@pytest.mark.parametrize("chunk", [None, 7, 4096])
def test_a_body_that_ends_after_the_file_keeps_the_connection(
    tmp_path: Path, chunk: int | None
) -> None:
    """Whole, or in small chunks (the closing boundary arriving on its own): kept."""
    storage = make_storage(tmp_path)
    content_type, body = encode_form(make_ticket(storage).fields.items(), AUDIO[:5000])
    chunks = [body] if chunk is None else list(split_chunks(body, chunk))
    answer = receive(storage, content_type, chunks)
    assert answer.status == 204
    assert not _closes(answer)
    assert storage.head(KEY) is not None


def test_a_long_ignored_part_after_the_file_closes_the_connection(tmp_path: Path) -> None:
    """The file is stored; the rest is not read to its end, so the connection ends."""
    storage = make_storage(tmp_path)
    padding = "z" * (2 * TRAILING_BYTES)
    content_type, body = encode_form(
        make_ticket(storage).fields.items(), AUDIO[:5000], after=[("x-ignore-pad", padding)]
    )
    answer = receive(storage, content_type, split_chunks(body, 8192))
    assert answer.status == 204
    assert _closes(answer)
    assert storage.head(KEY) is not None
    short = encode_form(
        make_ticket(storage).fields.items(), AUDIO[:5000], after=[("x-ignore-a", "b")]
    )
    assert not _closes(receive(storage, short[0], [short[1]]))


def test_async_a_body_that_stalls_after_the_file_is_answered_in_time(tmp_path: Path) -> None:
    """A trailing part that then sends nothing: stored, answered within the idle deadline."""
    storage = make_storage(tmp_path)
    content_type, body = encode_form(make_ticket(storage).fields.items(), AUDIO[:5000])
    head = body[: body.rindex(f"--{BOUNDARY}--".encode())]
    head += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="x-ignore-p"\r\n\r\n'.encode()

    async def stalling() -> AsyncIterator[bytes]:
        yield head
        await asyncio.sleep(30)
        yield b"z"

    async def run() -> LocalResponse:
        receiver = LocalUploadReceiver(storage, idle_timeout=0.2, body_timeout=5.0)
        return await receiver.receive_async(content_type, stalling())

    started = time.monotonic()
    answer = asyncio.run(run())
    assert time.monotonic() - started < 3
    assert answer.status == 204
    assert _closes(answer)
    assert storage.head(KEY) is not None


@pytest.mark.parametrize("chunk", [None, 7])
def test_async_a_body_that_ends_after_the_file_keeps_the_connection(
    tmp_path: Path, chunk: int | None
) -> None:
    """The async receiver reads the closing boundary too, and keeps the connection."""
    storage = make_storage(tmp_path)
    content_type, body = encode_form(make_ticket(storage).fields.items(), AUDIO[:5000])

    async def streamed() -> AsyncIterator[bytes]:
        for piece in [body] if chunk is None else split_chunks(body, chunk):
            yield piece

    async def run() -> LocalResponse:
        return await LocalUploadReceiver(storage).receive_async(content_type, streamed())

    answer = asyncio.run(run())
    assert answer.status == 204
    assert not _closes(answer)


@pytest.mark.parametrize("name", ["a\x01b", "x\x1b[31m", "\ufffe"])
def test_an_error_answer_echoing_a_field_name_is_xml(tmp_path: Path, name: str) -> None:
    """A repeated field whose name XML cannot hold: the S3 error document still parses."""
    storage = make_storage(tmp_path)
    content_type, body = encode_form([(name, "v"), (name, "v")], AUDIO[:10])
    answer = receive(storage, content_type, [body])
    assert answer.status == 400
    document = ET.fromstring(answer.body)  # noqa: S314 - our own answer, parsed as a client would
    assert document.findtext("Code") == "InvalidArgument"
