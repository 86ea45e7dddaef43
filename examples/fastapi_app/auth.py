"""Bearer JWT authentication: HS256, the caller's user id (a UUID) in the ``sub`` claim."""

from __future__ import annotations

import math
import time
import uuid
from typing import Any, Final

import attrs
import jwt
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from helppet_recordings import RecordingError
from helppet_recordings.integrations.fastapi import recording_error_response

__all__ = [
    "ALGORITHM",
    "MIN_SECRET_BYTES",
    "TokenVerifier",
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
    secret: str,
    user_id: uuid.UUID | str,
    *,
    expires_in: int = 3600,
    now: float | None = None,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """Return an HS256 token for ``user_id`` valid for ``expires_in`` seconds (demos, tests)."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"sub": str(user_id), "iat": issued, "exp": issued + expires_in}
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    return jwt.encode(claims, check_secret(secret), algorithm=ALGORITHM)


def _optional(value: str | None) -> str | None:
    return value or None


@attrs.frozen
class TokenVerifier:
    """Checks bearer tokens: the secret, and the audience and issuer when configured.

    A token must be HS256-signed with ``secret`` and carry ``sub`` (a non-nil
    UUID) and ``exp`` (a number, in the future). With ``audience`` its ``aud``
    must be present and name it; with ``issuer`` its ``iss`` must be present
    and equal it. Without ``audience``, a token that names one is refused
    (RFC 7519: a recipient that is not named must reject it).
    """

    secret: str = attrs.field(repr=False, converter=check_secret)
    audience: str | None = attrs.field(default=None, converter=_optional)
    issuer: str | None = attrs.field(default=None, converter=_optional)

    def authenticate(self, token: str | None) -> uuid.UUID:
        """Return the user id a valid token names; raise :class:`UnauthorizedError` otherwise."""
        if not token:
            raise UnauthorizedError
        if len(token) > _MAX_TOKEN_LENGTH:
            raise _invalid()
        required = ["sub", "exp"]
        if self.audience is not None:
            required.append("aud")
        if self.issuer is not None:
            required.append("iss")
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": required},
            )
        except jwt.ExpiredSignatureError:
            raise UnauthorizedError(
                "The bearer token has expired", reason="token_expired"
            ) from None
        except jwt.InvalidTokenError:
            raise _invalid() from None
        expiry = claims.get("exp")
        # PyJWT accepts any exp that int() takes, a numeric string among them; JSON says number.
        if isinstance(expiry, bool) or not isinstance(expiry, int | float):
            raise _invalid()
        if not math.isfinite(expiry):
            raise _invalid()
        subject = claims.get("sub")
        try:
            user_id = (
                uuid.UUID(subject) if isinstance(subject, str) and len(subject) <= 64 else None
            )
        except ValueError:
            user_id = None
        if user_id is None or user_id.int == 0:
            raise UnauthorizedError(
                "The bearer token does not name a user", reason="invalid_subject"
            )
        return user_id


def _invalid() -> UnauthorizedError:
    return UnauthorizedError("The bearer token is not valid", reason="invalid_token")


def authenticate(
    token: str | None, secret: str, *, audience: str | None = None, issuer: str | None = None
) -> uuid.UUID:
    """Return the user id a valid token names; raise :class:`UnauthorizedError` otherwise.

    A shorthand for ``TokenVerifier(secret, audience, issuer).authenticate(token)``.
    """
    return TokenVerifier(secret, audience, issuer).authenticate(token)


async def _unauthorized(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UnauthorizedError)  # noqa: S101 - registered for this type only
    return recording_error_response(exc, headers={"WWW-Authenticate": "Bearer"})


def install_unauthorized_handler(app: FastAPI) -> None:
    """Answer :class:`UnauthorizedError` with 401, its error body and ``WWW-Authenticate: Bearer``.

    It takes precedence over the integration's handler for every ``RecordingError``.
    """
    app.add_exception_handler(UnauthorizedError, _unauthorized)
