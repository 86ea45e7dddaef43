"""A bare ASGI app serving LocalStorage's upload, part and download routes, with no framework.

It shows (and tests) that the receiver needs nothing from a web framework:
the app only routes, feeds the body and copies the answer back.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from helppet_recordings.storage.local import (
    LocalPartReceiver,
    LocalResponse,
    LocalStorage,
    LocalUploadReceiver,
    serve_download,
)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class LocalStorageApp:
    """``POST /upload``, ``PUT /part/{key}`` and ``GET``/``HEAD /download/{key}``.

    They serve the current ``storage``, which may be replaced between requests
    (tests give each test a fresh one); so may ``receiver_options``, the
    keyword arguments of each request's :class:`LocalUploadReceiver`, and
    ``part_options``, those of its :class:`LocalPartReceiver`.
    """

    def __init__(self, storage: LocalStorage | None = None, **receiver_options: Any) -> None:
        self.storage = storage
        self.receiver_options = receiver_options
        self.part_options: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI HTTP request."""
        if scope["type"] != "http":
            return
        storage = self.storage
        method, path = scope["method"], scope["path"]
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        if storage is None:
            response = LocalResponse(503, {"Content-Length": "0"})
        elif method == "POST" and path == "/upload":
            receiver = LocalUploadReceiver(storage, **self.receiver_options)
            response = await receiver.receive_async(headers.get("content-type"), _body(receive))
        elif method == "PUT" and path.startswith("/part/"):
            query = dict(urllib.parse.parse_qsl(scope["query_string"].decode("latin-1")))
            response = await LocalPartReceiver(storage, **self.part_options).receive_async(
                path.removeprefix("/part/"), query, headers.get("content-length"), _body(receive)
            )
        elif method in {"GET", "HEAD"} and path.startswith("/download/"):
            query = dict(urllib.parse.parse_qsl(scope["query_string"].decode("latin-1")))
            response = serve_download(
                storage,
                path.removeprefix("/download/"),
                query,
                range_header=headers.get("range"),
            )
        else:
            response = LocalResponse(404, {"Content-Length": "0"})
        await _send(response, send, head=method == "HEAD")


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            msg = "the client disconnected"
            raise ConnectionError(msg)
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def _send(response: LocalResponse, send: Send, *, head: bool) -> None:
    raw_headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": raw_headers})
    try:
        if response.stream is not None and not head:
            loop = asyncio.get_running_loop()
            while chunk := await loop.run_in_executor(None, next, response.stream, b""):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        else:
            await send({"type": "http.response.body", "body": b"" if head else response.body})
    finally:
        response.close()
