"""An answer that trickles in (headers, then a byte every half second) cannot hold an upload.

An answer must arrive whole within one read timeout of its headers: one
that trickles is a ``ReadTimeout``, retried until ``RetryPolicy.timeout``.
An upload given up (a part failed for good, the caller interrupted, the
uploader closed) does not wait for a part whose answer trickles.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import stamina
from starlette.types import Receive, Scope, Send

from helppet_recordings.client import ConnectionFailedError, RecordingUploader, RetryPolicy
from helppet_recordings.errors import StorageError
from tests.support.asgi_server import ServerThread
from tests.support.fake_recordings_api import API, TOKEN, FakeRecordingsApi, s3_error

MiB = 1024 * 1024
TRICKLE_BYTES = 40
"""Twenty seconds of answer, a byte every half second."""


@pytest.fixture(autouse=True)
def real_waits() -> Iterator[None]:
    """Stamina waits for real here: the tests are about how long a request takes."""
    with stamina.set_testing(False):
        yield


async def _trickle(scope: Scope, receive: Receive, send: Send) -> None:
    """Read the request, answer its headers at once, then the body a byte every 0.5 s."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-length", str(TRICKLE_BYTES).encode()), (b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for index in range(TRICKLE_BYTES):
        last = index == TRICKLE_BYTES - 1
        await send({"type": "http.response.body", "body": b" ", "more_body": not last})
        try:  # half a second, unless the client hangs up first
            if (await asyncio.wait_for(receive(), timeout=0.5))["type"] == "http.disconnect":
                return
        except TimeoutError:
            pass


@pytest.fixture
def trickling() -> Iterator[str]:
    """A server whose every answer trickles in; its base URL."""
    with ServerThread(_trickle) as server:
        yield server.base_url


def _file(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "visit.wav"
    path.write_bytes(os.urandom(size))
    return path


def test_a_trickling_api_answer_ends_with_a_timeout(trickling: str, tmp_path: Path) -> None:
    """Initiate's answer trickles: each attempt ends after the 1 s read timeout, retries after 2 s.

    CONNECTION_FAILED (``ReadTimeout``), where the upload waited for the
    whole trickle (20 s) and then could not read the answer.
    """
    policy = RetryPolicy(attempts=5, timeout=2.0, wait_initial=0.1, wait_max=0.1, wait_jitter=0)
    timeout = httpx.Timeout(5.0, read=1.0)
    with RecordingUploader(trickling, token=TOKEN, retry=policy, timeout=timeout) as uploader:
        started = time.monotonic()
        with pytest.raises(ConnectionFailedError) as caught:
            uploader.upload(_file(tmp_path, 5000))
        elapsed = time.monotonic() - started
    assert caught.value.details["reason"] == "ReadTimeout"
    assert 2.0 < elapsed < 4.5, elapsed


class TricklingPart(httpx.BaseTransport):
    """The fake API, except that part 2's answer trickles in and part 1 is refused after 0.5 s."""

    def __init__(self, api: FakeRecordingsApi, trickling: str) -> None:
        self._api = api
        self._real = httpx.HTTPTransport()
        self._trickling = httpx.URL(trickling)
        self.part_2_started = threading.Event()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Route each request."""
        part = (
            request.url.params.get("partNumber")
            if request.url.host == "in-memory.invalid"
            else None
        )
        if part == "2":
            self.part_2_started.set()
            url = request.url.copy_with(
                scheme=self._trickling.scheme, host=self._trickling.host, port=self._trickling.port
            )
            return self._real.handle_request(
                httpx.Request("PUT", url, headers=request.headers, stream=request.stream)
            )
        if part == "1":
            self.part_2_started.wait(5)
            time.sleep(0.5)  # part 2 is reading its answer by now
            return s3_error(400, "InvalidArgument", "refused for good")
        return self._api.handle(request)

    def close(self) -> None:
        """Close the real transport."""
        self._real.close()


def test_a_part_failing_for_good_does_not_wait_for_a_trickling_part(
    trickling: str, tmp_path: Path
) -> None:
    """Part 1 refused while part 2's answer trickles: raised within a second, not after 20 s."""
    transport = TricklingPart(FakeRecordingsApi(), trickling)
    with RecordingUploader(API, token=TOKEN, transport=transport, parallel=2) as uploader:
        started = time.monotonic()
        with pytest.raises(StorageError) as caught:
            uploader.upload(_file(tmp_path, 20 * MiB))
        elapsed = time.monotonic() - started
    assert caught.value.details["storage_error"] == "InvalidArgument"
    assert elapsed < 2.5, elapsed
