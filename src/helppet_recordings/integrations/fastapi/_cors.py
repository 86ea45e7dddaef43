"""CORS for browser clients (contract section 5), on Starlette's CORSMiddleware.

Allowed origins are parsed by :func:`helppet_recordings.origins.parse_cors_origins`,
as ``DeploymentSettings`` and ``bucket-setup`` parse them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Final

from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helppet_recordings.origins import normalise_origin, parse_cors_origins

__all__ = [
    "CORS_ALLOW_HEADERS",
    "CORS_ALLOW_METHODS",
    "CORS_EXPOSE_HEADERS",
    "CorsMiddleware",
    "normalise_origin",
    "parse_cors_origins",
]

CORS_ALLOW_METHODS: Final = ("GET", "POST", "PUT", "DELETE")
"""Methods an allowed origin may use."""

CORS_ALLOW_HEADERS: Final = ("Authorization", "Content-Type")
"""Request headers an allowed origin may send."""

CORS_EXPOSE_HEADERS: Final = ("ETag", "Location", "Retry-After")
"""Response headers an allowed origin's scripts may read."""

CORS_MAX_AGE: Final = 600
"""Seconds a browser may cache a preflight answer."""

OriginsSource = Iterable[str] | Callable[[], Iterable[str]]
"""Origins, or a function returning them (called once, at the first request)."""


class CorsMiddleware:
    """CORS for ``origins`` only; every other request passes through without CORS headers.

    Requests from an allowed origin go through Starlette's ``CORSMiddleware``
    with :data:`CORS_ALLOW_METHODS`, :data:`CORS_ALLOW_HEADERS` and
    :data:`CORS_EXPOSE_HEADERS` (no credentials: the API takes bearer
    tokens); a preflight refused for its method or request headers is 400
    ``BAD_REQUEST`` in the error shape. Origins are compared as
    :func:`normalise_origin` writes them (case-insensitively), here and in
    Starlette's middleware alike. A request from any other origin, a
    preflight included, reaches the app as if CORS were off (so a preflight
    gets the app's own 405, with no ``Access-Control-Allow-*`` header); its
    answer, and that of a request without ``Origin``, says ``Vary: Origin``.
    With no origins at all, nothing changes.

    ``origins`` may be a function, called at the first request: apps that
    read their configuration at start-up pass one.
    """

    def __init__(self, app: ASGIApp, origins: OriginsSource) -> None:
        self.app = app
        self._source = origins
        self._allowed: frozenset[str] | None = None
        self._cors: ASGIApp | None = None

    def _resolve(self) -> frozenset[str]:
        allowed = self._allowed
        if allowed is None:
            source = self._source
            allowed = frozenset(parse_cors_origins(source() if callable(source) else source))
            self._cors = _SameOrigins(
                self.app,
                allow_origins=sorted(allowed),
                allow_methods=CORS_ALLOW_METHODS,
                allow_headers=CORS_ALLOW_HEADERS,
                expose_headers=CORS_EXPOSE_HEADERS,
                max_age=CORS_MAX_AGE,
            )
            self._allowed = allowed
        return allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send allowed origins' requests through CORSMiddleware, the rest straight on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        allowed = self._resolve()
        origin = _origin(scope)
        if not allowed:
            await self.app(scope, receive, send)
        elif origin is None:  # the answer would differ with one: caches must know
            await self.app(scope, receive, _vary_on_origin(send))
        elif origin in allowed and self._cors is not None:
            refusals = _preflight_refusals_as_errors(send) if _is_preflight(scope) else send
            await self._cors(scope, receive, refusals)
        else:
            await self.app(scope, receive, _vary_on_origin(send))


class _SameOrigins(CORSMiddleware):
    """Starlette's CORSMiddleware, comparing origins as :class:`CorsMiddleware` does.

    Starlette compares the ``Origin`` header with its list exactly; an allowed
    origin spelled in another case was refused as a preflight (and got no
    ``Access-Control-Allow-Origin`` otherwise). The header is still echoed as sent.
    """

    def is_allowed_origin(self, origin: str) -> bool:
        """Whether ``origin``, normalised, is one of the allowed origins."""
        return normalise_origin(origin) in self.allow_origins


def _origin(scope: Scope) -> str | None:
    name: bytes
    value: bytes
    for name, value in scope["headers"]:
        if name == b"origin":
            return normalise_origin(value.decode("latin-1"))
    return None


def _is_preflight(scope: Scope) -> bool:
    return scope["method"] == "OPTIONS" and any(
        name == b"access-control-request-method" for name, _ in scope["headers"]
    )


def _preflight_refusals_as_errors(send: Send) -> Send:
    """Answer CORSMiddleware's refusal of a method or headers (400, plain text) as an error.

    Starlette's body names what it refused (``Disallowed CORS method,
    headers``, or ``private-network`` for a request for private network
    access); the refusal is held until it is read. A refusal naming none of
    those is passed on as Starlette wrote it.
    """
    held: Message | None = None
    body = b""

    async def send_shaped(message: Message) -> None:
        nonlocal held, body
        if message["type"] == "http.response.start" and message["status"] == 400:
            held = message
            return
        if held is None or message["type"] != "http.response.body":
            await send(message)
            return
        body += message.get("body", b"")
        if message.get("more_body", False):
            return
        start, held = held, None
        refused = _refused(body) & set(_REFUSABLE)
        if not refused:
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        shaped = _preflight_refusal(refused)
        headers = MutableHeaders(scope=start)  # keeps Vary and the allowed lists
        headers["content-type"] = "application/json"
        headers["content-length"] = str(len(shaped))
        await send(start)
        await send({"type": "http.response.body", "body": shaped})

    return send_shaped


_REFUSABLE: Final = {
    "method": "a method",
    "headers": "request headers",
    "private-network": "private network access",
}
"""What a CORS preflight may be refused, as Starlette names it, and how the error says it."""


def _refused(body: bytes) -> set[str]:
    """Return what Starlette's refusal names (``Disallowed CORS method, headers``)."""
    text = body.decode("latin-1").removeprefix("Disallowed CORS ")
    return {part.strip() for part in text.split(",")}


def _preflight_refusal(refused: set[str]) -> bytes:
    asked = " and ".join(text for part, text in _REFUSABLE.items() if part in refused)
    return json.dumps(
        {
            "message": f"The preflight asks for {asked} this API does not allow",
            "error_code": "BAD_REQUEST",
            "details": {
                "refused": [part for part in _REFUSABLE if part in refused],
                "allowed_methods": list(CORS_ALLOW_METHODS),
                "allowed_headers": list(CORS_ALLOW_HEADERS),
            },
        }
    ).encode()


def _vary_on_origin(send: Send) -> Send:
    async def send_varying(message: Message) -> None:
        if message["type"] == "http.response.start":
            MutableHeaders(scope=message).add_vary_header("Origin")
        await send(message)

    return send_varying
