"""Paths with control characters match no route.

Starlette matches a route's path with a regular expression ending in ``$``,
which also matches before a trailing newline: ``GET /api/v1/recordings/%0A``
was served by the listing route, and ``/recordings/<id>%0A`` by the route
for ``<id>``. No route of the package has a control character in its path,
so such a path is answered 404 ``NOT_FOUND`` before routing, whichever route
it would have slipped into.
"""

from __future__ import annotations

import re
from typing import Final

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ._errors import error_body

__all__ = ["ControlCharacterPathMiddleware"]

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


class ControlCharacterPathMiddleware:
    """Answer 404 for any HTTP request whose decoded path holds an ASCII control character."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a path with a control character; pass everything else on."""
        if scope["type"] == "http" and _CONTROL.search(scope["path"]):
            response = JSONResponse(error_body("Not Found", "NOT_FOUND"), status_code=404)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
