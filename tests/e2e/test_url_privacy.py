"""No client text in a URL or an access log line: the example app over real HTTP.

The phone names its file ``Bello Smith visit.wav`` (a patient's name, as
phones do). After initiate, upload, complete, download-url and the download,
neither the name nor any part of it may appear in a URL the API returned, in
the download's Content-Disposition, or in the server's log with uvicorn's
access log on; nor may the download URL's signed query string.
"""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from examples.fastapi_app.auth import mint_token

from tests.support.replay import ORIGINAL
from tests.support.seaweedfs import SeaweedEndpoint
from tests.support.uvicorn_app import UvicornProcess

pytestmark = pytest.mark.e2e

SECRET = "url-privacy-jwt-secret-0123456789abcdefghij"
API = "/api/v1/recordings"
FILENAME = "Bello Smith visit.wav"
CLIENT_TEXT = ("Bello", "Smith", urllib.parse.quote(FILENAME), FILENAME)


def _env(tmp_path: Path) -> dict[str, str]:
    return {"HELPPET_JWT_SECRET": SECRET, "DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}"}


@pytest.fixture
def local_server(tmp_path: Path) -> Iterator[UvicornProcess]:
    """The example app on LocalStorage and SQLite, logging at info (access log on)."""
    env = {
        **_env(tmp_path),
        "HELPPET_STORAGE": "local",
        "HELPPET_LOCAL_STORAGE_DIR": str(tmp_path / "files"),
    }
    server = UvicornProcess(tmp_path, env, log_level="info")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_server(
    tmp_path: Path, seaweed: SeaweedEndpoint, seaweed_bucket: str
) -> Iterator[UvicornProcess]:
    """The example app on S3Storage (SeaweedFS) and SQLite, logging at info."""
    env = {
        **_env(tmp_path),
        "HELPPET_STORAGE": "s3",
        "AWS_ENDPOINT_URL": seaweed.endpoint_url,
        "AWS_ACCESS_KEY_ID": seaweed.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
        "AWS_REGION": seaweed.region,
        "S3_BUCKET_NAME": seaweed_bucket,
    }
    server = UvicornProcess(tmp_path, env, log_level="info")
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _full_flow(base_url: str) -> tuple[list[str], httpx.Response]:
    """Initiate, upload, complete, sign a download and download; return the URLs and download."""
    headers = {"Authorization": f"Bearer {mint_token(SECRET, uuid.uuid4())}"}
    with httpx.Client(base_url=base_url, timeout=30) as client:
        initiated = client.post(
            f"{API}/upload/initiate",
            json={"filename": FILENAME, "content_type": "audio/wav"},
            headers=headers,
        )
        assert initiated.status_code == 200, initiated.text
        ticket: dict[str, Any] = initiated.json()
        rid = ticket["recording_id"]
        fields: dict[str, str] = ticket["upload_fields"]
        posted = client.post(
            ticket["upload_url"],
            data=fields,
            files={"file": (FILENAME, ORIGINAL, fields["Content-Type"])},
        )
        assert posted.is_success, posted.text
        completed = client.post(
            f"{API}/upload/complete/{rid}",
            json={"file_size_bytes": len(ORIGINAL)},
            headers=headers,
        )
        assert completed.status_code == 200, completed.text
        assert completed.json()["original_filename"] == FILENAME
        signed = client.get(f"{API}/{rid}/download-url", headers=headers)
        assert signed.status_code == 200, signed.text
        download_url: str = signed.json()["download_url"]
        downloaded = client.get(download_url)
        assert downloaded.status_code == 200, downloaded.text
        assert downloaded.content == ORIGINAL
        urls = [
            ticket["upload_url"],
            fields["key"],
            ticket["s3_key"],
            completed.json()["s3_key"],
            download_url,
        ]
        return urls, downloaded


def _assert_no_client_text(urls: list[str], downloaded: httpx.Response) -> None:
    for url in urls:
        for shown in (url, urllib.parse.unquote_plus(url)):
            leaked = [text for text in CLIENT_TEXT if text.lower() in shown.lower()]
            assert not leaked, f"{leaked} in {url}"
    disposition = downloaded.headers.get("content-disposition", "")
    assert not [text for text in CLIENT_TEXT if text.lower() in disposition.lower()], disposition


def _assert_log_is_clean(server: UvicornProcess, download_url: str) -> None:
    log = server.log_path.read_text(errors="replace")
    assert f"GET {httpx.URL(download_url).path}" in log, "the access log is not on"
    assert "Bello" not in log
    assert "Smith" not in log
    query = urllib.parse.urlsplit(download_url).query
    assert query
    assert query not in log
    path = httpx.URL(download_url).path
    for name, value in urllib.parse.parse_qsl(query):
        if value not in path:  # the key's own name (``fn``) is in the logged path anyway
            assert value not in log, name


def test_local_storage_flow_leaks_no_filename(local_server: UvicornProcess) -> None:
    """On LocalStorage, no URL, download header or log line carries the filename or a query."""
    urls, downloaded = _full_flow(local_server.base_url)
    _assert_no_client_text(urls, downloaded)
    _assert_log_is_clean(local_server, urls[-1])


def test_s3_storage_flow_leaks_no_filename(s3_server: UvicornProcess) -> None:
    """On SeaweedFS, the download URL asks for no Content-Disposition naming the client's file."""
    urls, downloaded = _full_flow(s3_server.base_url)
    _assert_no_client_text(urls, downloaded)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(urls[-1]).query))
    disposition = query.get("response-content-disposition", "")
    assert not [text for text in CLIENT_TEXT if text.lower() in disposition.lower()], disposition
    log = s3_server.log_path.read_text(errors="replace")
    assert "Bello" not in log
    assert "Smith" not in log
