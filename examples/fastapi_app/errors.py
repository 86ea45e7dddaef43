"""Every error becomes the design's error body: ``{"message", "error_code", "details"}``.

- a :class:`~helppet_recordings.RecordingError`: its ``http_status`` and ``to_dict()``,
  with ``Retry-After`` when the error is retryable;
- a request that fails validation (body, path, query), or whose body is not
  JSON at all: 422 ``VALIDATION_ERROR``, one entry per problem, never echoing
  the input;
- an HTTP error of the framework (unknown route, wrong method, body too large):
  its status with a matching code (and, for a wrong method, ``Allow`` listing
  every method the path serves);
- anything else: 500 ``INTERNAL_ERROR``, with no stack trace in the answer.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from helppet_recordings import RecordingError, UnavailableError

from .auth import UnauthorizedError

__all__ = ["error_body", "install_error_handlers"]

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
_log = logging.getLogger(__name__)


def error_body(message: str, error_code: str, **details: Any) -> dict[str, Any]:
    """Return the ``ErrorResponse`` shape."""
    return {"message": message, "error_code": error_code, "details": details}


async def _recording_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RecordingError)  # noqa: S101 - registered for this type only
    headers: dict[str, str] = {}
    if isinstance(exc, UnavailableError):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, UnauthorizedError):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this type only
    problems = list(exc.errors())
    errors = [_problem(problem) for problem in problems[:MAX_REPORTED_ERRORS]]
    fields = sorted({error["field"] or error["location"] for error in errors})
    body = error_body(f"Invalid request: check {', '.join(fields)}", "VALIDATION_ERROR")
    body["details"]["errors"] = errors
    if len(problems) > MAX_REPORTED_ERRORS:
        body["details"]["omitted_errors"] = len(problems) - MAX_REPORTED_ERRORS
    return JSONResponse(body, status_code=422)


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
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for this type only
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
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
    return JSONResponse(
        error_body(str(exc.detail), code), status_code=exc.status_code, headers=headers
    )


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path.

    Starlette's 405 names only the first route matching the path, so for
    ``/api/v1/recordings/{id}`` it said ``Allow: GET`` although DELETE is served too.
    """
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match is not Match.NONE:
                methods |= route.methods
    return sorted(methods)


async def _unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
    _log.error("Unhandled error", exc_info=exc)
    return JSONResponse(error_body("Internal server error", "INTERNAL_ERROR"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error in the ``ErrorResponse`` shape."""
    app.add_exception_handler(RecordingError, _recording_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
