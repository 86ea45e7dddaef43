"""A part that fails for good, or closing the uploader, ends the upload at once: parts stop too."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import stamina

from helppet_recordings.client import RecordingUploader, RetryPolicy
from helppet_recordings.client._api import Session
from helppet_recordings.client._files import FileIdentity, read_range
from helppet_recordings.client._retry import Aborted
from helppet_recordings.errors import RecordingError, StorageError
from tests.support.fake_recordings_api import API, TOKEN, FakeRecordingsApi, s3_error

MiB = 1024 * 1024
SLOW = RetryPolicy(attempts=6, wait_initial=1, wait_max=1, wait_jitter=0)
"""A second between attempts, six attempts: five seconds of retrying per request."""


@pytest.fixture(autouse=True)
def real_waits() -> Iterator[None]:
    """Stamina waits for real here: the tests are about how soon a wait ends."""
    with stamina.set_testing(False):
        yield


def _file(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "visit.wav"
    path.write_bytes(os.urandom(size))
    return path


def test_a_permanent_part_failure_is_raised_while_another_part_waits_to_retry(
    tmp_path: Path,
) -> None:
    """Part 1 refused for good, part 2 told to wait: raised at once (took 5.1 s), no completion."""
    api = FakeRecordingsApi()
    puts: Counter[str] = Counter()

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "in-memory.invalid":
            number = request.url.params["partNumber"]
            puts[number] += 1
            if number == "1":
                return s3_error(400, "InvalidArgument", "refused for good")
            return httpx.Response(503, headers={"Retry-After": "1"})
        return api.handle(request)

    path = _file(tmp_path, 20 * MiB)
    transport = httpx.MockTransport(handle)
    with RecordingUploader(API, token=TOKEN, transport=transport, parallel=2, retry=SLOW) as up:
        started = time.monotonic()
        with pytest.raises(StorageError) as caught:
            up.upload(path)
        elapsed = time.monotonic() - started
    assert caught.value.details["storage_error"] == "InvalidArgument"
    assert elapsed < 0.5, elapsed
    assert puts["1"] == 1
    assert puts["2"] <= 1  # its wait ended at the abort: never sent again
    assert puts["3"] == 0  # never started
    assert api.requests["POST api.test/upload/complete/{id}"] == 0


def test_parts_queued_behind_a_failed_one_never_start(tmp_path: Path) -> None:
    """One at a time: part 1's refusal is raised and parts 2 and 3 are never sent."""
    api = FakeRecordingsApi()
    api.script("PUT part", lambda _r: s3_error(400, "InvalidArgument", "refused for good"))
    path = _file(tmp_path, 20 * MiB)
    uploader = RecordingUploader(API, token=TOKEN, transport=api.transport, parallel=1)
    with uploader, pytest.raises(StorageError):
        uploader.upload(path)
    assert api.requests["PUT part"] == 1


def test_a_wait_between_attempts_ends_on_abort() -> None:
    """A request told to wait 5 s stops with Aborted as soon as the abort signal is set."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503, headers={"Retry-After": "5"})

    abort = threading.Event()
    with httpx.Client(transport=httpx.MockTransport(handle)) as http:
        session = Session(http, RetryPolicy(attempts=3))
        timer = threading.Timer(0.1, abort.set)
        timer.start()
        started = time.monotonic()
        with pytest.raises(Aborted):
            session.send(lambda: http.build_request("PUT", "http://storage.test/p"), abort=abort)
        elapsed = time.monotonic() - started
        timer.join()
    assert elapsed < 1.0, elapsed
    assert len(seen) == 1


def test_an_abort_stops_a_part_body_between_chunks(tmp_path: Path) -> None:
    """A part's body read after the abort was set ends with Aborted, not another chunk."""
    path = _file(tmp_path, MiB)
    abort = threading.Event()
    body = read_range(path, 0, MiB, identity=FileIdentity.of(path), abort=abort)
    next(body)
    abort.set()
    with pytest.raises(Aborted):
        next(body)


def _closed(caught: pytest.ExceptionInfo[RecordingError]) -> bool:
    return type(caught.value) is RecordingError and caught.value.details["reason"] == "closed"


def test_closing_the_uploader_mid_part_ends_the_upload_with_a_recording_error(
    tmp_path: Path,
) -> None:
    """``close()`` from a sending thread: the upload ends with RecordingError, not RuntimeError."""
    api = FakeRecordingsApi()
    path = _file(tmp_path, 20 * MiB)
    uploader = RecordingUploader(API, token=TOKEN, transport=api.transport, parallel=1)

    def close_then_store(request: httpx.Request) -> httpx.Response | None:
        uploader.close()
        del request
        return None  # part 1 is stored all the same

    api.script("PUT part", close_then_store)
    with pytest.raises(RecordingError) as caught:
        uploader.upload(path)
    assert _closed(caught)
    assert api.requests["PUT part"] == 1
    assert api.requests["POST api.test/upload/complete/{id}"] == 0
    with pytest.raises(RecordingError) as again:
        uploader.upload(path)  # a closed uploader uploads nothing more
    assert _closed(again)
    assert api.requests["PUT part"] == 1


def test_closing_the_uploader_ends_waits_to_retry_at_once(tmp_path: Path) -> None:
    """Parts told to wait 5 s, and an API call told so, stop as soon as another thread closes."""
    for route, size in (("PUT part", 20 * MiB), ("POST api.test/upload/initiate", MiB)):
        api = FakeRecordingsApi()
        api.script(route, *[lambda _r: httpx.Response(503, headers={"Retry-After": "5"})] * 6)
        uploader = RecordingUploader(
            API, token=TOKEN, transport=api.transport, parallel=2, retry=SLOW
        )
        timer = threading.Timer(0.2, uploader.close)
        timer.start()
        started = time.monotonic()
        with pytest.raises(RecordingError) as caught:
            uploader.upload(_file(tmp_path, size))
        elapsed = time.monotonic() - started
        timer.join()
        assert _closed(caught), route
        assert elapsed < 1.0, (route, elapsed)
        assert api.requests[route] <= 2, route
