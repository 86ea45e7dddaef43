"""Every error becomes the ``ErrorResponse`` body: ``{"message", "error_code", "details"}``."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helppet_recordings.errors import RecordingError, UnavailableError

__all__ = [
    "MAX_REPORTED_ERRORS",
    "BodyTooLargeError",
    "UnexpectedErrorMiddleware",
    "error_body",
    "install_error_handlers",
    "recording_error_response",
]

MAX_REPORTED_ERRORS: Final = 20
"""Most field problems listed in one VALIDATION_ERROR."""

_HTTP_CODES: Final = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "REQUEST_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}
_PROBED_METHODS: Final = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
_LOGGED_DETAILS: Final = ("operation", "reason", "retry_after")
"""The only ``details`` of a server-side error that reach the log (none can hold client text)."""

_log = logging.getLogger("helppet_recordings.integrations.fastapi")


class BodyTooLargeError(HTTPException):
    """A request body passed its limit: answered 413 ``REQUEST_TOO_LARGE``."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, "The request body is too large")
        self.max_bytes = max_bytes


def error_body(message: str, error_code: str, **details: Any) -> dict[str, Any]:
    """Return the ``ErrorResponse`` shape."""
    return {"message": message, "error_code": error_code, "details": details}


def recording_error_response(
    exc: RecordingError, *, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """Answer ``exc`` with its ``http_status`` and ``to_dict()`` body.

    A retryable error (:class:`~helppet_recordings.errors.UnavailableError`)
    also gets ``Retry-After``. An app's own handler for a subclass (say, its
    401 with ``WWW-Authenticate``) can build on this.
    """
    merged = dict(headers or {})
    if isinstance(exc, UnavailableError):
        merged["Retry-After"] = str(exc.retry_after)
    return JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=merged)


async def _recording_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RecordingError)  # noqa: S101 - registered for this type only
    if exc.http_status >= 500:
        _log_server_side(request, exc)
    return recording_error_response(exc)


def _log_server_side(request: Request, exc: RecordingError) -> None:
    """Log a 5xx answer: retryable ones at WARNING, the rest at ERROR.

    Only the code, the route's template, a few known details and the causes'
    type names are written: a database error's own text can quote the row's
    parameters (an original filename, metadata).
    """
    level = logging.WARNING if isinstance(exc, UnavailableError) else logging.ERROR
    details = {key: exc.details[key] for key in _LOGGED_DETAILS if key in exc.details}
    causes = " <- ".join(type(cause).__qualname__ for cause in _causes(exc)) or "none"
    _log.log(
        level,
        "%s (%d) answered to %s %s; details %s; caused by %s",
        exc.error_code,
        exc.http_status,
        request.method,
        _route_template(request.scope),
        details,
        causes,
        extra={"error_code": exc.error_code, "http_status": exc.http_status},
    )


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen = {id(exc)}
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        yield cause
        cause = cause.__cause__ or cause.__context__


def _route_template(scope: Scope) -> str:
    """Return the matched route's path template (``/{recording_id}``, not the id), if known."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return f"{scope.get('root_path', '')}{template}" if isinstance(template, str) else "(no route)"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this type only
    problems = list(exc.errors())
    errors = [_problem(problem) for problem in problems[:MAX_REPORTED_ERRORS]]
    if not _declares_json(request.headers.get("content-type", "")):
        # FastAPI reads a body as JSON only when it says it is; otherwise the body is a string
        # and the complaint ("a valid dictionary") would not say what to change.
        for error in errors:
            if error["location"] == "body" and not error["field"]:
                error["message"] = "The body must be JSON, sent with Content-Type: application/json"
    fields = sorted({error["field"] or error["location"] for error in errors})
    body = error_body(f"Invalid request: check {', '.join(fields)}", "VALIDATION_ERROR")
    body["details"]["errors"] = errors
    if len(problems) > MAX_REPORTED_ERRORS:
        body["details"]["omitted_errors"] = len(problems) - MAX_REPORTED_ERRORS
    return JSONResponse(body, status_code=422)


def _declares_json(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _problem(problem: Any) -> dict[str, str]:
    """One field problem, without the offending input (it may be huge or sensitive)."""
    location = [str(part) for part in problem.get("loc", ())]
    where = location[0] if location else "request"
    named = (
        location[:1] in (["body"], ["query"], ["path"]) and problem.get("type") != "json_invalid"
    )
    field = ".".join(location[1:]) if named else ""
    message = str(problem.get("msg", "is not valid")).removeprefix("Value error, ")
    return {
        "field": field,
        "location": where,
        "message": message[:300],
        "type": str(problem.get("type", "")),
    }


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for this type only
    if exc.status_code == 400 and exc.__cause__ is not None:
        # FastAPI's answer to a body it could not decode as JSON at all (not UTF-8, nested too
        # deep); the contract answers every malformed body alike: 422 VALIDATION_ERROR.
        body = error_body("Invalid request: check body", "VALIDATION_ERROR")
        body["details"]["errors"] = [
            {
                "field": "",
                "location": "body",
                "message": "The body could not be read as JSON",
                "type": "json_invalid",
            }
        ]
        return JSONResponse(body, status_code=422)
    code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    details: dict[str, Any] = {}
    if isinstance(exc, BodyTooLargeError):
        details["max_bytes"] = exc.max_bytes
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        methods = set(allowed_methods(request.app.routes, request.scope))
        methods.update(
            method.strip().upper() for method in headers.get("Allow", "").split(",") if method
        )
        headers["Allow"] = ", ".join(sorted(methods))
    return JSONResponse(
        error_body(str(exc.detail), code, **details), status_code=exc.status_code, headers=headers
    )


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route in ``routes`` serves at the request's path.

    Each common method is tried against every route, so the answer does not
    depend on how the router was built: FastAPI answers 405 naming only the
    first route that matches the path (``Allow: GET`` for a path that also
    serves DELETE) or, for routes of an included router, none at all. Mounted
    apps are searched too.
    """
    found: set[str] = set()
    for method in _PROBED_METHODS:
        probe = {**scope, "method": method}
        if any(_serves(route, probe) for route in routes):
            found.add(method)
    return sorted(found)


def _serves(route: BaseRoute, scope: Scope) -> bool:
    match, child_scope = route.matches(scope)
    if match is not Match.FULL:
        return False
    if isinstance(route, Mount):
        inner = {**scope, **child_scope}
        return any(_serves(child, inner) for child in route.routes)
    return True


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    _log_unexpected(exc, request.scope)
    return _internal_error()


def _internal_error() -> JSONResponse:
    return JSONResponse(error_body("Internal server error", "INTERNAL_ERROR"), status_code=500)


def _log_unexpected(exc: BaseException, scope: Scope) -> None:
    # The frames, not the messages: a bug's message may quote what the client sent.
    frames = "".join(traceback.format_tb(exc.__traceback__))
    causes = " <- ".join(type(cause).__qualname__ for cause in _causes(exc)) or "none"
    _log.error(
        "Unhandled %s in %s %s; caused by %s\n%s",
        type(exc).__qualname__,
        scope.get("method", "?"),
        _route_template(scope),
        causes,
        frames.rstrip(),
        extra={"error_code": "INTERNAL_ERROR", "http_status": 500},
    )


class UnexpectedErrorMiddleware:
    """Answer an exception no handler took: 500 ``INTERNAL_ERROR``, logged without its message.

    Starlette's last-resort handler (the ``Exception`` handler) runs outside
    every middleware, so its 500 carries no CORS headers, and it hands the
    exception on to the server, which logs its message, and a bug's message
    may quote what the client sent. This middleware, innermost among
    ``install``'s, answers such an exception itself and ends it there. An
    exception after the answer started can only be logged; the server then
    closes the connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; answer (or log) any exception it lets out."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:  # noqa: BLE001 - the last resort, answered and logged
            _log_unexpected(exc, scope)
            if not started:
                await _internal_error()(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error in the ``ErrorResponse`` shape.

    - a :class:`~helppet_recordings.RecordingError`: its ``http_status`` and
      ``to_dict()``, with ``Retry-After`` when it is retryable; a 5xx is logged
      (without personal content) under ``helppet_recordings``;
    - a request that fails validation (body, path, query), or whose body is
      not JSON at all: 422 ``VALIDATION_ERROR``, one entry per problem in
      ``details.errors``, never echoing the input;
    - an HTTP error of the framework (unknown route, wrong method, body too
      large): its status with a matching code; a 405 lists in ``Allow`` every
      method the path serves;
    - anything else: 500 ``INTERNAL_ERROR`` with empty details, answered by
      :class:`UnexpectedErrorMiddleware` (inside the middlewares added later,
      so CORS headers come with it); its frames go to the log, never its
      message, and the exception ends there (the server logs nothing more).

    Register a handler for a subclass of ``RecordingError`` after this one to
    answer it differently (Starlette picks the most specific class).
    """
    app.add_exception_handler(RecordingError, _recording_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    # Errors of the app: answered inside the middlewares added later (CORS), not re-raised.
    app.add_middleware(UnexpectedErrorMiddleware)
    # Errors of those middlewares themselves: Starlette's last resort.
    app.add_exception_handler(Exception, _unexpected_error)
