"""CORS compares origins as origins compare (case-insensitively), and says what it refused."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

from helppet_recordings.integrations.fastapi import install

with warnings.catch_warnings():
    # Starlette prefers httpx2 for its test client; the project's tests use httpx, which works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

ALLOWED = "https://app.clinic.example"


def _client(origins: list[str]) -> TestClient:
    app = FastAPI()
    install(app, cors_origins=origins)

    @app.get("/api/ping")
    async def ping() -> dict[str, str]:
        return {"ok": "yes"}

    return TestClient(app)


def _preflight(client: TestClient, origin: str, **asks: str) -> Any:
    headers = {"Origin": origin, "Access-Control-Request-Method": "GET", **asks}
    return client.options("/api/ping", headers=headers)


@pytest.mark.parametrize(
    ("configured", "sent"),
    [
        (ALLOWED, "https://APP.Clinic.example"),
        ("HTTPS://App.Clinic.Example", ALLOWED),
        ("https://App.Clinic.Example/", "HTTPS://app.CLINIC.example"),
    ],
)
def test_an_allowed_origin_spelled_in_another_case_is_allowed(configured: str, sent: str) -> None:
    """Scheme and host are case-insensitive: the preflight passes (was a 400), answers say so."""
    with _client([configured]) as client:
        preflight = _preflight(client, sent, **{"Access-Control-Request-Headers": "authorization"})
        answer = client.get("/api/ping", headers={"Origin": sent})
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == sent  # echoed as sent
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == sent
    assert answer.headers["access-control-expose-headers"] == "ETag, Location, Retry-After"


@pytest.mark.parametrize(
    ("asks", "refused"),
    [
        ({"Access-Control-Request-Method": "PATCH"}, ["method"]),
        ({"Access-Control-Request-Headers": "x-secret"}, ["headers"]),
        (
            {"Access-Control-Request-Method": "PATCH", "Access-Control-Request-Headers": "x-a"},
            ["method", "headers"],
        ),
    ],
)
@pytest.mark.parametrize("origin", [ALLOWED, "https://App.Clinic.Example"])
def test_a_refused_method_or_header_says_which(
    origin: str, asks: dict[str, str], refused: list[str]
) -> None:
    """The error names what was refused; an origin in another case is not among it."""
    with _client([ALLOWED]) as client:
        response = _preflight(client, origin, **asks)
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "BAD_REQUEST"
    assert body["details"]["refused"] == refused
    assert body["details"]["allowed_methods"] == ["GET", "POST", "PUT", "DELETE"]
    assert int(response.headers["content-length"]) == len(response.content)


def test_a_refused_private_network_request_is_named_as_such() -> None:
    """Private network access (not allowed) is refused in the error shape, not called a method."""
    with _client([ALLOWED]) as client:
        asks = {"Access-Control-Request-Private-Network": "true"}
        response = _preflight(client, ALLOWED, **asks)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error_code"] == "BAD_REQUEST"
    assert body["details"]["refused"] == ["private-network"]
    assert body["message"] == (
        "The preflight asks for private network access this API does not allow"
    )
    assert int(response.headers["content-length"]) == len(response.content)
