"""LocalStorage multipart uploads: the contract over real HTTP, and the part receiver's rules."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import time
import tracemalloc
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from helppet_recordings.errors import StorageError
from helppet_recordings.multipart import MAX_PART_SIZE, MAX_PARTS
from helppet_recordings.storage.local import (
    STALE_STAGING_SECONDS,
    LocalPartReceiver,
    LocalResponse,
    LocalStorage,
)
from helppet_recordings.testing.multipart_contract import MultipartContract, SendPart
from tests.support.asgi_server import ServerThread
from tests.support.local_asgi import LocalStorageApp
from tests.support.local_forms import SECRET, FakeClock, error_code, files_under

KEY = "recordings/u/ctx/a.m4a"


def _md5(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()  # noqa: S324 - part ETags are MD5


def _strays(root: Path) -> list[str]:
    """Files under ``root`` that are neither an object, a sidecar, nor in a live upload."""
    strays = []
    for name in files_under(root):
        top, _, rest = name.partition("/")
        upload, _, file_name = rest.partition("/")
        in_live_upload = (
            top == ".multipart"
            and not upload.startswith(".")
            and not file_name.startswith(".")
            and "/" not in file_name
        )
        if top not in {"objects", "sidecars"} and not in_live_upload:
            strays.append(name)
    return strays


@pytest.fixture(scope="module")
def http_app() -> Iterator[tuple[LocalStorageApp, str]]:
    """A bare ASGI app around the receivers, served by uvicorn on 127.0.0.1."""
    app = LocalStorageApp()
    with ServerThread(app) as server:
        yield app, server.base_url


@pytest.fixture
def clock() -> FakeClock:
    """The storage's clock, at the real time, moved by the tests."""
    return FakeClock(time.time())


@pytest.fixture
def local(
    tmp_path: Path, http_app: tuple[LocalStorageApp, str], clock: FakeClock
) -> Iterator[LocalStorage]:
    """A fresh LocalStorage served over HTTP; no stray file may be left when the test ends."""
    app, base_url = http_app
    app.storage = LocalStorage(tmp_path / "store", base_url, SECRET, clock=clock)
    app.part_options = {}
    yield app.storage
    app.storage = None
    deadline = time.monotonic() + 5  # a refused request's clean-up may finish just after its answer
    while _strays(tmp_path / "store") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _strays(tmp_path / "store") == []


def _put(url: str, body: bytes) -> httpx.Response:
    return httpx.put(url, content=body, timeout=30)


class TestLocalMultipart(MultipartContract):
    """The multipart contract on LocalStorage, every part a real HTTP PUT to uvicorn."""

    @pytest.fixture
    def storage(self, local: LocalStorage) -> LocalStorage:
        """The module server's fresh LocalStorage."""
        return local

    @pytest.fixture
    def send_part(self, storage: LocalStorage) -> SendPart:
        """PUT the body; a kept part is 200 with its quoted MD5, a refusal a 4xx S3 error."""

        def send(url: str, body: bytes) -> bool:
            response = _put(url, body)
            if response.status_code == 200:
                assert response.headers["etag"] == f'"{_md5(body)}"'
                return True
            assert 400 <= response.status_code < 500, response.text
            assert response.headers["content-type"] == "application/xml"
            return False

        return send

    @pytest.fixture
    def advance_clock(self, clock: FakeClock) -> Callable[[float], None]:
        """Move the storage's clock instead of sleeping."""

        def advance(seconds: float) -> None:
            clock.now += seconds

        return advance


# ----------------------------------------------------------------- URLs and limits


def test_part_url_names_only_the_key_upload_part_size_expiry_and_signature(
    local: LocalStorage,
) -> None:
    """The URL is PUT {base_url}/part/{key} with the signed parameters and nothing else."""
    upload_id = local.create_multipart_upload(key=KEY, content_type="audio/mp4")
    url = local.sign_upload_part(
        key=KEY, upload_id=upload_id, part_number=3, size=99, expires_in=60
    )
    parts = urllib.parse.urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{local.base_url}/part/{KEY}"
    query = dict(urllib.parse.parse_qsl(parts.query))
    assert set(query) == {"uploadId", "partNumber", "size", "expires", "sig"}
    assert (query["uploadId"], query["partNumber"], query["size"]) == (upload_id, "3", "99")
    local.abort_multipart_upload(key=KEY, upload_id=upload_id)


@pytest.mark.parametrize(
    ("part_number", "size"), [(0, 10), (MAX_PARTS + 1, 10), (1, 0), (1, MAX_PART_SIZE + 1)]
)
def test_parts_outside_s3_limits_are_not_signed(
    local: LocalStorage, part_number: int, size: int
) -> None:
    """Part numbers 1..10,000 and sizes 1..5 GiB only."""
    with pytest.raises(ValueError, match=r"part|size"):
        local.sign_upload_part(
            key=KEY, upload_id="0" * 32, part_number=part_number, size=size, expires_in=60
        )


def test_unsafe_key_is_refused_at_create(local: LocalStorage) -> None:
    """A key that could leave the root never becomes an upload."""
    with pytest.raises(ValueError, match="key"):
        local.create_multipart_upload(key="../outside.m4a", content_type="audio/mp4")
    assert local.list_multipart_uploads(prefix="") == []


@pytest.mark.parametrize("upload_id", ["", "../../objects", "0" * 32, "A" * 32])
def test_unknown_or_malformed_upload_ids_are_no_such_upload(
    local: LocalStorage, upload_id: str
) -> None:
    """An id storage never issued is NoSuchUpload for list and complete, and no error to abort."""
    for call in (
        lambda: local.list_parts(key=KEY, upload_id=upload_id),
        lambda: local.complete_multipart_upload(key=KEY, upload_id=upload_id, parts=[(1, "0")]),
    ):
        with pytest.raises(StorageError) as raised:
            call()
        assert raised.value.details["storage_error"] == "NoSuchUpload"
    local.abort_multipart_upload(key=KEY, upload_id=upload_id)


def test_upload_id_of_another_key_is_no_such_upload(local: LocalStorage) -> None:
    """An upload id works only with the key it was started for."""
    upload_id = local.create_multipart_upload(key=KEY, content_type="audio/mp4")
    with pytest.raises(StorageError):
        local.list_parts(key="recordings/u/ctx/other.m4a", upload_id=upload_id)
    local.abort_multipart_upload(key="recordings/u/ctx/other.m4a", upload_id=upload_id)
    assert [info.upload_id for info in local.list_multipart_uploads(prefix="")] == [upload_id]
    local.abort_multipart_upload(key=KEY, upload_id=upload_id)


# ------------------------------------------------------- what objects and listings see


def test_parts_are_outside_the_object_namespace(local: LocalStorage) -> None:
    """Held parts are never objects: iter_objects and head see the object only once completed."""
    upload_id = local.create_multipart_upload(key=KEY, content_type="audio/mp4")
    url = local.sign_upload_part(key=KEY, upload_id=upload_id, part_number=1, size=5, expires_in=60)
    assert _put(url, b"abcde").status_code == 200

    assert list(local.iter_objects("")) == []
    assert local.head(KEY) is None

    local.complete_multipart_upload(key=KEY, upload_id=upload_id, parts=[(1, _md5(b"abcde"))])
    assert [obj.key for obj in local.iter_objects("")] == [KEY]
    assert not (local.root / ".multipart" / upload_id).exists()


def test_completed_object_has_a_sidecar_like_a_post_upload(local: LocalStorage) -> None:
    """The assembled object's ETag is the MD5 of its bytes; its SHA-256 and type are recorded."""
    upload_id = local.create_multipart_upload(key=KEY, content_type="audio/wav")
    bodies = {1: b"a" * 7, 2: b"b" * 3}
    for number, body in bodies.items():
        url = local.sign_upload_part(
            key=KEY, upload_id=upload_id, part_number=number, size=len(body), expires_in=60
        )
        assert _put(url, body).status_code == 200
    with pytest.raises(StorageError) as raised:  # part 1 is below 5 MiB and not the last
        local.complete_multipart_upload(
            key=KEY, upload_id=upload_id, parts=[(n, _md5(b)) for n, b in bodies.items()]
        )
    assert raised.value.details["storage_error"] == "EntityTooSmall"

    stored = local.complete_multipart_upload(
        key=KEY, upload_id=upload_id, parts=[(2, _md5(b"bbb"))]
    )

    assert (stored.size, stored.etag, stored.content_type) == (3, _md5(b"bbb"), "audio/wav")
    assert stored.sha256 == hashlib.sha256(b"bbb").hexdigest()
    assert local.head(KEY) == stored


def test_parts_out_of_order_in_the_list_are_refused(local: LocalStorage) -> None:
    """Completion takes the part list in ascending order, once each (InvalidPartOrder)."""
    upload_id = local.create_multipart_upload(key=KEY, content_type="audio/mp4")
    for parts in ([], [(2, "x"), (1, "y")], [(1, "x"), (1, "x")]):
        with pytest.raises(StorageError) as raised:
            local.complete_multipart_upload(key=KEY, upload_id=upload_id, parts=parts)
        assert raised.value.details["storage_error"] == "InvalidPartOrder"
    local.abort_multipart_upload(key=KEY, upload_id=upload_id)


def test_an_upload_survives_a_restart_and_debris_is_purged(
    local: LocalStorage, http_app: tuple[LocalStorageApp, str]
) -> None:
    """A new LocalStorage on the root lists the upload and its parts; day-old debris goes."""
    upload_id = local.create_multipart_upload(key=KEY, content_type="audio/mp4")
    url = local.sign_upload_part(key=KEY, upload_id=upload_id, part_number=1, size=4, expires_in=60)
    assert _put(url, b"abcd").status_code == 200
    multipart = local.root / ".multipart"
    debris = [multipart / upload_id / ".tmp-crashed", multipart / ".done-crashed" / "00001.x"]
    debris[1].parent.mkdir()
    old = time.time() - STALE_STAGING_SECONDS - 60
    for path in debris:
        path.write_bytes(b"left by a crash")
        os.utime(path, (old, old))
    os.utime(debris[1].parent, (old, old))

    again = LocalStorage(local.root, local.base_url, SECRET)
    http_app[0].storage = again

    assert [info.upload_id for info in again.list_multipart_uploads(prefix="")] == [upload_id]
    assert again.list_parts(key=KEY, upload_id=upload_id) == [(1, 4, _md5(b"abcd"))]
    assert not any(path.exists() for path in debris)
    assert not debris[1].parent.exists()
    again.abort_multipart_upload(key=KEY, upload_id=upload_id)
    assert files_under(local.root) == []


# ------------------------------------------------------------------------ the receiver


class _WatchedBody:
    """An async body that records whether anyone read from it."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.read = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        self.read = True
        if not self.data:
            raise StopAsyncIteration
        data, self.data = self.data, b""
        return data


def _signed(
    local: LocalStorage, changes: dict[str, str] | None = None
) -> tuple[str, dict[str, str]]:
    """Start an upload and sign a 10-byte part 1; return the URL's key and (changed) query."""
    upload_id = local.create_multipart_upload(key=KEY, content_type="audio/mp4")
    url = local.sign_upload_part(
        key=KEY, upload_id=upload_id, part_number=1, size=10, expires_in=60
    )
    parts = urllib.parse.urlsplit(url)
    key = urllib.parse.unquote(parts.path.split("/part/", 1)[1])
    return key, {**dict(urllib.parse.parse_qsl(parts.query)), **(changes or {})}


@pytest.mark.parametrize(
    ("changes", "content_length", "status", "code"),
    [
        ({"sig": "0" * 64}, "10", 403, "SignatureDoesNotMatch"),
        ({"size": "11"}, "11", 403, "SignatureDoesNotMatch"),
        ({"partNumber": "2"}, "10", 403, "SignatureDoesNotMatch"),
        ({"expires": "1"}, "10", 403, "SignatureDoesNotMatch"),
        ({"sig": ""}, "10", 403, "AccessDenied"),
        ({}, None, 411, "MissingContentLength"),
        ({}, "9", 403, "SignatureDoesNotMatch"),
        ({}, "11", 403, "SignatureDoesNotMatch"),
        ({}, "ten", 403, "SignatureDoesNotMatch"),
    ],
)
def test_url_and_length_are_checked_before_any_body_byte(
    local: LocalStorage,
    changes: dict[str, str],
    content_length: str | None,
    status: int,
    code: str,
) -> None:
    """A bad URL or Content-Length is refused without reading the body; the part is not kept."""
    key, query = _signed(local, changes)
    body = _WatchedBody(b"x" * 10)

    answer = asyncio.run(LocalPartReceiver(local).receive_async(key, query, content_length, body))

    assert (answer.status, error_code(answer)) == (status, code)
    assert answer.headers["Connection"] == "close"
    assert body.read is False
    assert local.list_parts(key=KEY, upload_id=query["uploadId"]) == []


def test_expired_url_is_refused_before_the_body(local: LocalStorage, clock: FakeClock) -> None:
    """Past its expiry a part URL is 403 AccessDenied, the body unread."""
    key, query = _signed(local)
    clock.now += 61
    body = _WatchedBody(b"x" * 10)
    answer = asyncio.run(LocalPartReceiver(local).receive_async(key, query, "10", body))
    assert (answer.status, error_code(answer), body.read) == (403, "AccessDenied", False)


def test_gone_upload_is_refused_before_the_body(local: LocalStorage) -> None:
    """A part of an aborted upload is 404 NoSuchUpload, the body unread, no directory made."""
    key, query = _signed(local)
    local.abort_multipart_upload(key=KEY, upload_id=query["uploadId"])
    body = _WatchedBody(b"x" * 10)
    answer = asyncio.run(LocalPartReceiver(local).receive_async(key, query, "10", body))
    assert (answer.status, error_code(answer), body.read) == (404, "NoSuchUpload", False)
    assert files_under(local.root) == []
    assert list((local.root / ".multipart").iterdir()) == []


@pytest.mark.parametrize("body", [[b"x" * 6, b"x" * 5], [b"x" * 9]])
def test_a_body_longer_or_shorter_than_its_length_is_refused(
    local: LocalStorage, body: list[bytes]
) -> None:
    """A body that breaks its Content-Length (a server that lets it) is 400 and kept nowhere."""
    key, query = _signed(local)
    answer: LocalResponse = LocalPartReceiver(local).receive(key, query, "10", body)
    assert (answer.status, error_code(answer)) == (400, "IncompleteBody")
    assert local.list_parts(key=KEY, upload_id=query["uploadId"]) == []
    assert _strays(local.root) == []


def _raw_request(base_url: str, head: str, body: bytes = b"", *, timeout: float = 5) -> bytes:
    """Send a request head and ``body`` over a plain socket; return what the server answers."""
    netloc = urllib.parse.urlsplit(base_url).netloc
    host, port = netloc.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1") + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if b"</Error>" in answer:
                break
        return answer


def test_a_forged_part_is_answered_before_its_body_is_sent(local: LocalStorage) -> None:
    """Over HTTP, a 5 MiB part with a bad signature gets 403 while no body byte was sent."""
    upload_id = local.create_multipart_upload(key=KEY, content_type="audio/mp4")
    url = local.sign_upload_part(
        key=KEY, upload_id=upload_id, part_number=1, size=5 * 1024 * 1024, expires_in=60
    )
    parts = urllib.parse.urlsplit(url)
    forged = parts.query.replace("sig=", "sig=0")
    head = (
        f"PUT {parts.path}?{forged} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Length: {5 * 1024 * 1024}\r\n\r\n"
    )
    answer = _raw_request(local.base_url, head)
    assert answer.startswith(b"HTTP/1.1 403 ")
    assert b"<Code>SignatureDoesNotMatch</Code>" in answer
    assert local.list_parts(key=KEY, upload_id=upload_id) == []


def test_chunked_part_without_length_is_refused(local: LocalStorage) -> None:
    """A part streamed chunked (no Content-Length) is 411 MissingContentLength."""
    key, query = _signed(local)
    url = f"{local.base_url}/part/{key}?{urllib.parse.urlencode(query)}"
    response = httpx.put(url, content=iter([b"x" * 5, b"x" * 5]), timeout=10)
    assert "content-length" not in response.request.headers
    assert response.status_code == 411
    assert "<Code>MissingContentLength</Code>" in response.text
    assert local.list_parts(key=KEY, upload_id=query["uploadId"]) == []


def test_idle_client_is_timed_out_and_nothing_kept(
    local: LocalStorage, http_app: tuple[LocalStorageApp, str]
) -> None:
    """A client that stops sending mid-part gets 400 RequestTimeout; its temp file goes."""
    http_app[0].part_options = {"idle_timeout": 0.3}
    key, query = _signed(local)
    head = (
        f"PUT /part/{key}?{urllib.parse.urlencode(query)} HTTP/1.1\r\n"
        "Host: x\r\nContent-Length: 10\r\n\r\n"
    )
    answer = _raw_request(local.base_url, head, b"x" * 4)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"<Code>RequestTimeout</Code>" in answer
    assert local.list_parts(key=KEY, upload_id=query["uploadId"]) == []


@pytest.mark.parametrize("ending", ["complete", "abort"])
def test_a_part_in_flight_when_the_upload_ends_is_refused(local: LocalStorage, ending: str) -> None:
    """A PUT still streaming at completion or abort gets 404 and leaves nothing behind."""
    upload_id = local.create_multipart_upload(key=KEY, content_type="audio/mp4")
    url = local.sign_upload_part(
        key=KEY, upload_id=upload_id, part_number=1, size=10, expires_in=60
    )
    assert _put(url, b"a" * 10).status_code == 200
    directory = local.root / ".multipart" / upload_id
    release = threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield b"b" * 5
        release.wait(10)
        yield b"b" * 5

    answers: list[httpx.Response] = []
    sender = threading.Thread(
        target=lambda: answers.append(
            httpx.put(url, content=slow_body(), headers={"Content-Length": "10"}, timeout=30)
        )
    )
    sender.start()
    deadline = time.monotonic() + 10
    while not any(p.name.startswith(".tmp-") for p in directory.iterdir()):
        assert time.monotonic() < deadline, "the second PUT never started writing"
        time.sleep(0.01)

    if ending == "complete":
        local.complete_multipart_upload(key=KEY, upload_id=upload_id, parts=[(1, _md5(b"a" * 10))])
    else:
        local.abort_multipart_upload(key=KEY, upload_id=upload_id)
    release.set()
    sender.join(30)

    (answer,) = answers
    assert answer.status_code == 404
    assert "<Code>NoSuchUpload</Code>" in answer.text
    assert not directory.exists()
    expected = ["objects/" + KEY, "sidecars/" + KEY] if ending == "complete" else []
    assert files_under(local.root) == expected
    if ending == "complete":
        assert local.read_range(KEY, offset=0, length=20) == b"a" * 10


def test_concurrent_retries_of_one_part_leave_one_file(local: LocalStorage) -> None:
    """Eight PUTs of one part at once: one part listed, its bytes one of theirs, whole."""
    upload_id = local.create_multipart_upload(key=KEY, content_type="audio/mp4")
    url = local.sign_upload_part(
        key=KEY, upload_id=upload_id, part_number=1, size=1000, expires_in=60
    )
    bodies = [bytes([n]) * 1000 for n in range(8)]
    threads = [threading.Thread(target=_put, args=(url, body)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    (part,) = local.list_parts(key=KEY, upload_id=upload_id)
    assert part.etag in {_md5(body) for body in bodies}
    assert len(list((local.root / ".multipart" / upload_id).iterdir())) == 2  # upload.json too
    local.abort_multipart_upload(key=KEY, upload_id=upload_id)


def test_part_receipt_and_assembly_memory_is_bounded(tmp_path: Path) -> None:
    """A 50 MiB part received (async) and assembled peaks at a few MiB of Python memory each."""
    storage = LocalStorage(tmp_path, "http://127.0.0.1:9", SECRET, fsync=False)
    size = 50 * 1024 * 1024
    upload_id = storage.create_multipart_upload(key=KEY, content_type="audio/mp4")
    url = storage.sign_upload_part(
        key=KEY, upload_id=upload_id, part_number=1, size=size, expires_in=60
    )
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    block = bytes(range(256)) * 256  # 64 KiB

    async def body() -> AsyncIterator[bytes]:
        for _ in range(size // len(block)):
            yield block

    tracemalloc.start()
    try:
        answer = asyncio.run(
            LocalPartReceiver(storage).receive_async(KEY, query, str(size), body())
        )
        _, receipt_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        (part,) = storage.list_parts(key=KEY, upload_id=upload_id)
        stored = storage.complete_multipart_upload(
            key=KEY, upload_id=upload_id, parts=[(1, part.etag)]
        )
        _, assembly_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status == 200
    assert stored.size == size
    assert receipt_peak < 6 * 1024 * 1024, receipt_peak
    assert assembly_peak < 6 * 1024 * 1024, assembly_peak


def test_a_failing_disk_is_a_storage_error(tmp_path: Path) -> None:
    """When the uploads' directory cannot be made, create raises StorageError, not OSError."""
    storage = LocalStorage(tmp_path, "http://127.0.0.1:9", SECRET)
    (tmp_path / ".multipart").write_bytes(b"in the way")
    with pytest.raises(StorageError) as raised:
        storage.create_multipart_upload(key=KEY, content_type="audio/mp4")
    assert raised.value.details["storage_error"] == "InternalError"
    assert isinstance(raised.value.__cause__, OSError)


def test_a_client_that_leaves_mid_part_leaves_nothing(local: LocalStorage) -> None:
    """A connection closed halfway through a part's body leaves no part and no temporary file."""
    key, query = _signed(local)
    directory = local.root / ".multipart" / query["uploadId"]
    netloc = urllib.parse.urlsplit(local.base_url).netloc
    host, port = netloc.rsplit(":", 1)
    head = f"PUT /part/{key}?{urllib.parse.urlencode(query)} HTTP/1.1\r\nHost: x\r\n"
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"{head}Content-Length: 10\r\n\r\n".encode() + b"x" * 4)
        deadline = time.monotonic() + 5
        while not any(p.name.startswith(".tmp-") for p in directory.iterdir()):
            assert time.monotonic() < deadline, "the part never started"
            time.sleep(0.01)
    while any(p.name.startswith(".tmp-") for p in directory.iterdir()):
        assert time.monotonic() < deadline + 5, "the temporary file stayed"
        time.sleep(0.01)
    assert local.list_parts(key=KEY, upload_id=query["uploadId"]) == []
