"""The FastAPI example through its test client: routes, auth, error mapping, configuration."""

from __future__ import annotations

import collections
import datetime as dt
import gc
import hashlib
import logging
import re
import sqlite3
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import jwt
import pytest
from examples.fastapi_app.auth import mint_token
from examples.fastapi_app.config import AppConfig
from examples.fastapi_app.main import create_app
from starlette.exceptions import StarletteDeprecationWarning

from helppet_recordings import (
    InMemoryRepository,
    RecordingService,
    RecordingSettings,
    RepositoryError,
    StorageUnavailableError,
)
from helppet_recordings.environment import ConfigurationError
from helppet_recordings.models import StoredObject, UploadTicket
from helppet_recordings.storage.local import LocalStorage
from helppet_recordings.testing.clock import FakeClock
from tests.support.faults import FaultyRepository

with warnings.catch_warnings():
    # Starlette prefers httpx2 for its test client; the project's tests use httpx, which works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

SECRET = "example-app-test-secret-" + "0123456789abcdef" * 3  # 72 bytes: HS512 tokens too
OTHER_SECRET = "another-secret-0123456789abcdefghij"
BASE = "/api/v1/recordings"
AUDIO = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4
APPOINTMENT = "123e4567-e89b-12d3-a456-426614174000"


def auth(user: uuid.UUID, secret: str = SECRET) -> dict[str, str]:
    """Headers carrying a valid token for ``user``."""
    return {"Authorization": f"Bearer {mint_token(secret, user)}"}


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    """LocalStorage reached at the test client's host."""
    return LocalStorage(
        tmp_path / "store", "http://testserver/local-storage", "local-secret-0123456789"
    )


@pytest.fixture
def service(storage: LocalStorage) -> RecordingService:
    """A service over the in-memory repository and LocalStorage."""
    settings = RecordingSettings(max_file_size=64 * 1024)
    return RecordingService(storage=storage, repository=InMemoryRepository(), settings=settings)


@pytest.fixture
def client(service: RecordingService, storage: LocalStorage) -> Iterator[TestClient]:
    """The example app on the injected backends."""
    with TestClient(create_app(service, jwt_secret=SECRET, local_storage=storage)) as test_client:
        yield test_client


@pytest.fixture
def user() -> uuid.UUID:
    """A caller."""
    return uuid.uuid4()


def initiate(client: TestClient, user: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    """Initiate an upload and return the ticket."""
    body = {
        "appointment_id": APPOINTMENT,
        "filename": "visit.wav",
        "content_type": "audio/wav",
        "estimated_duration_seconds": 3.5,
        **overrides,
    }
    response = client.post(f"{BASE}/upload/initiate", json=body, headers=auth(user))
    assert response.status_code == 200, response.text
    ticket: dict[str, Any] = response.json()
    return ticket


def upload(client: TestClient, ticket: dict[str, Any], body: bytes = AUDIO) -> int:
    """POST the file as the phone does; return the status."""
    content_type = ticket["upload_fields"]["Content-Type"]
    response = client.post(
        ticket["upload_url"],
        data=ticket["upload_fields"],
        files={"file": ("a", body, content_type)},
    )
    return int(response.status_code)


def uploaded(client: TestClient, user: uuid.UUID) -> str:
    """Initiate, upload and complete a recording; return its id."""
    ticket = initiate(client, user)
    assert upload(client, ticket) == 204
    response = client.post(
        f"{BASE}/upload/complete/{ticket['recording_id']}",
        json={"file_size_bytes": len(AUDIO)},
        headers=auth(user),
    )
    assert response.status_code == 200, response.text
    return str(ticket["recording_id"])


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is the design's error body with ``status`` and ``code``."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"message", "error_code", "details"}
    assert body["error_code"] == code
    assert isinstance(body["message"], str)
    assert isinstance(body["details"], dict)
    return body


# ------------------------------------------------------------------------- happy path


def test_the_whole_flow(client: TestClient, user: uuid.UUID) -> None:
    """Initiate, upload, complete, get, list, download, delete: every endpoint answers."""
    ticket = initiate(client, user)
    assert set(ticket) == {
        "recording_id",
        "upload_url",
        "upload_fields",
        "s3_key",
        "bucket",
        "expires_in",
        "max_file_size",
    }
    assert ticket["upload_url"] == "http://testserver/local-storage/upload"
    assert ticket["max_file_size"] == 64 * 1024
    assert upload(client, ticket) == 204
    rid = ticket["recording_id"]
    completed = client.post(
        f"{BASE}/upload/complete/{rid}",
        json={"file_size_bytes": len(AUDIO), "recording_metadata": {"device_model": "iPhone"}},
        headers=auth(user),
    )
    assert completed.status_code == 200
    assert completed.json()["status"] == "uploaded"
    assert completed.json()["recording_metadata"] == {"device_model": "iPhone"}

    got = client.get(f"{BASE}/{rid}", headers=auth(user))
    assert (got.status_code, got.json()["id"], got.json()["file_size_bytes"]) == (
        200,
        rid,
        len(AUDIO),
    )
    listed = client.get(f"{BASE}/", params={"appointment_id": APPOINTMENT}, headers=auth(user))
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [rid]
    assert listed.json()["total"] == 1

    url = client.get(f"{BASE}/{rid}/download-url", headers=auth(user))
    assert url.status_code == 200
    assert url.json()["expires_in"] == 3600
    audio = client.get(url.json()["download_url"])
    assert audio.status_code == 200
    assert audio.content == AUDIO
    assert audio.headers["content-type"] == "audio/wav"
    # served as an attachment named by its key: no client text in the URL or the header
    disposition = audio.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=")
    assert "visit" not in disposition

    deleted = client.delete(f"{BASE}/{rid}", headers=auth(user))
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert_error(client.get(f"{BASE}/{rid}", headers=auth(user)), 404, "RECORDING_NOT_FOUND")


def test_list_filters_and_pages(client: TestClient, user: uuid.UUID) -> None:
    """Status, visit and paging query parameters reach the service."""
    first = uploaded(client, user)
    visit = str(uuid.uuid4())
    second = initiate(client, user, appointment_id=None, visit_id=visit)
    by_status = client.get(f"{BASE}", params={"status": "uploaded"}, headers=auth(user))
    assert [i["id"] for i in by_status.json()["items"]] == [first]
    by_visit = client.get(f"{BASE}/", params={"visit_id": visit}, headers=auth(user))
    assert [i["id"] for i in by_visit.json()["items"]] == [second["recording_id"]]
    page = client.get(f"{BASE}/", params={"limit": 1, "offset": 1}, headers=auth(user)).json()
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (2, 1, 1, 1)


def test_renew_gives_a_fresh_ticket_while_uploading(client: TestClient, user: uuid.UUID) -> None:
    """An expired ticket is replaced for the same key; after completion renewal is a 409."""
    ticket = initiate(client, user)
    renewed = client.post(f"{BASE}/upload/renew/{ticket['recording_id']}", headers=auth(user))
    assert renewed.status_code == 200, renewed.text
    body = renewed.json()
    assert (body["recording_id"], body["s3_key"]) == (ticket["recording_id"], ticket["s3_key"])
    assert upload(client, body) == 204
    done = client.post(
        f"{BASE}/upload/complete/{ticket['recording_id']}",
        json={"file_size_bytes": len(AUDIO)},
        headers=auth(user),
    )
    assert done.status_code == 200
    again = client.post(f"{BASE}/upload/renew/{ticket['recording_id']}", headers=auth(user))
    assert again.status_code == 409
    assert again.json()["error_code"] == "INVALID_STATUS_TRANSITION"
    stranger = client.post(
        f"{BASE}/upload/renew/{ticket['recording_id']}", headers=auth(uuid.uuid4())
    )
    assert stranger.status_code == 404


def test_head_of_download_url(client: TestClient, user: uuid.UUID) -> None:
    """HEAD of a download URL gives the headers and no body."""
    rid = uploaded(client, user)
    url = client.get(f"{BASE}/{rid}/download-url", headers=auth(user)).json()["download_url"]
    response = client.head(url)
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(AUDIO))
    assert response.content == b""


def test_no_answer_with_a_signed_url_or_a_transcript_may_be_cached(
    client: TestClient, user: uuid.UUID
) -> None:
    """The API's answers say no-store; so does the download they point to."""
    rid = uploaded(client, user)
    answers = [
        client.get(f"{BASE}/{rid}", headers=auth(user)),
        client.get(f"{BASE}/{rid}/download-url", headers=auth(user)),
        client.get(f"{BASE}/", headers=auth(user)),
        client.post(
            f"{BASE}/upload/initiate",
            json={"filename": "visit.m4a", "content_type": "audio/mp4"},
            headers=auth(user),
        ),
    ]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 200]
    assert {answer.headers["cache-control"] for answer in answers} == {"no-store"}
    download = client.get(answers[1].json()["download_url"])
    assert download.headers["cache-control"] == "private, no-store"


def test_openapi_lists_the_six_endpoints(client: TestClient) -> None:
    """The schema documents the design's endpoints, renewal, multipart (not storage routes)."""
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {
        f"{BASE}/upload/initiate",
        f"{BASE}/upload/renew/{{recording_id}}",
        f"{BASE}/upload/multipart/initiate",
        f"{BASE}/upload/multipart/{{recording_id}}/parts",
        f"{BASE}/upload/complete/{{recording_id}}",
        f"{BASE}/",
        f"{BASE}/{{recording_id}}",
        f"{BASE}/{{recording_id}}/download-url",
    }
    assert set(paths[f"{BASE}/{{recording_id}}"]) == {"get", "delete"}


# ----------------------------------------------------------------------- authentication


ENDPOINTS = [
    ("POST", f"{BASE}/upload/initiate"),
    ("POST", f"{BASE}/upload/complete/{uuid.uuid4()}"),
    ("POST", f"{BASE}/upload/multipart/initiate"),
    ("POST", f"{BASE}/upload/multipart/{uuid.uuid4()}/parts"),
    ("GET", f"{BASE}/"),
    ("GET", f"{BASE}/{uuid.uuid4()}"),
    ("GET", f"{BASE}/{uuid.uuid4()}/download-url"),
    ("DELETE", f"{BASE}/{uuid.uuid4()}"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_needs_a_token(client: TestClient, method: str, path: str) -> None:
    """Without a token every endpoint answers 401 UNAUTHORIZED, before validating input."""
    response = client.request(method, path, json={"filename": 5})
    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["www-authenticate"] == "Bearer"


def _token(claims: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def _in(seconds: int) -> int:
    return int(dt.datetime.now(dt.UTC).timestamp()) + seconds


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {_token({'sub': str(uuid.uuid4()), 'exp': _in(60)}, OTHER_SECRET)}",
        f"Bearer {_token({'sub': str(uuid.uuid4()), 'exp': _in(-60)})}",
        f"Bearer {_token({'sub': str(uuid.uuid4())})}",
        f"Bearer {_token({'sub': str(uuid.uuid4()), 'exp': str(_in(3600))})}",
        f"Bearer {_token({'sub': str(uuid.uuid4()), 'exp': 'tomorrow'})}",
        f"Bearer {_token({'sub': str(uuid.uuid4()), 'exp': [_in(3600)]})}",
        f"Bearer {_token({'sub': str(uuid.uuid4()), 'exp': None})}",
        f"Bearer {_token({'sub': str(uuid.uuid4()), 'exp': True})}",
        f"Bearer {_token({'sub': str(uuid.uuid4()), 'exp': _in(60), 'aud': 'elsewhere'})}",
        f"Bearer {_token({'exp': _in(60)})}",
        f"Bearer {_token({'sub': 'not-a-uuid', 'exp': _in(60)})}",
        f"Bearer {_token({'sub': str(uuid.UUID(int=0)), 'exp': _in(60)})}",
        f"Bearer {_token({'sub': 42, 'exp': _in(60)})}",
        f"Bearer {_token({'sub': str(uuid.uuid4()), 'exp': _in(60)}, '', 'none')}",
        f"Bearer {_token({'sub': str(uuid.uuid4()), 'exp': _in(60)}, SECRET, 'HS512')}",
        "Bearer not.a.jwt",
        "Bearer " + "a" * 9000,
        f"Basic {_token({'sub': str(uuid.uuid4()), 'exp': _in(60)})}",
        "Bearer",
    ],
    ids=[
        "wrong-secret",
        "expired",
        "no-exp",
        "exp-numeric-string",
        "exp-word",
        "exp-list",
        "exp-null",
        "exp-bool",
        "unexpected-audience",
        "no-sub",
        "sub-not-uuid",
        "nil-sub",
        "numeric-sub",
        "alg-none",
        "other-alg",
        "garbage",
        "huge",
        "basic-scheme",
        "empty",
    ],
)
def test_bad_tokens_are_401(client: TestClient, header: str) -> None:
    """Forged, expired, unsigned, subject-less and malformed tokens are all refused."""
    response = client.get(f"{BASE}/", headers={"Authorization": header})
    assert_error(response, 401, "UNAUTHORIZED")


def test_expired_token_says_so(client: TestClient) -> None:
    """An expired token's 401 tells the client to get a new one."""
    token = _token({"sub": str(uuid.uuid4()), "exp": _in(-5)})
    body = assert_error(
        client.get(f"{BASE}/", headers={"Authorization": f"Bearer {token}"}), 401, "UNAUTHORIZED"
    )
    assert body["details"] == {"reason": "token_expired"}


AUDIENCE = "helppet-recordings-api"
ISSUER = "https://auth.clinic.example"


@pytest.fixture
def strict_client(service: RecordingService, storage: LocalStorage) -> Iterator[TestClient]:
    """The example app requiring an audience and an issuer in tokens."""
    app = create_app(
        service,
        jwt_secret=SECRET,
        jwt_audience=AUDIENCE,
        jwt_issuer=ISSUER,
        local_storage=storage,
    )
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("claims", "status"),
    [
        ({"aud": AUDIENCE, "iss": ISSUER}, 200),
        ({"aud": ["another-api", AUDIENCE], "iss": ISSUER}, 200),
        ({"iss": ISSUER}, 401),
        ({"aud": "another-api", "iss": ISSUER}, 401),
        ({"aud": AUDIENCE}, 401),
        ({"aud": AUDIENCE, "iss": "https://evil.example"}, 401),
        ({"aud": AUDIENCE, "iss": ISSUER, "exp": "9999999999"}, 401),
    ],
    ids=["both", "audience-in-list", "no-aud", "wrong-aud", "no-iss", "wrong-iss", "exp-string"],
)
def test_audience_and_issuer_are_required_when_configured(
    strict_client: TestClient, claims: dict[str, Any], status: int
) -> None:
    """With an audience and an issuer configured, tokens must carry and match both."""
    token = _token({"sub": str(uuid.uuid4()), "exp": _in(60), **claims})
    response = strict_client.get(f"{BASE}/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == status, response.text
    if status == 401:
        assert_error(response, 401, "UNAUTHORIZED")


def test_audience_and_issuer_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user: uuid.UUID
) -> None:
    """HELPPET_JWT_AUDIENCE and HELPPET_JWT_ISSUER turn the checks on for the deployed app."""
    env = _env(tmp_path, HELPPET_JWT_AUDIENCE=AUDIENCE, HELPPET_JWT_ISSUER=f" {ISSUER} ")
    config = AppConfig.from_env(env)
    assert (config.jwt_audience, config.jwt_issuer) == (AUDIENCE, ISSUER)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    good = mint_token(SECRET, user, audience=AUDIENCE, issuer=ISSUER)
    with TestClient(create_app()) as client:
        assert client.get(f"{BASE}/", headers=auth(user)).status_code == 401
        listed = client.get(f"{BASE}/", headers={"Authorization": f"Bearer {good}"})
        assert listed.status_code == 200, listed.text


@pytest.fixture
def hand_offs(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """Counts of worker-thread hand-offs and token decodes made from now on."""
    counts: collections.Counter[str] = collections.Counter()
    run_sync, decode = anyio.to_thread.run_sync, jwt.decode

    async def counting_run_sync(func: Any, *args: Any, **kwargs: Any) -> Any:
        counts["threads"] += 1
        return await run_sync(func, *args, **kwargs)

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        counts["decodes"] += 1
        return decode(*args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting_run_sync)
    monkeypatch.setattr(jwt, "decode", counting_decode)
    return counts


def test_each_request_decodes_once_and_hands_off_once(
    client: TestClient, user: uuid.UUID, hand_offs: collections.Counter[str]
) -> None:
    """Every endpoint decodes the token once and makes one worker-thread hand-off."""
    done = uploaded(client, user)
    pending = initiate(client, user)["recording_id"]
    requests = [
        ("POST", f"{BASE}/upload/initiate", {"filename": "b.wav", "content_type": "audio/wav"}),
        ("POST", f"{BASE}/upload/renew/{pending}", None),
        ("POST", f"{BASE}/upload/complete/{done}", {"file_size_bytes": len(AUDIO)}),
        ("GET", f"{BASE}/", None),
        ("GET", f"{BASE}/{done}", None),
        ("GET", f"{BASE}/{done}/download-url", None),
        ("DELETE", f"{BASE}/{done}", None),
        ("GET", f"{BASE}/{done}", None),  # now 404: an error costs no more
    ]
    for method, path, body in requests:
        hand_offs.clear()
        response = client.request(method, path, json=body, headers=auth(user))
        assert response.status_code < 500, response.text
        assert dict(hand_offs) == {"threads": 1, "decodes": 1}, (method, path)
    hand_offs.clear()
    refused = client.get(f"{BASE}/", headers={"Authorization": "Bearer not.a.jwt"})
    assert refused.status_code == 401
    assert dict(hand_offs) == {"decodes": 1}


class _BrokenRepository(FaultyRepository):
    """A repository whose named methods fail with a non-retryable DATABASE_ERROR."""

    @staticmethod
    def error_factory() -> Exception:
        """A translated driver error; the driver's text quotes the row it failed on."""
        try:
            raise sqlite3.DatabaseError("disk image is malformed [parameters: ('Bella.wav',)]")
        except sqlite3.DatabaseError as exc:
            try:
                raise RepositoryError(operation="add", reason="DatabaseError") from exc
            except RepositoryError as translated:
                return translated


@pytest.mark.parametrize(
    ("repository", "status", "code", "level"),
    [
        (_BrokenRepository, 500, "DATABASE_ERROR", logging.ERROR),
        (FaultyRepository, 503, "DATABASE_UNAVAILABLE", logging.WARNING),
    ],
)
def test_database_errors_are_logged_without_personal_content(
    storage: LocalStorage,
    user: uuid.UUID,
    caplog: pytest.LogCaptureFixture,
    repository: type[FaultyRepository],
    status: int,
    code: str,
    level: int,
) -> None:
    """A database failure answers its code and is logged under helppet_recordings, no PHI."""
    faulty = repository(InMemoryRepository())
    faulty.failing = {"add"}
    service = RecordingService(storage=storage, repository=faulty)
    app = create_app(service, jwt_secret=SECRET, local_storage=storage)
    with TestClient(app) as client, caplog.at_level(logging.DEBUG, logger="helppet_recordings"):
        response = client.post(
            f"{BASE}/upload/initiate",
            json={
                "filename": "Bella.wav",
                "content_type": "audio/wav",
                "appointment_id": APPOINTMENT,
            },
            headers=auth(user),
        )
    assert_error(response, status, code)
    logged = [r for r in caplog.records if r.name.startswith("helppet_recordings")]
    answers = [r for r in logged if code in r.getMessage()]
    assert [r.levelno for r in answers] == [level]
    assert f"POST {BASE}/upload/initiate" in answers[0].getMessage()
    for record in logged:
        text = record.getMessage() + str(record.exc_info or "")
        assert "Bella" not in text
        assert APPOINTMENT not in text


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "field"),
    [
        ("POST", f"{BASE}/upload/initiate", {"json": {"content_type": "audio/wav"}}, "filename"),
        ("POST", f"{BASE}/upload/initiate", {"json": ["not", "an", "object"]}, ""),
        ("POST", f"{BASE}/upload/initiate", {"content": b"{broken"}, ""),
        (
            "POST",
            f"{BASE}/upload/initiate",
            {"json": {"filename": "../x.wav", "content_type": "audio/wav"}},
            "filename",
        ),
        (
            "POST",
            f"{BASE}/upload/initiate",
            {"json": {"filename": "a.wav", "content_type": "audio/wav", "appointment_id": "x"}},
            "appointment_id",
        ),
        (
            "POST",
            f"{BASE}/upload/complete/{uuid.uuid4()}",
            {"json": {"file_size_bytes": -1}},
            "file_size_bytes",
        ),
        (
            "POST",
            f"{BASE}/upload/complete/{uuid.uuid4()}",
            {"json": {"file_size_bytes": 1, "recording_metadata": {"x": "y" * 3000}}},
            "recording_metadata",
        ),
        ("GET", f"{BASE}/not-a-uuid", {}, "recording_id"),
        ("GET", f"{BASE}/not-a-uuid/download-url", {}, "recording_id"),
        ("DELETE", f"{BASE}/12345", {}, "recording_id"),
        ("GET", f"{BASE}/", {"params": {"status": "lost"}}, "status"),
        ("GET", f"{BASE}/", {"params": {"limit": "ten"}}, "limit"),
        ("GET", f"{BASE}/", {"params": {"limit": 0}}, "limit"),
        ("GET", f"{BASE}/", {"params": {"limit": 10**30}}, "limit"),
        ("GET", f"{BASE}/", {"params": {"offset": -1}}, "offset"),
        ("GET", f"{BASE}/", {"params": {"visit_id": "nope"}}, "visit_id"),
    ],
)
def test_bad_input_is_422_validation_error(
    client: TestClient,
    user: uuid.UUID,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    field: str,
) -> None:
    """Bad bodies, paths and queries answer 422 VALIDATION_ERROR naming the field."""
    headers = {**auth(user), "Content-Type": "application/json"}
    response = client.request(method, path, headers=headers, **kwargs)
    body = assert_error(response, 422, "VALIDATION_ERROR")
    fields = [error["field"] for error in body["details"]["errors"]]
    assert field in fields, body


def test_validation_never_echoes_input(client: TestClient, user: uuid.UUID) -> None:
    """A huge bad value is not repeated back in the error."""
    needle = "Q" * 20_000
    response = client.post(
        f"{BASE}/upload/initiate",
        json={"filename": needle, "content_type": needle, "recording_type": needle},
        headers=auth(user),
    )
    assert_error(response, 422, "VALIDATION_ERROR")
    assert "QQQQ" not in response.text
    assert len(response.content) < 4000


def test_oversized_json_body_is_413(client: TestClient, user: uuid.UUID) -> None:
    """A JSON body over 64 KiB is refused before it is read."""
    response = client.post(
        f"{BASE}/upload/initiate",
        content=b'{"filename": "' + b"a" * 70_000 + b'"}',
        headers={**auth(user), "Content-Type": "application/json"},
    )
    assert_error(response, 413, "REQUEST_TOO_LARGE")


def test_oversized_chunked_json_body_is_413(client: TestClient, user: uuid.UUID) -> None:
    """A chunked body (no Content-Length) is cut off once it passes 64 KiB."""

    def chunks() -> Iterator[bytes]:
        yield b'{"filename": "'
        for _ in range(100):
            yield b"a" * 1024
        yield b'"}'

    response = client.post(
        f"{BASE}/upload/initiate",
        content=chunks(),
        headers={**auth(user), "Content-Type": "application/json"},
    )
    assert_error(response, 413, "REQUEST_TOO_LARGE")


def test_unknown_route_and_method(client: TestClient, user: uuid.UUID) -> None:
    """Framework errors use the same body shape."""
    assert_error(client.get("/api/v1/nothing", headers=auth(user)), 404, "NOT_FOUND")
    assert_error(client.put(f"{BASE}/", headers=auth(user)), 405, "METHOD_NOT_ALLOWED")


def test_the_page_without_its_slash_is_redirected_relatively(client: TestClient) -> None:
    """``/app`` sends the browser on to ``/app/`` by path, whatever the Host header says."""
    response = client.get("/app", headers={"Host": "evil.example"}, follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/app/"
    assert client.get("/app").status_code == 200


@pytest.mark.parametrize("method", ["GET", "DELETE", "POST"])
def test_a_trailing_slash_is_not_redirected_to_the_host_header(
    client: TestClient, user: uuid.UUID, method: str
) -> None:
    """``/recordings/{id}/`` is a 404 in the error shape, not a 307 to a URL built from Host."""
    response = client.request(
        method,
        f"{BASE}/{uuid.uuid4()}/",
        headers={**auth(user), "Host": "evil.example"},
        follow_redirects=False,
    )
    assert_error(response, 404, "NOT_FOUND")
    assert "location" not in response.headers


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", f"{BASE}/", "GET"),
        ("PUT", f"{BASE}/{uuid.uuid4()}", "DELETE, GET"),
        ("POST", f"{BASE}/{uuid.uuid4()}/download-url", "GET"),
        ("GET", f"{BASE}/upload/initiate", "POST"),
        ("PUT", "/local-storage/download/a/b.wav", "GET, HEAD"),
        ("GET", "/local-storage/upload", "POST"),
    ],
)
def test_wrong_method_lists_every_allowed_one(
    client: TestClient, user: uuid.UUID, method: str, path: str, allow: str
) -> None:
    """A 405 names in Allow every method the path serves (it used to be empty)."""
    response = client.request(method, path, headers=auth(user))
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == allow


# ------------------------------------------------------------------ the service's errors


def test_other_users_recording_is_404(client: TestClient, user: uuid.UUID) -> None:
    """Another user's recording is not found through any endpoint, and is not listed."""
    rid = uploaded(client, user)
    intruder = uuid.uuid4()
    for method, path, body in [
        ("GET", f"{BASE}/{rid}", None),
        ("GET", f"{BASE}/{rid}/download-url", None),
        ("POST", f"{BASE}/upload/complete/{rid}", {"file_size_bytes": len(AUDIO)}),
        ("DELETE", f"{BASE}/{rid}", None),
    ]:
        response = client.request(method, path, json=body, headers=auth(intruder))
        assert_error(response, 404, "RECORDING_NOT_FOUND")
    assert client.get(f"{BASE}/", headers=auth(intruder)).json()["total"] == 0
    assert client.get(f"{BASE}/{rid}", headers=auth(user)).status_code == 200


def test_contract_statuses(client: TestClient, user: uuid.UUID) -> None:
    """415, 413 and 409 come through with the contract's codes."""
    response = client.post(
        f"{BASE}/upload/initiate",
        json={"filename": "a.txt", "content_type": "text/plain"},
        headers=auth(user),
    )
    assert_error(response, 415, "UNSUPPORTED_CONTENT_TYPE")
    ticket = initiate(client, user)
    complete = f"{BASE}/upload/complete/{ticket['recording_id']}"
    too_big = client.post(complete, json={"file_size_bytes": 10**6}, headers=auth(user))
    assert_error(too_big, 413, "FILE_TOO_LARGE")
    missing = client.post(complete, json={"file_size_bytes": len(AUDIO)}, headers=auth(user))
    assert_error(missing, 409, "UPLOAD_NOT_FOUND")
    assert upload(client, ticket) == 204
    wrong = client.post(complete, json={"file_size_bytes": 5}, headers=auth(user))
    assert_error(wrong, 409, "UPLOAD_SIZE_MISMATCH")
    early = client.get(f"{BASE}/{ticket['recording_id']}/download-url", headers=auth(user))
    assert_error(early, 409, "INVALID_STATUS_TRANSITION")


@pytest.mark.parametrize("swept", [False, True], ids=["before-the-sweep", "after-the-sweep"])
def test_a_late_completion_is_410_every_time(
    storage: LocalStorage, user: uuid.UUID, swept: bool
) -> None:
    """Completing after the deadline is 410 UPLOAD_TIMEOUT, retried or after the sweeper ran."""
    clock = FakeClock()
    service = RecordingService(
        storage=storage, repository=InMemoryRepository(), settings=RecordingSettings(), clock=clock
    )
    with TestClient(create_app(service, jwt_secret=SECRET, local_storage=storage)) as client:
        ticket = initiate(client, user)
        clock.advance(hours=6)  # past any configured ticket lifetime plus grace
        if swept:
            assert service.expire_stale_uploads() == 1
        complete = f"{BASE}/upload/complete/{ticket['recording_id']}"
        answers = [
            client.post(complete, json={"file_size_bytes": len(AUDIO)}, headers=auth(user))
            for _ in range(2)
        ]
    bodies = [assert_error(answer, 410, "UPLOAD_TIMEOUT") for answer in answers]
    assert bodies[0] == bodies[1]
    assert set(bodies[0]["details"]) == {"deadline", "recording_id", "s3_key", "current_status"}
    assert bodies[0]["details"]["current_status"] == "failed"


def test_a_415_never_echoes_the_filename(client: TestClient, user: uuid.UUID) -> None:
    """A filename whose tail is no audio extension: the 415 names the type's extensions only."""
    response = client.post(
        f"{BASE}/upload/initiate",
        json={"filename": "visit.Jane Roe 12 Oak Lane", "content_type": "audio/mp4"},
        headers=auth(user),
    )
    body = assert_error(response, 415, "UNSUPPORTED_CONTENT_TYPE")
    assert body["details"] == {
        "content_type": "audio/mp4",
        "allowed_extensions": ["m4a", "mp4", "m4b"],
    }
    assert "audio/mp4" in body["message"]
    for word in ("jane", "roe", "oak", "lane"):
        assert word not in response.text.lower()


class UnavailableStorage:
    """A storage whose server is down: every call raises STORAGE_UNAVAILABLE."""

    bucket = "down"

    def _down(self) -> StorageUnavailableError:
        return StorageUnavailableError("Storage is down for maintenance", retry_after=7)

    def create_upload(
        self, *, key: str, content_type: str, max_size: int, expires_in: int
    ) -> UploadTicket:
        """Raise STORAGE_UNAVAILABLE."""
        raise self._down()

    def create_download_url(
        self, *, key: str, expires_in: int, content_type: str, filename: str
    ) -> str:
        """Raise STORAGE_UNAVAILABLE."""
        raise self._down()

    def read_range(self, key: str, *, offset: int, length: int) -> bytes | None:
        """Raise STORAGE_UNAVAILABLE."""
        raise self._down()

    def promote(
        self, source_key: str, target_key: str, *, expected: StoredObject
    ) -> StoredObject | None:
        """Raise STORAGE_UNAVAILABLE."""
        raise self._down()

    def object_url(self, key: str) -> str:
        """Name the object."""
        return f"down://{key}"

    def head(self, key: str) -> StoredObject | None:
        """Raise STORAGE_UNAVAILABLE."""
        raise self._down()

    def delete(self, key: str) -> None:
        """Raise STORAGE_UNAVAILABLE."""
        raise self._down()

    def iter_objects(self, prefix: str) -> Iterator[StoredObject]:
        """Raise STORAGE_UNAVAILABLE."""
        raise self._down()


def test_storage_unavailable_sets_retry_after(user: uuid.UUID) -> None:
    """STORAGE_UNAVAILABLE answers 503 with Retry-After, and nothing is created."""
    service = RecordingService(storage=UnavailableStorage(), repository=InMemoryRepository())
    with TestClient(create_app(service, jwt_secret=SECRET)) as client:
        response = client.post(
            f"{BASE}/upload/initiate",
            json={"filename": "a.wav", "content_type": "audio/wav"},
            headers=auth(user),
        )
        body = assert_error(response, 503, "STORAGE_UNAVAILABLE")
        assert response.headers["retry-after"] == "7"
        assert body["details"]["retry_after"] == 7
        assert client.get(f"{BASE}/", headers=auth(user)).json()["total"] == 0


class BrokenStorage(UnavailableStorage):
    """A storage with a bug: it raises something the package never raises on purpose."""

    def create_upload(
        self, *, key: str, content_type: str, max_size: int, expires_in: int
    ) -> UploadTicket:
        """Fail with an unexpected error."""
        msg = "internal detail /etc/secret"
        raise RuntimeError(msg)


def test_unexpected_error_is_500_without_details(user: uuid.UUID) -> None:
    """A bug answers 500 INTERNAL_ERROR and leaks neither the message nor a traceback."""
    service = RecordingService(storage=BrokenStorage(), repository=InMemoryRepository())
    app = create_app(service, jwt_secret=SECRET)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(
            f"{BASE}/upload/initiate",
            json={"filename": "a.wav", "content_type": "audio/wav"},
            headers=auth(user),
        )
    body = assert_error(response, 500, "INTERNAL_ERROR")
    assert body["details"] == {}
    assert "secret" not in response.text
    assert "Traceback" not in response.text


# ------------------------------------------------------------------ LocalStorage routes


def test_tampered_upload_is_refused_with_s3_error(
    client: TestClient, user: uuid.UUID, storage: LocalStorage
) -> None:
    """The upload route answers the receiver's S3-style refusal and stores nothing."""
    ticket = initiate(client, user)
    ticket["upload_fields"]["signature"] = "0" * 64
    assert upload(client, ticket) == 403
    response = client.post(
        ticket["upload_url"],
        data=ticket["upload_fields"],
        files={"file": ("a", AUDIO, "audio/wav")},
    )
    assert response.headers["content-type"] == "application/xml"
    assert b"<Code>SignatureDoesNotMatch</Code>" in response.content
    assert storage.head(ticket["s3_key"]) is None


def test_tampered_download_is_refused(client: TestClient, user: uuid.UUID) -> None:
    """A download URL with a changed filename is refused with 403."""
    rid = uploaded(client, user)
    url = client.get(f"{BASE}/{rid}/download-url", headers=auth(user)).json()["download_url"]
    assert "visit" not in url  # the client's filename never reaches a URL
    response = client.get(re.sub(r"fn=[^&]+", "fn=other.html", url))
    assert response.status_code == 403
    assert AUDIO not in response.content


def test_storage_routes_are_absent_without_local_storage(user: uuid.UUID) -> None:
    """An app on another storage answers 404 on the LocalStorage routes."""
    service = RecordingService(storage=UnavailableStorage(), repository=InMemoryRepository())
    with TestClient(create_app(service, jwt_secret=SECRET)) as client:
        assert_error(client.post("/local-storage/upload", content=b"x"), 404, "NOT_FOUND")
        assert_error(client.get("/local-storage/download/a/b.wav"), 404, "NOT_FOUND")


# ------------------------------------------------------------------------ configuration


def _env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    return {
        "HELPPET_JWT_SECRET": SECRET,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "HELPPET_LOCAL_STORAGE_DIR": str(tmp_path / "files"),
        "HELPPET_PUBLIC_BASE_URL": "http://testserver",
        **overrides,
    }


def test_config_from_a_mapping_reads_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """from_env(mapping) ignores the process environment, for the app's own variables too."""
    for name, value in {
        "HELPPET_DB_POOL_SIZE": "7",
        "HELPPET_JWT_ISSUER": "elsewhere",
        "HELPPET_STORAGE": "s3",
    }.items():
        monkeypatch.setenv(name, value)
    config = AppConfig.from_env({"HELPPET_JWT_SECRET": SECRET}, cwd=tmp_path)
    assert (config.db_pool_size, config.jwt_issuer, config.storage) == (40, None, "local")
    assert type(config) is AppConfig
    given = AppConfig.from_env({"HELPPET_JWT_SECRET": SECRET, "HELPPET_DB_POOL_SIZE": "9"})
    assert given.db_pool_size == 9


def test_config_defaults(tmp_path: Path) -> None:
    """Without overrides: local storage, SQLite and files in the working directory."""
    config = AppConfig.from_env({"HELPPET_JWT_SECRET": SECRET}, cwd=tmp_path)
    assert config.storage == "local"
    assert config.database_url == f"sqlite:///{tmp_path / 'helppet-recordings.db'}"
    assert config.local_storage_dir == tmp_path / "helppet-recordings-data"
    assert config.public_base_url == "http://127.0.0.1:8000"
    assert config.cors_origins == ()
    assert SECRET not in repr(config)
    derived = config.local_secret()
    assert derived == AppConfig.from_env({"HELPPET_JWT_SECRET": SECRET}).local_secret()
    assert derived != SECRET
    explicit = {"HELPPET_JWT_SECRET": SECRET, "HELPPET_LOCAL_STORAGE_SECRET": "s" * 20}
    assert AppConfig.from_env(explicit).local_secret() == "s" * 20


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({}, "HELPPET_JWT_SECRET"),
        ({"HELPPET_JWT_SECRET": "too-short"}, "examples.demo"),
        ({"HELPPET_JWT_SECRET": SECRET, "HELPPET_STORAGE": "ftp"}, "HELPPET_STORAGE"),
        ({"HELPPET_JWT_SECRET": SECRET, "HELPPET_PUBLIC_BASE_URL": "ftp://x"}, "PUBLIC_BASE_URL"),
        ({"HELPPET_JWT_SECRET": SECRET, "HELPPET_CORS_ORIGINS": "*"}, "HELPPET_CORS_ORIGINS"),
    ],
)
def test_config_errors_say_what_to_set(env: dict[str, str], problem: str) -> None:
    """A missing or bad setting fails with a message naming it."""
    with pytest.raises(ConfigurationError, match=problem):
        AppConfig.from_env(env)


def test_app_from_environment_fails_at_start_not_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Building the app never connects; starting it without a secret fails clearly."""
    monkeypatch.delenv("HELPPET_JWT_SECRET", raising=False)
    app = create_app()
    with pytest.raises(ConfigurationError, match="HELPPET_JWT_SECRET"), TestClient(app):
        pass


def test_app_from_environment_runs_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user: uuid.UUID
) -> None:
    """Configured from the environment: SQLite schema created, files in the storage dir."""
    for name, value in _env(tmp_path).items():
        monkeypatch.setenv(name, value)
    with TestClient(create_app()) as client:
        rid = uploaded(client, user)
        assert client.get(f"{BASE}/{rid}", headers=auth(user)).json()["status"] == "uploaded"
    assert (tmp_path / "app.db").is_file()
    stored = list((tmp_path / "files" / "objects").rglob("*.wav"))
    assert len(stored) == 1
    assert hashlib.sha256(stored[0].read_bytes()).digest() == hashlib.sha256(AUDIO).digest()


def test_cors_origins_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user: uuid.UUID
) -> None:
    """HELPPET_CORS_ORIGINS lets those origins call the API; others get no CORS headers."""
    origin = "https://vet.example"
    env = _env(tmp_path, HELPPET_CORS_ORIGINS=f"{origin}, http://localhost:5173")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    preflight_headers = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    with TestClient(create_app()) as client:
        allowed = client.options(
            f"{BASE}/upload/initiate", headers={"Origin": origin, **preflight_headers}
        )
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["access-control-allow-origin"] == origin
        other = client.options(
            f"{BASE}/upload/initiate", headers={"Origin": "https://x.example", **preflight_headers}
        )
        assert not [name for name in other.headers if name.startswith("access-control-")]
        initiated = client.post(
            f"{BASE}/upload/initiate",
            json={"filename": "a.wav", "content_type": "audio/wav"},
            headers={**auth(user), "Origin": origin},
        )
        assert initiated.status_code == 200
        assert "ETag" in initiated.headers["access-control-expose-headers"]


# ------------------------------------------------------------------ metrics and the pool


def _initiate(client: TestClient, user: uuid.UUID) -> None:
    response = client.post(
        f"{BASE}/upload/initiate",
        json={"filename": "a.wav", "content_type": "audio/wav"},
        headers=auth(user),
    )
    assert response.status_code == 200, response.text


def _counter(text: str, name: str) -> float:
    """The value of a Prometheus counter (summed over its labels), 0 if absent."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((f"{name}_total{{", f"{name}_total "))
    )


def test_metrics_show_initiated_uploads_per_app(tmp_path: Path, user: uuid.UUID) -> None:
    """/metrics is Prometheus text counting this app's initiates; apps in one process don't mix."""
    first = AppConfig.from_env(_env(tmp_path / "one"))
    second = AppConfig.from_env(_env(tmp_path / "two"))
    name = "helppet_recordings_uploads_initiated"
    with TestClient(create_app(config=first)) as one, TestClient(create_app(config=second)) as two:
        before = one.get("/metrics")
        assert before.status_code == 200
        assert before.headers["content-type"].startswith("text/plain")
        _initiate(one, user)
        _initiate(one, user)
        text = one.get("/metrics").text
        assert _counter(text, name) == 2
        assert 'mime_type="audio/wav"' in text
        assert _counter(two.get("/metrics").text, name) == 0
        _initiate(two, user)
        assert _counter(two.get("/metrics").text, name) == 1
        assert str(user) not in text


def test_metrics_are_not_found_without_a_collector(client: TestClient) -> None:
    """An app given a service without metrics answers /metrics 404 in the error shape."""
    response = client.get("/metrics")
    assert response.status_code == 404
    assert response.json()["error_code"] == "NOT_FOUND"


def test_pool_settings_from_the_environment(tmp_path: Path) -> None:
    """HELPPET_DB_POOL_* size the app's connection pool; a bad value names its variable."""
    env = _env(
        tmp_path,
        HELPPET_DB_POOL_SIZE="7",
        HELPPET_DB_MAX_OVERFLOW="0",
        HELPPET_DB_POOL_PRE_PING="true",
        HELPPET_DB_POOL_RECYCLE="300",
    )
    config = AppConfig.from_env(env)
    assert config.engine_options() == {
        "pool_size": 7,
        "max_overflow": 0,
        "pool_pre_ping": True,
        "pool_recycle": 300.0,
    }
    app = create_app(config=config)
    with TestClient(app):
        engine = app.state.runtime.get().service.repository.engine
        assert (engine.pool.size(), engine.pool._max_overflow, engine.pool._pre_ping) == (
            7,
            0,
            True,
        )
        assert engine.hide_parameters is True  # no personal value in a database error
    defaults = AppConfig.from_env(_env(tmp_path)).engine_options()
    assert defaults == {"pool_size": 40, "max_overflow": 10, "pool_pre_ping": False}
    refused = [
        ("HELPPET_DB_POOL_SIZE", "many"),
        ("HELPPET_DB_POOL_SIZE", "99999999999999999999999"),
        ("HELPPET_DB_MAX_OVERFLOW", "20000"),
        ("HELPPET_DB_POOL_RECYCLE", "inf"),
        ("HELPPET_DB_POOL_RECYCLE", "nan"),
    ]
    for variable, value in refused:
        with pytest.raises(ConfigurationError, match=variable) as caught:
            AppConfig.from_env(_env(tmp_path, **{variable: value}))
        assert caught.value.details["variable"] == variable, value


def test_listing_pages_by_cursor(client: TestClient, user: uuid.UUID) -> None:
    """GET ?cursor= walks every recording once; a forged cursor is a 422 VALIDATION_ERROR."""
    for _ in range(5):
        client.post(
            f"{BASE}/upload/initiate",
            json={"filename": "a.wav", "content_type": "audio/wav"},
            headers=auth(user),
        )
    seen: list[str] = []
    page = client.get(f"{BASE}/", params={"limit": 2}, headers=auth(user)).json()
    while True:
        seen.extend(item["id"] for item in page["items"])
        if page["next_cursor"] is None:
            break
        params = {"limit": 2, "cursor": page["next_cursor"]}
        page = client.get(f"{BASE}/", params=params, headers=auth(user)).json()
    assert len(seen) == len(set(seen)) == 5
    forged = client.get(f"{BASE}/", params={"cursor": "forged"}, headers=auth(user))
    assert_error(forged, 422, "VALIDATION_ERROR")


def test_start_up_freezes_what_it_built(storage: LocalStorage, service: RecordingService) -> None:
    """After start-up the collector no longer walks the objects the app built (gc.freeze)."""
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        with TestClient(create_app(service, jwt_secret=SECRET, local_storage=storage)) as client:
            assert gc.get_freeze_count() > 0
            assert client.get("/openapi.json").status_code == 200
    finally:
        gc.unfreeze()


@pytest.mark.parametrize(
    "suffix", ["%0A", "%0D", "%00", "%7F", "{rid}%0A", "{rid}%09/download-url"]
)
def test_a_path_with_a_control_character_is_not_found(
    client: TestClient, user: uuid.UUID, suffix: str
) -> None:
    """Starlette's ``$`` matches before a trailing newline; such paths reach no route."""
    rid = uploaded(client, user)
    path = f"{BASE}/{suffix.format(rid=rid)}"
    assert_error(client.get(path, headers=auth(user)), 404, "NOT_FOUND")
    assert_error(client.delete(path, headers=auth(user)), 404, "NOT_FOUND")
    assert client.get(f"{BASE}/{rid}", headers=auth(user)).json()["status"] == "uploaded"
