"""The FastAPI integration's part route for LocalStorage: PUTs through install(), with CORS."""

from __future__ import annotations

import hashlib
import urllib.parse
import warnings
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

from helppet_recordings import LocalStorage
from helppet_recordings.integrations.fastapi import install

with warnings.catch_warnings():
    # Starlette prefers httpx2 for its test client; the project's tests use httpx, which works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

ALLOWED = "https://app.clinic.example"
KEY = "recordings/u/ctx/a.m4a"
PART = bytes(range(256)) * 400  # 100 KiB: over the JSON body limit


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    """A LocalStorage whose base URL is the test client's /local-storage."""
    return LocalStorage(tmp_path, "http://testserver/local-storage", "s" * 32)


@pytest.fixture
def client(storage: LocalStorage) -> TestClient:
    """An app with the integration installed, CORS for one origin."""
    app = FastAPI()
    install(app, local_storage=storage, cors_origins=[ALLOWED])
    return TestClient(app)


def _path(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_a_part_put_through_the_route_is_kept(storage: LocalStorage, client: TestClient) -> None:
    """A 100 KiB part passes the JSON body limit, is kept, and answers its ETag."""
    upload_id = storage.create_multipart_upload(key=KEY, content_type="audio/mp4")
    url = storage.sign_upload_part(
        key=KEY, upload_id=upload_id, part_number=1, size=len(PART), expires_in=60
    )
    response = client.put(_path(url), content=PART)
    md5 = hashlib.md5(PART).hexdigest()  # noqa: S324 - part ETags are MD5
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == f'"{md5}"'
    assert storage.list_parts(key=KEY, upload_id=upload_id) == [(1, len(PART), md5)]


def test_a_refused_part_answers_the_s3_error(storage: LocalStorage, client: TestClient) -> None:
    """A body of another length than signed is 403 with S3's XML error; nothing is kept."""
    upload_id = storage.create_multipart_upload(key=KEY, content_type="audio/mp4")
    url = storage.sign_upload_part(
        key=KEY, upload_id=upload_id, part_number=1, size=len(PART), expires_in=60
    )
    response = client.put(_path(url), content=PART[:-1])
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/xml"
    assert "<Code>SignatureDoesNotMatch</Code>" in response.text
    assert storage.list_parts(key=KEY, upload_id=upload_id) == []


def test_cors_preflight_allows_a_part_put_and_exposes_its_etag(
    storage: LocalStorage, client: TestClient
) -> None:
    """A browser of an allowed origin may PUT a part and read the ETag it answers."""
    upload_id = storage.create_multipart_upload(key=KEY, content_type="audio/mp4")
    url = storage.sign_upload_part(
        key=KEY, upload_id=upload_id, part_number=1, size=3, expires_in=60
    )

    preflight = client.options(
        _path(url),
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == ALLOWED
    methods = {m.strip() for m in preflight.headers["access-control-allow-methods"].split(",")}
    assert "PUT" in methods
    assert "content-type" in preflight.headers["access-control-allow-headers"].lower()

    put = client.put(_path(url), content=b"abc", headers={"Origin": ALLOWED})
    assert put.status_code == 200
    assert put.headers["access-control-allow-origin"] == ALLOWED
    exposed = {h.strip().lower() for h in put.headers["access-control-expose-headers"].split(",")}
    assert "etag" in exposed
    assert put.headers["etag"] == f'"{hashlib.md5(b"abc").hexdigest()}"'  # noqa: S324
