"""The upload receiver over real HTTP under hostile and unlucky clients.

uvicorn serves the bare ASGI adapter in a thread; a counting wrapper records,
for every request, how many body bytes the adapter had read when it answered
and with which status. Clients are raw sockets, so they can stall, trickle,
stream garbage or vanish mid-body.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

from helppet_recordings.storage.local import MAX_PRE_DATA_BYTES, LocalStorage
from tests.support.asgi_server import ServerThread
from tests.support.local_asgi import LocalStorageApp, Receive, Scope, Send
from tests.support.local_forms import BOUNDARY, encode_form, files_under, make_storage, make_ticket

MiB = 1024 * 1024
UVICORN_MESSAGE_BYTES = 320 * 1024
"""The most body uvicorn hands over in one message: its 64 KiB high-water mark plus one read."""


@attrs.define
class Answered:
    """One request as the server saw it: body bytes read before answering, and the status."""

    consumed: int
    status: int


class CountingApp:
    """Wraps an ASGI app; records what each request had read when its answer started."""

    def __init__(self, app: LocalStorageApp) -> None:
        self.app = app
        self.answered: list[Answered] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one request, counting the body bytes the app receives."""
        consumed = 0

        async def counted() -> dict[str, Any]:
            nonlocal consumed
            message = await receive()
            consumed += len(message.get("body", b""))
            return message

        async def recorded(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.answered.append(Answered(consumed, message["status"]))
            await send(message)

        await self.app(scope, counted, recorded)

    def wait_for_answers(self, count: int, timeout: float = 10.0) -> list[Answered]:
        """Wait until ``count`` requests were answered; return them."""
        deadline = time.monotonic() + timeout
        while len(self.answered) < count:
            assert time.monotonic() < deadline, f"only {len(self.answered)} answers"
            time.sleep(0.01)
        return self.answered


@attrs.define
class Served:
    """The app, its counting wrapper and where uvicorn serves them."""

    app: LocalStorageApp
    counting: CountingApp
    base_url: str


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """One uvicorn server for the module."""
    app = LocalStorageApp()
    counting = CountingApp(app)
    with ServerThread(counting) as server:
        yield Served(app, counting, server.base_url)


@pytest.fixture
def storage(tmp_path: Path, served: Served) -> Iterator[LocalStorage]:
    """A fresh storage behind the server, default receiver options, no answers recorded."""
    served.app.storage = make_storage(tmp_path / "store", served.base_url, fsync=False)
    served.app.receiver_options = {}
    served.counting.answered.clear()
    yield served.app.storage
    served.app.storage = None


@pytest.fixture
def server_log() -> Iterator[list[logging.LogRecord]]:
    """Every record of WARNING or above logged in the process, uvicorn's included."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(logging.WARNING)
    loggers = [logging.getLogger(), logging.getLogger("uvicorn.error")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def _connect(url: str, content_length: int) -> socket.socket:
    """Open a POST upload with the head sent, ready for body bytes."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None
    sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=10)
    sock.sendall(
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {content_length}\r\n\r\n".encode()
    )
    return sock


def _answer(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def _form_head(storage: LocalStorage, *, max_size: int = 10 * MiB) -> bytes:
    """The fields of a valid ticket and the file part's header, up to its first byte."""
    _, body = encode_form(make_ticket(storage, max_size=max_size).fields.items(), b"")
    marker = b"audio/mp4\r\n\r\n"
    return body[: body.index(marker) + len(marker)]


def _staging_is_empty(storage: LocalStorage, timeout: float = 5.0) -> bool:
    """Whether the staging directory is (or within ``timeout`` becomes) empty."""
    deadline = time.monotonic() + timeout
    while any((storage.root / ".incoming").iterdir()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# ---------------------------------------------------------------- no ticket, no buffer


def test_ticketless_garbage_is_refused_within_the_pre_data_limit(
    storage: LocalStorage, served: Served
) -> None:
    """Random bytes without a ticket are refused after about 20 KiB; the rest is never read."""
    sock = _connect(storage.upload_url, 64 * MiB)
    sent = 0
    try:
        for _ in range(256):
            sock.sendall(os.urandom(64 * 1024))
            sent += 64 * 1024
    except OSError:
        pass  # the server answered and closed: what this test wants
    finally:
        sock.close()
    (answered,) = served.counting.wait_for_answers(1)
    assert answered.status == 400
    assert answered.consumed <= MAX_PRE_DATA_BYTES + UVICORN_MESSAGE_BYTES
    assert sent < 16 * MiB
    assert files_under(storage.root) == []


def test_file_without_a_valid_ticket_is_refused_at_its_first_byte(
    storage: LocalStorage, served: Served
) -> None:
    """A file part after a forged signature is refused before anything is staged."""
    fields = dict(make_ticket(storage).fields)
    fields["signature"] = "0" * 64
    _, head = encode_form(fields.items(), b"")
    head = head[: head.index(b"audio/mp4\r\n\r\n") + len(b"audio/mp4\r\n\r\n")]
    sock = _connect(storage.upload_url, 64 * MiB)
    try:
        sock.sendall(head)
        answer = _answer(sock, 10)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 403")
    assert b"<Code>SignatureDoesNotMatch</Code>" in answer
    (answered,) = served.counting.answered
    assert answered.consumed == len(head)
    assert files_under(storage.root) == []


# ---------------------------------------------------------------------------- timeouts


def test_idle_client_is_refused_and_its_staging_removed(
    storage: LocalStorage, served: Served
) -> None:
    """A client that stops sending mid-file gets RequestTimeout and leaves no file behind."""
    served.app.receiver_options = {"idle_timeout": 0.5}
    sock = _connect(storage.upload_url, 4 * MiB)
    try:
        sock.sendall(_form_head(storage) + b"a" * 1000)
        started = time.monotonic()
        answer = _answer(sock, 10)
        waited = time.monotonic() - started
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"<Code>RequestTimeout</Code>" in answer
    assert 0.4 < waited < 5
    assert _staging_is_empty(storage)
    assert files_under(storage.root) == []


def test_silent_ticketless_client_hits_the_fields_timeout(
    storage: LocalStorage, served: Served
) -> None:
    """A client that opens an upload and sends no ticket is refused after the fields timeout."""
    served.app.receiver_options = {"fields_timeout": 0.5, "idle_timeout": 30}
    sock = _connect(storage.upload_url, MiB)
    try:
        sock.sendall(f"--{BOUNDARY}\r\n".encode())
        started = time.monotonic()
        answer = _answer(sock, 10)
        waited = time.monotonic() - started
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"<Code>RequestTimeout</Code>" in answer
    assert 0.4 < waited < 5


def test_trickling_client_hits_the_body_timeout(storage: LocalStorage, served: Served) -> None:
    """A ticket holder sending a few bytes at a time is refused when the total time is up."""
    served.app.receiver_options = {"body_timeout": 1.0, "idle_timeout": 0.5}
    sock = _connect(storage.upload_url, 4 * MiB)
    answer = b""
    try:
        sock.sendall(_form_head(storage))
        started = time.monotonic()
        # Trickle until the server answers (writing after that could reset the connection).
        while time.monotonic() - started < 10 and not select.select([sock], [], [], 0.1)[0]:
            sock.sendall(b"a" * 100)
        answer = _answer(sock, 10)
        waited = time.monotonic() - started
    finally:
        sock.close()
    assert b"<Code>RequestTimeout</Code>" in answer
    assert 0.9 < waited < 5
    assert _staging_is_empty(storage)


# ------------------------------------------------------------------- pinned checksums


def test_pinned_ticket_over_http_stores_only_its_bytes(
    storage: LocalStorage, server_log: list[logging.LogRecord]
) -> None:
    """4 MiB in batches: other bytes get 400 BadDigest and leave nothing; the right ones land."""
    body = os.urandom(4 * MiB)
    forged = body[:-1] + bytes([body[-1] ^ 1])
    digest = hashlib.sha256(body).hexdigest()
    ticket = storage.create_upload(
        key="recordings/u/ctx/pinned.m4a",
        content_type="audio/mp4",
        max_size=len(body),
        expires_in=60,
        sha256=digest,
    )

    def post(data: bytes) -> httpx.Response:
        files = {"file": ("r.m4a", data, "audio/mp4")}
        return httpx.post(ticket.url, data=dict(ticket.fields), files=files, timeout=30)

    refused = post(forged)
    assert refused.status_code == 400, refused.text
    assert "<Code>BadDigest</Code>" in refused.text
    assert _staging_is_empty(storage)
    assert files_under(storage.root) == []
    stored = post(body)
    assert stored.status_code == 204, stored.text
    data_path = storage.root / "objects" / ticket.key
    before = (data_path.stat().st_ino, storage.head(ticket.key))
    assert "<Code>BadDigest</Code>" in post(forged).text
    assert (data_path.stat().st_ino, storage.head(ticket.key)) == before
    assert before[1] is not None
    assert before[1].sha256 == digest
    assert stored.headers["etag"] == f'"{before[1].etag}"'
    assert data_path.read_bytes() == body
    assert _staging_is_empty(storage)
    assert server_log == []


# ---------------------------------------------------------------------- concurrency


def test_simultaneous_uploads_on_one_ticket_leave_one_whole_object(storage: LocalStorage) -> None:
    """200 rounds of two racing uploads: always exactly one object, its sidecar matching it."""
    barrier = threading.Barrier(3, timeout=60)
    bodies = [b"", b""]
    tickets: list[Any] = [None]
    statuses: list[list[int]] = [[], []]

    def uploader(index: int, rounds: int) -> None:
        with httpx.Client(timeout=30) as client, contextlib.suppress(threading.BrokenBarrierError):
            for _ in range(rounds):
                barrier.wait()
                ticket = tickets[0]
                try:
                    response = client.post(
                        ticket.url,
                        data=dict(ticket.fields),
                        files={"file": ("r.m4a", bodies[index], "audio/mp4")},
                    )
                except httpx.HTTPError:
                    statuses[index].append(0)
                else:
                    statuses[index].append(response.status_code)
                barrier.wait()

    rounds = 200
    threads = [threading.Thread(target=uploader, args=(i, rounds)) for i in range(2)]
    for thread in threads:
        thread.start()
    try:
        for round_number in range(rounds):
            bodies[0], bodies[1] = os.urandom(48 * 1024), os.urandom(20 * 1024)
            key = f"recordings/u/ctx/race-{round_number}.m4a"
            tickets[0] = make_ticket(storage, key=key, max_size=64 * 1024)
            barrier.wait()  # both upload
            barrier.wait()  # both answered
            stored = storage.head(key)
            assert stored is not None, f"round {round_number}: no object"
            body = next(b for b in bodies if hashlib.md5(b).hexdigest() == stored.etag)  # noqa: S324
            assert stored.size == len(body)
            assert stored.sha256 == hashlib.sha256(body).hexdigest()
            assert storage.read_range(key, offset=0, length=len(body) + 1) == body
    finally:
        barrier.abort()
        for thread in threads:
            thread.join()
    assert statuses == [[204] * rounds, [204] * rounds]
    assert list((storage.root / ".incoming").iterdir()) == []


# ------------------------------------------------------------------------ disconnects


@pytest.mark.parametrize("refused_first", [False, True])
def test_disconnecting_client_leaves_no_file_and_no_log(
    storage: LocalStorage,
    served: Served,
    server_log: list[logging.LogRecord],
    refused_first: bool,
) -> None:
    """A client gone mid-file (even after a refusal was decided) leaves no file and no log."""
    head = _form_head(storage, max_size=64 * 1024 if refused_first else 10 * MiB)
    sock = _connect(storage.upload_url, 8 * MiB)
    try:
        sock.sendall(head + os.urandom(3 * MiB // 2))
        time.sleep(0.3)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    finally:
        sock.close()
    served.counting.wait_for_answers(1)
    assert _staging_is_empty(storage)
    time.sleep(0.2)
    gc.collect()
    assert files_under(storage.root) == []
    assert [record.getMessage() for record in server_log] == []
