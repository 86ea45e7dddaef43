"""The FastAPI example as deployed: ``uvicorn examples.fastapi_app.main:app`` over real HTTP.

The server is a subprocess configured only through the environment (contract
section 5); the test is the phone: initiate, multipart upload, complete, list,
download, delete. Once on LocalStorage, once on S3Storage against SeaweedFS,
and on LocalStorage behind ``uvicorn --root-path`` and mounted under a prefix
in a host app, where a 60 MB JSON body must be refused with the server's
memory (``/proc/<pid>/status``) growing by far less than the body.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
import pytest
from examples.demo import tone_wav
from examples.fastapi_app.auth import mint_token

from tests.support.seaweedfs import SeaweedEndpoint
from tests.support.uvicorn_app import UvicornProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SECRET = "e2e-jwt-secret-0123456789abcdefghijklmnop"
API = "/api/v1/recordings"
MiB = 1024 * 1024
HUGE_BODY_BYTES = 60 * MiB
MEMORY_GROWTH_LIMIT = 16 * MiB
"""Most the server may grow while refusing a 60 MB body (it used to buffer all of it)."""


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[type[UvicornProcess]]:
    """Start servers for the test; every one is stopped afterwards."""
    started: list[UvicornProcess] = []

    class Tracked(UvicornProcess):
        def start(self) -> None:
            """Start, and remember to stop."""
            started.append(self)
            super().start()

    yield Tracked
    for server in started:
        server.stop()


def _phone_flow(base_url: str, *, seconds: float = 1.0) -> str:
    """Play the phone against ``base_url``; return the upload URL's host the ticket named."""
    user = uuid.uuid4()
    audio = tone_wav(seconds=seconds)
    headers = {"Authorization": f"Bearer {mint_token(SECRET, user)}"}
    with httpx.Client(base_url=base_url, timeout=30) as client:
        initiated = client.post(
            f"{API}/upload/initiate",
            json={"filename": "visit.wav", "content_type": "audio/wav"},
            headers=headers,
        )
        assert initiated.status_code == 200, initiated.text
        ticket = initiated.json()
        rid = ticket["recording_id"]
        uploaded = client.post(
            ticket["upload_url"],
            data=ticket["upload_fields"],
            files={"file": ("visit.wav", audio, ticket["upload_fields"]["Content-Type"])},
        )
        assert 200 <= uploaded.status_code < 300, uploaded.text
        completed = client.post(
            f"{API}/upload/complete/{rid}",
            json={"file_size_bytes": len(audio), "duration_seconds": 1.0},
            headers=headers,
        )
        assert completed.status_code == 200, completed.text
        assert completed.json()["status"] == "uploaded"
        listed = client.get(f"{API}/", headers=headers).json()
        assert [item["id"] for item in listed["items"]] == [rid]
        url = client.get(f"{API}/{rid}/download-url", headers=headers)
        assert url.status_code == 200, url.text
        downloaded = client.get(url.json()["download_url"])
        assert downloaded.status_code == 200
        assert hashlib.sha256(downloaded.content).digest() == hashlib.sha256(audio).digest()
        assert client.delete(f"{API}/{rid}", headers=headers).status_code == 204
        gone = client.get(f"{API}/{rid}", headers=headers)
        assert (gone.status_code, gone.json()["error_code"]) == (404, "RECORDING_NOT_FOUND")
        assert client.get(f"{API}/", headers={}).status_code == 401
        return str(httpx.URL(ticket["upload_url"]).host)


def test_local_storage_over_http(serve: type[UvicornProcess], tmp_path: Path) -> None:
    """On LocalStorage and SQLite, the phone's whole flow works over real HTTP."""
    server = serve(
        tmp_path,
        {
            "HELPPET_JWT_SECRET": SECRET,
            "HELPPET_STORAGE": "local",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}",
            "HELPPET_LOCAL_STORAGE_DIR": str(tmp_path / "files"),
        },
    )
    server.start()
    assert _phone_flow(server.base_url) == "127.0.0.1"
    assert list((tmp_path / "files" / "objects").rglob("*.wav"))


def test_s3_storage_on_seaweedfs_over_http(
    serve: type[UvicornProcess], tmp_path: Path, seaweed: SeaweedEndpoint, seaweed_bucket: str
) -> None:
    """With HELPPET_STORAGE=s3 the phone uploads to SeaweedFS directly, through the same API."""
    server = serve(
        tmp_path,
        {
            "HELPPET_JWT_SECRET": SECRET,
            "HELPPET_STORAGE": "s3",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}",
            "AWS_ENDPOINT_URL": seaweed.endpoint_url,
            "AWS_ACCESS_KEY_ID": seaweed.access_key,
            "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
            "AWS_REGION": seaweed.region,
            "S3_BUCKET_NAME": seaweed_bucket,
        },
    )
    server.start()
    upload_host = _phone_flow(server.base_url)
    assert upload_host == "127.0.0.1"
    assert str(httpx.URL(seaweed.endpoint_url).port) not in server.base_url
    local_routes = httpx.post(f"{server.base_url}/local-storage/upload", content=b"x", timeout=10)
    assert local_routes.status_code == 404


def test_access_log_has_no_signed_query_strings(
    serve: type[UvicornProcess], tmp_path: Path
) -> None:
    """Uvicorn's access log names each route but never a URL's query (expiry, signature)."""
    server = serve(tmp_path, _local_env(tmp_path), log_level="info")
    server.start()
    _phone_flow(server.base_url)
    requests = [
        line for line in server.log_path.read_text().splitlines() if '" 2' in line or '" 4' in line
    ]
    downloads = [line for line in requests if "GET /local-storage/download/" in line]
    assert len(downloads) == 1, requests
    uploads = [line for line in requests if "POST /local-storage/upload" in line]
    assert uploads, requests
    assert not [line for line in requests if "?" in line or "signature" in line.lower()]


def test_server_without_secret_refuses_to_start(tmp_path: Path) -> None:
    """Started without HELPPET_JWT_SECRET, uvicorn exits and says what to set."""
    server = UvicornProcess(tmp_path, {"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    with pytest.raises(pytest.fail.Exception, match="HELPPET_JWT_SECRET"):
        server.start()
    server.stop()


# ------------------------------------------------ the JSON body limit under a prefix


class PeakMemory:
    """A process's memory growth over a block: VmRSS sampled every 2 ms, and VmHWM.

    The high-water mark is reset on entry (``/proc/<pid>/clear_refs``), so it
    also catches a peak between two samples.
    """

    def __init__(self, pid: int) -> None:
        self._status = Path(f"/proc/{pid}/status")
        self._clear_refs = Path(f"/proc/{pid}/clear_refs")
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self.baseline = 0
        self.sampled_peak = 0
        self.growth = 0

    def _read_kib(self, field: str) -> int:
        for line in self._status.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        msg = f"{field} missing from {self._status}"
        raise AssertionError(msg)

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.sampled_peak = max(self.sampled_peak, self._read_kib("VmRSS"))

    def __enter__(self) -> Self:
        self.baseline = self.sampled_peak = self._read_kib("VmRSS")
        self._clear_refs.write_text("5")  # reset VmHWM to the current RSS
        self._sampler.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._sampler.join()
        peak = max(self.sampled_peak, self._read_kib("VmHWM"))
        self.growth = (peak - self.baseline) * 1024


def _chunked(total: int, prefix: bytes = b"") -> Iterator[bytes]:
    """``total`` bytes of a JSON string body in 1 MiB chunks (no Content-Length)."""
    chunk = b"a" * MiB
    yield prefix
    sent = len(prefix)
    while sent < total:
        piece = chunk[: total - sent]
        sent += len(piece)
        yield piece


def _refuses_huge_json(server: UvicornProcess, path: str) -> None:
    """POST 60 MB of JSON to ``path`` with and without Content-Length: 413, memory flat."""
    headers = {
        "Authorization": f"Bearer {mint_token(SECRET, uuid.uuid4())}",
        "Content-Type": "application/json",
    }
    prefix = b'{"content_type": "audio/wav", "filename": "'
    huge = prefix + b"a" * (HUGE_BODY_BYTES - len(prefix))
    bodies: dict[str, Callable[[], bytes | Iterator[bytes]]] = {
        "content-length": lambda: huge,
        "chunked": lambda: _chunked(HUGE_BODY_BYTES, prefix),
    }
    with httpx.Client(base_url=server.base_url, timeout=120) as client:
        warm = client.post(path, content=_chunked(200_000, prefix), headers=headers)
        assert warm.status_code == 413, warm.text
        for name, body in bodies.items():
            with PeakMemory(server.pid) as memory:
                response = client.post(path, content=body(), headers=headers)
            assert response.status_code == 413, (name, response.text)
            assert response.json()["error_code"] == "REQUEST_TOO_LARGE"
            assert memory.growth < MEMORY_GROWTH_LIMIT, (
                f"{name}: the server grew {memory.growth / MiB:.1f} MiB refusing "
                f"{HUGE_BODY_BYTES / MiB:.0f} MiB"
            )


def _local_env(tmp_path: Path) -> dict[str, str]:
    return {
        "HELPPET_JWT_SECRET": SECRET,
        "HELPPET_STORAGE": "local",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}",
        "HELPPET_LOCAL_STORAGE_DIR": str(tmp_path / "files"),
    }


def test_body_limit_holds_under_root_path(serve: type[UvicornProcess], tmp_path: Path) -> None:
    """Under ``uvicorn --root-path /api-gw`` a 60 MB JSON body is refused, not buffered."""
    server = serve(tmp_path, _local_env(tmp_path), options=["--root-path", "/api-gw"])
    server.start()
    # Uploads (over the JSON limit) still reach LocalStorage: the limit follows the route.
    assert _phone_flow(server.base_url, seconds=4.0) == "127.0.0.1"
    _refuses_huge_json(server, f"{API}/upload/initiate")


def test_body_limit_holds_when_mounted_in_a_host_app(
    serve: type[UvicornProcess], tmp_path: Path
) -> None:
    """Mounted under /clinic in a host app, a 60 MB JSON body is refused, not buffered."""
    server = serve(
        tmp_path,
        _local_env(tmp_path),
        app="tests.examples.mounted_app:create_host_app",
        options=["--factory"],
        public_path="/clinic",
    )
    server.start()
    assert httpx.get(f"{server.base_url}/health", timeout=10).json() == {"status": "ok"}
    assert _phone_flow(f"{server.base_url}/clinic", seconds=4.0) == "127.0.0.1"
    _refuses_huge_json(server, f"/clinic{API}/upload/initiate")
