"""A request body limit that follows the route, not the path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._errors import BodyTooLargeError, error_body

__all__ = ["MAX_JSON_BODY_BYTES", "JsonBodyLimitMiddleware", "body_limit"]

MAX_JSON_BODY_BYTES: Final = 64 * 1024
"""Largest request body the JSON API reads (audio goes to storage, not through the API)."""

_SCOPE_KEY: Final = "helppet_recordings.body_limit"
_ENDPOINT_MARK: Final = "__helppet_recordings_body_limit__"
_UNMARKED: Final = object()  # any value but an int or None
_UNREADABLE_LENGTH: Final = 2**63
"""What a ``Content-Length`` that is not a plain number counts as: more than any limit."""
_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])


def body_limit(max_bytes: int | None) -> Callable[[_Endpoint], _Endpoint]:
    """Give one endpoint its own body limit under :class:`JsonBodyLimitMiddleware`.

    ``None`` lifts the limit for that endpoint (LocalStorage's upload route
    uses it: the signed policy bounds the upload instead). Decorate the
    endpoint function itself::

        @router.post("/bulk")
        @body_limit(4 * 1024 * 1024)
        async def bulk(...): ...
    """
    if max_bytes is not None and (isinstance(max_bytes, bool) or max_bytes < 0):
        msg = "max_bytes must be a non-negative integer or None"
        raise ValueError(msg)

    def mark(endpoint: _Endpoint) -> _Endpoint:
        setattr(endpoint, _ENDPOINT_MARK, max_bytes)
        return endpoint

    return mark


class _Budget:
    """One request's body allowance, shared by nested limit middleware."""

    __slots__ = ("default", "received", "response_started")

    def __init__(self, default: int) -> None:
        self.default = default
        self.received = 0
        self.response_started = False

    def limit(self, scope: Scope) -> int | None:
        """Return the limit of the endpoint routing chose, else the default."""
        marked: object = getattr(scope.get("endpoint"), _ENDPOINT_MARK, _UNMARKED)
        return marked if marked is None or isinstance(marked, int) else self.default


class JsonBodyLimitMiddleware:
    """Refuse request bodies over ``max_body_bytes`` with 413, counting bytes as they arrive.

    The limit applies to every HTTP request, whatever its path, mount point
    or ``root_path``, except to endpoints that :func:`body_limit` gives their
    own. It is decided when the app first reads the body, that is after
    routing: a declared ``Content-Length`` over the limit is refused before a
    byte is read, and a body without one (chunked) is cut off as soon as the
    bytes received pass the limit, so at most one chunk over the limit is
    ever held. The refusal is a :class:`BodyTooLargeError` raised to the
    reader (the app's handlers answer it 413 ``REQUEST_TOO_LARGE``); if
    nothing answers it, this middleware does. A body that passes the limit
    after the response has started reads as a client disconnect.

    Nested instances (an app mounted in another, each with its limit) share
    one count; the innermost default applies.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_JSON_BODY_BYTES) -> None:
        if isinstance(max_body_bytes, bool) or max_body_bytes < 0:
            msg = "max_body_bytes must be a non-negative integer"
            raise ValueError(msg)
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a counting ``receive``."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        outer = scope.get(_SCOPE_KEY)
        if isinstance(outer, _Budget):
            outer.default = self.max_body_bytes
            await self.app(scope, receive, send)
            return
        budget = _Budget(self.max_body_bytes)
        scope[_SCOPE_KEY] = budget
        declared = _content_length(scope)

        async def counted_receive() -> Message:
            limit = budget.limit(scope)
            if limit is not None and declared is not None and declared > limit:
                return _refuse(budget, limit)
            message = await receive()
            if message["type"] == "http.request":
                budget.received += len(message.get("body", b""))
                if limit is not None and budget.received > limit:
                    return _refuse(budget, limit)
            return message

        async def watched_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                budget.response_started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLargeError as exc:
            if budget.response_started:
                raise
            # Answered here only when nothing inside did (an app without the error handlers).
            too_large = error_body(str(exc.detail), "REQUEST_TOO_LARGE", max_bytes=exc.max_bytes)
            await JSONResponse(too_large, status_code=413)(scope, receive, send)


def _refuse(budget: _Budget, limit: int) -> Message:
    if budget.response_started:
        return {"type": "http.disconnect"}
    raise BodyTooLargeError(limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else _UNREADABLE_LENGTH
    return None
