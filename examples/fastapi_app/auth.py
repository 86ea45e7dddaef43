"""Bearer JWT authentication: HS256, the caller's user id (a UUID) in the ``sub`` claim."""

from __future__ import annotations

import time
import uuid
from typing import Any, Final

import jwt
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from helppet_recordings import RecordingError
from helppet_recordings.integrations.fastapi import recording_error_response

__all__ = [
    "ALGORITHM",
    "MIN_SECRET_BYTES",
    "UnauthorizedError",
    "authenticate",
    "install_unauthorized_handler",
    "mint_token",
]

ALGORITHM: Final = "HS256"
"""The only accepted signing algorithm (``alg: none`` and key confusion are refused)."""

MIN_SECRET_BYTES: Final = 32
"""Shortest accepted token secret: HS256 wants a key at least as long as its hash."""

_MAX_TOKEN_LENGTH: Final = 8192


class UnauthorizedError(RecordingError):
    """No usable bearer token: missing, malformed, badly signed, expired or without a user."""

    error_code = "UNAUTHORIZED"
    http_status = 401
    default_message = "Authentication required: send 'Authorization: Bearer <token>'"


def check_secret(secret: str) -> str:
    """Return ``secret`` if it is long enough to sign tokens; raise ``ValueError`` if not."""
    if not isinstance(secret, str) or len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
        msg = f"the JWT secret must be at least {MIN_SECRET_BYTES} bytes long"
        raise ValueError(msg)
    return secret


def mint_token(
    secret: str, user_id: uuid.UUID | str, *, expires_in: int = 3600, now: float | None = None
) -> str:
    """Return an HS256 token for ``user_id`` valid for ``expires_in`` seconds (demos, tests)."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"sub": str(user_id), "iat": issued, "exp": issued + expires_in}
    return jwt.encode(claims, check_secret(secret), algorithm=ALGORITHM)


def authenticate(token: str | None, secret: str) -> uuid.UUID:
    """Return the user id a valid token names; raise :class:`UnauthorizedError` otherwise.

    The token must be HS256-signed with ``secret`` and carry ``sub`` (a
    non-nil UUID) and ``exp`` (in the future).
    """
    if not token:
        raise UnauthorizedError
    if len(token) > _MAX_TOKEN_LENGTH:
        raise UnauthorizedError("The bearer token is not valid", reason="invalid_token")
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]}
        )
    except jwt.ExpiredSignatureError:
        raise UnauthorizedError("The bearer token has expired", reason="token_expired") from None
    except jwt.InvalidTokenError:
        raise UnauthorizedError("The bearer token is not valid", reason="invalid_token") from None
    subject = claims.get("sub")
    try:
        user_id = uuid.UUID(subject) if isinstance(subject, str) and len(subject) <= 64 else None
    except ValueError:
        user_id = None
    if user_id is None or user_id.int == 0:
        raise UnauthorizedError("The bearer token does not name a user", reason="invalid_subject")
    return user_id


async def _unauthorized(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UnauthorizedError)  # noqa: S101 - registered for this type only
    return recording_error_response(exc, headers={"WWW-Authenticate": "Bearer"})


def install_unauthorized_handler(app: FastAPI) -> None:
    """Answer :class:`UnauthorizedError` with 401, its error body and ``WWW-Authenticate: Bearer``.

    It takes precedence over the integration's handler for every ``RecordingError``.
    """
    app.add_exception_handler(UnauthorizedError, _unauthorized)
