"""helppet_recordings.integrations.fastapi in host apps: errors, routes, body limit, CORS."""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import subprocess
import sys
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from fastapi import APIRouter, FastAPI, HTTPException, Request
from pydantic import BaseModel
from starlette.exceptions import StarletteDeprecationWarning
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

import helppet_recordings.errors as errors_module
from helppet_recordings import (
    InMemoryRepository,
    LocalStorage,
    MissingDependencyError,
    RecordingError,
    RecordingService,
    UnavailableError,
)
from helppet_recordings.cli.bucket import BucketExpectations
from helppet_recordings.environment import ConfigurationError, DeploymentSettings
from helppet_recordings.integrations.fastapi import (
    JsonBodyLimitMiddleware,
    QueryStringFilter,
    body_limit,
    hide_query_strings,
    install,
    local_storage_router,
    parse_cors_origins,
)

with warnings.catch_warnings():
    # Starlette prefers httpx2 for its test client; the project's tests use httpx, which works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "fastapi-integration.md"
AUDIO = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 400  # 100 KiB: over the JSON limit
ALLOWED = "https://app.clinic.example"
INTEGRATION_MODULES = [
    name for name in sys.modules if name.startswith("helppet_recordings.integrations.fastapi")
]


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is the design's error body with ``status`` and ``code``."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"message", "error_code", "details"}
    assert (body["error_code"], type(body["message"]), type(body["details"])) == (code, str, dict)
    return body


# ------------------------------------------------------------------------ the extra


def test_without_fastapi_the_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing the integration without FastAPI raises MissingDependencyError for [fastapi]."""
    for name in INTEGRATION_MODULES:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "fastapi", None)
    with pytest.raises(MissingDependencyError) as raised:
        importlib.import_module("helppet_recordings.integrations.fastapi")
    assert raised.value.to_dict()["details"] == {"package": "fastapi", "extra": "fastapi"}
    assert "pip install 'helppet-recordings[fastapi]'" in raised.value.message


def test_importing_the_package_imports_no_framework() -> None:
    """Neither the package nor ``helppet_recordings.integrations`` imports FastAPI or Starlette."""
    code = (
        "import sys, helppet_recordings, helppet_recordings.integrations; "
        "print(sorted({'fastapi', 'starlette'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


# ----------------------------------------------------- the documented host app, end to end


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def _documented_host_app() -> str:
    """The first Python block of docs/fastapi-integration.md."""
    blocks = _python_blocks()
    assert blocks, "docs/fastapi-integration.md lost its example"
    return blocks[0]


def test_every_python_block_of_the_doc_compiles() -> None:
    """The doc's shorter snippets are valid Python too."""
    for block in _python_blocks():
        compile(block, str(DOC), "exec")


@pytest.fixture
def host_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The doc's host app, run as written from a fresh working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STORAGE_SECRET", "doc-example-secret-0123456789")
    monkeypatch.setenv("PUBLIC_URL", "http://testserver")
    namespace: dict[str, Any] = {"__name__": "host_app"}
    exec(compile(_documented_host_app(), str(DOC), "exec"), namespace)  # noqa: S102
    return namespace


def test_the_documented_host_app_takes_a_recording(host_app: dict[str, Any]) -> None:
    """The doc's few lines serve initiate, the LocalStorage upload, complete and download."""
    user, token = uuid.uuid4(), "session-token-1"
    host_app["SESSIONS"][token] = user
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(host_app["app"]) as client:
        ticket = client.post(
            "/recordings",
            json={"filename": "visit.wav", "content_type": "audio/wav"},
            headers=headers,
        )
        assert ticket.status_code == 200, ticket.text
        fields = ticket.json()["upload_fields"]
        assert ticket.json()["upload_url"] == "http://testserver/files/upload"
        uploaded = client.post(
            ticket.json()["upload_url"],
            data=fields,
            files={"file": ("a.wav", AUDIO, fields["Content-Type"])},
        )
        assert uploaded.status_code == 204, uploaded.text
        rid = ticket.json()["recording_id"]
        done = client.post(
            f"/recordings/{rid}/complete", json={"file_size_bytes": len(AUDIO)}, headers=headers
        )
        assert (done.status_code, done.json()["status"]) == (200, "uploaded")
        url = client.get(f"/recordings/{rid}/download-url", headers=headers).json()["download_url"]
        audio = client.get(url)
        assert (audio.status_code, audio.content) == (200, AUDIO)
        ranged = client.get(url, headers={"Range": "bytes=4-7"})
        assert (ranged.status_code, ranged.content) == (206, AUDIO[4:8])
        # The rest of the integration came with it: error bodies, the limit, CORS.
        stranger = client.get(f"/recordings/{rid}/download-url", headers={"Authorization": "x"})
        assert stranger.status_code in {401, 403}
        assert set(stranger.json()) == {"message", "error_code", "details"}
        other = {"Authorization": "Bearer other"}
        host_app["SESSIONS"]["other"] = uuid.uuid4()
        missing = client.get(f"/recordings/{rid}/download-url", headers=other)
        assert_error(missing, 404, "RECORDING_NOT_FOUND")
        big = client.post("/recordings", content=b"[" + b"0," * 40_000 + b"0]", headers=headers)
        assert_error(big, 413, "REQUEST_TOO_LARGE")
        cors = client.get(url, headers={"Origin": ALLOWED})
        assert cors.headers["access-control-allow-origin"] == ALLOWED


# ----------------------------------------------------------------------- error handlers


def _recording_errors() -> list[RecordingError]:
    """One instance of every error class the package exports."""
    instances: list[RecordingError] = []
    for name in errors_module.__all__:
        cls = getattr(errors_module, name)
        if cls is MissingDependencyError:
            instances.append(cls("somepackage", "someextra"))
        elif inspect.isclass(cls) and issubclass(cls, RecordingError):
            instances.append(cls(f"{name} happened", hint="x"))
    return instances


class Item(BaseModel):
    """A body for the validation tests."""

    name: str
    size: int


def _errors_app() -> FastAPI:
    app = FastAPI()
    install(app)
    raising = {type(exc).__name__: exc for exc in _recording_errors()}

    @app.get("/raise/{name}")
    async def raise_error(name: str) -> None:
        raise raising[name]

    @app.get("/bug")
    async def bug() -> None:
        msg = "secret detail from Bella's file visit-bella.wav"
        raise RuntimeError(msg)

    @app.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(418, "I'm a teapot", headers={"X-Brew": "no"})

    @app.post("/items/{item_id}")
    async def create_item(item_id: uuid.UUID, item: Item, limit: int = 5) -> dict[str, str]:
        return {"id": str(item_id)}

    items = APIRouter(prefix="/items")

    @items.get("/{item_id}")
    async def get_item(item_id: str) -> None:
        return None

    @items.delete("/{item_id}")
    async def delete_item(item_id: str) -> None:
        return None

    app.include_router(items)
    sub = FastAPI()
    install(sub)

    @sub.put("/things")
    async def put_things() -> None:
        return None

    @sub.get("/things")
    async def get_things() -> None:
        return None

    app.mount("/sub", sub)
    return app


@pytest.fixture(scope="module")
def errors_client() -> Iterator[TestClient]:
    """A client of an app whose routes raise on purpose."""
    with TestClient(_errors_app(), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("exc", _recording_errors(), ids=lambda exc: type(exc).__name__)
def test_every_recording_error_answers_its_status_and_body(
    errors_client: TestClient, exc: RecordingError
) -> None:
    """Each RecordingError answers its http_status with to_dict(); retryable ones Retry-After."""
    response = errors_client.get(f"/raise/{type(exc).__name__}")
    assert response.status_code == exc.http_status
    assert response.json() == exc.to_dict()
    if isinstance(exc, UnavailableError):
        assert response.headers["retry-after"] == str(exc.retry_after)
    else:
        assert "retry-after" not in response.headers


@pytest.mark.parametrize(
    ("path", "kwargs", "fields"),
    [
        ("/items/not-a-uuid", {"json": {"name": "a", "size": 1}}, {"item_id"}),
        (f"/items/{uuid.uuid4()}", {"json": {"name": "a"}}, {"size"}),
        (
            f"/items/{uuid.uuid4()}",
            {"json": {"name": "a", "size": 1}, "params": {"limit": "x"}},
            {"limit"},
        ),
        (
            f"/items/{uuid.uuid4()}",
            {"content": b"{broken", "headers": {"Content-Type": "application/json"}},
            {""},
        ),
    ],
    ids=["path", "body", "query", "not-json"],
)
def test_validation_errors_are_422_in_the_same_shape(
    errors_client: TestClient, path: str, kwargs: dict[str, Any], fields: set[str]
) -> None:
    """Path, body and query problems are 422 VALIDATION_ERROR naming each field."""
    body = assert_error(errors_client.post(path, **kwargs), 422, "VALIDATION_ERROR")
    assert {error["field"] for error in body["details"]["errors"]} == fields
    for error in body["details"]["errors"]:
        assert set(error) == {"field", "location", "message", "type"}


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_json_body_not_declared_as_json_says_so(
    errors_client: TestClient, content_type: str | None
) -> None:
    """A body without Content-Type: application/json is 422 naming the header to send."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = errors_client.post(
        f"/items/{uuid.uuid4()}", content=b'{"name": "a", "size": 1}', headers=headers
    )
    [error] = assert_error(response, 422, "VALIDATION_ERROR")["details"]["errors"]
    assert error["location"] == "body"
    assert "Content-Type: application/json" in error["message"]
    declared = errors_client.post(
        f"/items/{uuid.uuid4()}", content=b"[1]", headers={"Content-Type": "application/json"}
    )
    [error] = assert_error(declared, 422, "VALIDATION_ERROR")["details"]["errors"]
    assert "Content-Type" not in error["message"]  # JSON, but not an object: FastAPI's words


def test_a_bug_is_500_without_details_and_logged_without_its_message(
    errors_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected exception answers 500 INTERNAL_ERROR; the log has the frames, not the text."""
    with caplog.at_level(logging.ERROR, logger="helppet_recordings"):
        response = errors_client.get("/bug")
    body = assert_error(response, 500, "INTERNAL_ERROR")
    assert body["details"] == {}
    assert "Bella" not in response.text
    [record] = [r for r in caplog.records if r.name.startswith("helppet_recordings.")]
    logged = record.getMessage()
    assert "RuntimeError" in logged
    assert "raise RuntimeError(msg)" in logged  # the frames are there
    assert "Bella" not in logged
    assert record.exc_info is None


def test_a_bug_after_the_answer_started_is_logged_and_ends_there(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stream that fails midway keeps what was sent; the log has the frames, not the text."""
    app = FastAPI()
    install(app)

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            msg = "cannot read visit-bella.wav"
            yield b"first"
            raise ValueError(msg)

        return StreamingResponse(chunks())

    with (
        caplog.at_level(logging.ERROR, logger="helppet_recordings"),
        TestClient(app) as client,  # raises whatever reaches the server
    ):
        response = client.get("/stream")
    assert (response.status_code, response.content) == (200, b"first")
    [record] = [r for r in caplog.records if r.name.startswith("helppet_recordings.")]
    assert "ValueError" in record.getMessage()
    assert "bella.wav" not in record.getMessage()


def test_an_http_exception_keeps_its_status_and_headers(errors_client: TestClient) -> None:
    """An app's own HTTPException answers its status and headers in the error shape."""
    response = errors_client.get("/teapot")
    body = assert_error(response, 418, "HTTP_ERROR")
    assert (body["message"], response.headers["x-brew"]) == ("I'm a teapot", "no")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/items/7", "DELETE, GET, POST"),
        ("DELETE", "/sub/things", "GET, PUT"),
        ("POST", "/bug", "GET"),
    ],
)
def test_405_allow_lists_every_method_of_the_path(
    errors_client: TestClient, method: str, path: str, allow: str
) -> None:
    """Allow names every method served at the path: included routers and mounted apps too."""
    response = errors_client.request(method, path)
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == allow


def test_unknown_route_is_404_in_the_shape(errors_client: TestClient) -> None:
    """An unknown path answers 404 NOT_FOUND with the error body."""
    assert_error(errors_client.get("/nothing/here"), 404, "NOT_FOUND")


# ------------------------------------------------------------------------ the body limit


def _limited_app() -> FastAPI:
    app = FastAPI()
    install(app, max_json_body_bytes=1000)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.post("/bigger")
    @body_limit(5000)
    async def bigger(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.post("/unlimited")
    @body_limit(None)
    async def unlimited(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.post("/model")
    async def model(item: Item) -> Item:
        return item

    return app


def _chunks(size: int, chunk: int = 256) -> Iterator[bytes]:
    for start in range(0, size, chunk):
        yield b"x" * min(chunk, size - start)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("root_path", ["", "/api-gw"])
def test_body_limit_follows_the_route(chunked: bool, root_path: str) -> None:
    """The default limit, a larger one and none, chosen by route under any root_path."""
    with TestClient(_limited_app(), root_path=root_path) as client:

        def post(path: str, size: int) -> Any:
            content = _chunks(size) if chunked else b"x" * size
            return client.post(path, content=content)

        assert post("/echo", 1000).json() == {"size": 1000}
        body = assert_error(post("/echo", 1001), 413, "REQUEST_TOO_LARGE")
        assert body["details"] == {"max_bytes": 1000}
        assert post("/bigger", 5000).json() == {"size": 5000}
        assert_error(post("/bigger", 5001), 413, "REQUEST_TOO_LARGE")
        assert post("/unlimited", 200_000).json() == {"size": 200_000}
        model = client.post("/model", content=b'{"name": "' + b"a" * 2000 + b'", "size": 1}')
        assert_error(model, 413, "REQUEST_TOO_LARGE")


def test_body_limit_holds_in_a_mounted_app() -> None:
    """Mounted under a prefix, the inner app's routes keep their limits."""
    host = FastAPI()
    host.mount("/clinic", _limited_app())
    with TestClient(host) as client:
        assert client.post("/clinic/echo", content=b"x" * 10).json() == {"size": 10}
        assert_error(client.post("/clinic/echo", content=_chunks(2000)), 413, "REQUEST_TOO_LARGE")
        assert client.post("/clinic/unlimited", content=b"x" * 9000).json() == {"size": 9000}


def test_body_limit_answers_when_nothing_inside_does() -> None:
    """Around a bare ASGI app, the middleware itself answers 413 in the error shape."""

    async def read_all(scope: Scope, receive: Receive, send: Send) -> None:
        size, more = 0, True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        await PlainTextResponse(str(size))(scope, receive, send)

    client = TestClient(JsonBodyLimitMiddleware(read_all, max_body_bytes=10))  # no lifespan
    assert client.post("/", content=b"x" * 10).text == "10"
    body = assert_error(client.post("/", content=_chunks(100, 7)), 413, "REQUEST_TOO_LARGE")
    assert body["details"] == {"max_bytes": 10}
    assert_error(client.post("/", content=b"x" * 11), 413, "REQUEST_TOO_LARGE")


def test_body_limit_rejects_bad_settings() -> None:
    """Negative limits and booleans are refused where they are given."""
    with pytest.raises(ValueError, match="max_bytes"):
        body_limit(-1)
    with pytest.raises(ValueError, match="max_bytes"):
        body_limit(True)


# -------------------------------------------------------------------- LocalStorage routes


def test_local_storage_routes_404_when_the_source_has_none(tmp_path: Path) -> None:
    """A storage function returning None (the app runs on S3) makes both routes 404."""
    current: list[LocalStorage | None] = [None]
    app = FastAPI()
    install(app, local_storage=lambda: current[0], local_storage_prefix="/files")
    with TestClient(app) as client:
        assert_error(client.post("/files/upload", content=b"x"), 404, "NOT_FOUND")
        assert_error(client.get("/files/download/a/b.wav"), 404, "NOT_FOUND")
        current[0] = LocalStorage(tmp_path, "http://testserver/files", "s" * 32)
        refused = client.post("/files/upload", content=b"x")
        assert refused.status_code == 400  # the receiver's answer: not a multipart body
        assert refused.headers["content-type"] == "application/xml"


def test_local_storage_router_alone_in_an_app(tmp_path: Path) -> None:
    """The router works without install(): a wrong method is 405 naming GET and HEAD."""
    app = FastAPI()
    app.include_router(
        local_storage_router(LocalStorage(tmp_path, "http://testserver/s", "s" * 32), prefix="/s")
    )
    with TestClient(app) as client:
        response = client.put("/s/download/a/b.wav")
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}
    assert "/s/upload" not in app.openapi()["paths"]


# -------------------------------------------------------------------------------- CORS


def _cors_app(tmp_path: Path, origins: list[str] | None) -> tuple[FastAPI, str]:
    """An app with the integration and one uploaded object; returns it and the object's URL."""
    storage = LocalStorage(tmp_path, "http://testserver/local-storage", "s" * 32)
    service = RecordingService(storage=storage, repository=InMemoryRepository())
    user = uuid.uuid4()
    ticket = service.initiate_upload(user, {"filename": "a.wav", "content_type": "audio/wav"})
    policy = storage.verify_upload({k.lower(): v for k, v in ticket.upload_fields.items()})
    with storage.stage(policy) as staged:
        staged.write(AUDIO)
        staged.commit()
    service.complete_upload(user, ticket.recording_id, {"file_size_bytes": len(AUDIO)})
    url = service.get_download_url(user, ticket.recording_id).download_url
    app = FastAPI()
    install(app, local_storage=storage, cors_origins=origins)

    @app.get("/api/ping")
    async def ping() -> dict[str, str]:
        return {"ok": "yes"}

    @app.post("/api/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/api/bug")
    async def bug() -> None:
        msg = "cannot store row for 'bug-FluffyMcPatient.wav'"
        raise ValueError(msg)

    return app, url


def _preflight(client: TestClient, path: str, origin: str, method: str = "POST") -> Any:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


@pytest.mark.parametrize(
    "asks",
    [
        {"Access-Control-Request-Method": "PATCH"},
        {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-secret"},
    ],
)
def test_a_refused_preflight_answers_in_the_error_shape(
    tmp_path: Path, asks: dict[str, str]
) -> None:
    """A method or header the API does not allow: 400 BAD_REQUEST listing what it allows."""
    app, _ = _cors_app(tmp_path, [ALLOWED])
    with TestClient(app) as client:
        response = client.options("/api/ping", headers={"Origin": ALLOWED, **asks})
    body = assert_error(response, 400, "BAD_REQUEST")
    assert body["details"]["allowed_methods"] == ["GET", "POST", "PUT", "DELETE"]
    assert int(response.headers["content-length"]) == len(response.content)
    assert "origin" in response.headers["vary"].lower()


def test_cors_preflight_for_an_allowed_origin(tmp_path: Path) -> None:
    """An allowed origin's preflight gets the methods and headers; its answers expose ETag."""
    app, url = _cors_app(tmp_path, [ALLOWED, "http://localhost:3000"])
    with TestClient(app) as client:
        for path in ("/api/ping", "/local-storage/upload"):
            response = _preflight(client, path, ALLOWED)
            assert response.status_code == 200, response.text
            headers = response.headers
            assert headers["access-control-allow-origin"] == ALLOWED
            methods = {m.strip() for m in headers["access-control-allow-methods"].split(",")}
            assert {"GET", "POST", "PUT", "DELETE"} <= methods
            allowed_headers = headers["access-control-allow-headers"].lower()
            assert "authorization" in allowed_headers
            assert "content-type" in allowed_headers
        download = client.get(url, headers={"Origin": ALLOWED})
        assert download.status_code == 200
        assert download.headers["access-control-allow-origin"] == ALLOWED
        exposed = {
            h.strip().lower() for h in download.headers["access-control-expose-headers"].split(",")
        }
        assert exposed == {"etag", "location", "retry-after"}
        assert download.headers["etag"]


def test_cors_ignores_other_origins(tmp_path: Path) -> None:
    """Other origins' (and origin-less) requests carry no Access-Control-* header, but Vary."""
    app, url = _cors_app(tmp_path, [ALLOWED])
    with TestClient(app) as client:
        preflight = _preflight(client, "/api/ping", "https://evil.example", "GET")
        assert preflight.status_code == 405
        assert not [h for h in preflight.headers if h.startswith("access-control-")]
        assert "origin" in preflight.headers["vary"].lower()
        download = client.get(url, headers={"Origin": "https://evil.example"})
        assert download.status_code == 200
        assert not [h for h in download.headers if h.startswith("access-control-")]
        without_origin = client.get("/api/ping")
        assert not [h for h in without_origin.headers if h.startswith("access-control-")]
        assert "origin" in without_origin.headers["vary"].lower()  # caches keep them apart


def test_no_origins_means_no_cors_headers(tmp_path: Path) -> None:
    """Without origins (the default) even a preflight from anywhere gets no CORS headers."""
    nothing: list[list[str] | None] = [None, []]
    for origins in nothing:
        app, _ = _cors_app(tmp_path / str(origins), origins)
        with TestClient(app) as client:
            preflight = _preflight(client, "/api/ping", ALLOWED, "GET")
            assert preflight.status_code == 405
            assert not [h for h in preflight.headers if h.startswith("access-control-")]


def test_cors_refusals_carry_cors_headers_too(tmp_path: Path) -> None:
    """A 413 from the body limit and a bug's 500 reach a browser of an allowed origin readable."""
    app, _ = _cors_app(tmp_path, [ALLOWED])
    with TestClient(app) as client:
        response = client.post("/api/echo", content=b"x" * 70_000, headers={"Origin": ALLOWED})
        assert_error(response, 413, "REQUEST_TOO_LARGE")
        assert response.headers["access-control-allow-origin"] == ALLOWED
        # raise_server_exceptions (the default) would raise here had the bug reached the server
        bug = client.get("/api/bug", headers={"Origin": ALLOWED})
    assert assert_error(bug, 500, "INTERNAL_ERROR")["details"] == {}
    assert bug.headers["access-control-allow-origin"] == ALLOWED
    assert "Fluffy" not in bug.text


@pytest.mark.parametrize(
    ("value", "origins"),
    [
        (None, ()),
        ("", ()),
        (" , ", ()),
        ("https://a.example", ("https://a.example",)),
        (
            "https://A.example/, http://localhost:3000",
            ("https://a.example", "http://localhost:3000"),
        ),
        (["https://a.example", "https://a.example"], ("https://a.example",)),
        ("https://a.example:443, http://a.example:80", ("https://a.example", "http://a.example")),
        ("http://[::1]:03000", ("http://[::1]:3000",)),
    ],
)
def test_parse_cors_origins(value: Any, origins: tuple[str, ...]) -> None:
    """Comma-separated or listed origins are normalized; duplicates and blanks dropped."""
    assert parse_cors_origins(value) == origins


@pytest.mark.parametrize(
    "value",
    [
        "*",
        "https://*.example",
        "a.example",
        "ftp://a.example",
        "https://a.example/app",
        "https://user@a.example",
        "https://a.example:99999",
        "https://a.example?",
    ],
)
def test_parse_cors_origins_refuses_what_is_not_an_origin(value: str) -> None:
    """Wildcards, bare hosts, other schemes and paths are configuration errors."""
    with pytest.raises(ValueError, match="not a browser origin"):
        parse_cors_origins(f"https://ok.example,{value}")


def test_settings_the_api_and_the_bucket_read_origins_alike() -> None:
    """One parser: DeploymentSettings, CORS and bucket-setup see the same lowercased origins.

    A wildcard is refused by all three (it was accepted by the settings and
    written into the bucket's rule, then refused by the API).
    """
    value = "HTTPS://App.Example.com/, https://app.example.com:443, http://localhost:3000"
    environment = DeploymentSettings.from_env({"HELPPET_CORS_ORIGINS": value})
    expected = ("https://app.example.com", "http://localhost:3000")
    assert environment.cors_origins == expected
    assert parse_cors_origins(value) == expected
    expect = BucketExpectations.from_environment(environment)
    assert expect.origins == expected
    rule = expect.cors_rule()
    assert rule is not None
    assert rule["AllowedOrigins"] == list(expected)
    for wildcard in ("*", "https://*.example.com"):
        with pytest.raises(ConfigurationError) as caught:
            DeploymentSettings.from_env({"HELPPET_CORS_ORIGINS": wildcard})
        assert caught.value.details["variable"] == "HELPPET_CORS_ORIGINS"
        with pytest.raises(ValueError, match="no wildcard"):
            parse_cors_origins(wildcard)
        with pytest.raises(ValueError, match="no wildcard"):
            attrs.evolve(expect, origins=(wildcard,))


def test_access_log_filter_cuts_query_strings_once() -> None:
    """Uvicorn's access lines lose the query, keep the path; installing twice adds one filter."""
    access = logging.getLogger("test.access.filter")
    hide_query_strings(access)
    hide_query_strings(access)
    assert sum(isinstance(f, QueryStringFilter) for f in access.filters) == 1
    args = ("127.0.0.1:5", "GET", "/local-storage/download/k.wav?exp=1&sig=abc", "1.1", 200)
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None
    )
    only = QueryStringFilter()
    assert only.filter(record) is True
    assert record.getMessage() == '127.0.0.1:5 - "GET /local-storage/download/k.wav HTTP/1.1" 200'
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "%s", ("a?b",), None)
    only.filter(plain)
    assert plain.getMessage() == "a?b"
