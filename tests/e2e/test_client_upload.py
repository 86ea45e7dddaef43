"""RecordingUploader against the real example app over HTTP, through a flaky loopback proxy.

The app runs on LocalStorage (its upload and part routes served by the app)
and on S3Storage against SeaweedFS; every byte the client sends, to the API
and to storage, goes through :class:`FlakyProxy`, which refuses with 503,
drops and cuts connections at random. The upload must still finish with the
right bytes (downloaded and compared by SHA-256). A client process killed
mid-upload must resume from its state file and send only the parts storage
lacks (counted at the proxy).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import boto3
import httpx
import pytest
from botocore.config import Config
from examples.fastapi_app.auth import mint_token
from examples.fastapi_app.main import create_app

from helppet_recordings import (
    InMemoryRepository,
    LocalStorage,
    RecordingService,
    RecordingSettings,
    S3Storage,
)
from helppet_recordings.client import RecordingUploader, RetryPolicy, load_state
from tests.support.asgi_server import ServerThread
from tests.support.audio import wav_file
from tests.support.flaky_proxy import FlakyProxy
from tests.support.seaweedfs import SeaweedEndpoint, create_bucket

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SECRET = "client-e2e-jwt-secret-0123456789abcdefghij"
API = "/api/v1/recordings"
MiB = 1024 * 1024
PART = 8 * MiB
PATIENT = RetryPolicy(attempts=40, timeout=120, wait_initial=0.01, wait_max=0.2, wait_jitter=0.05)
"""Retries for a proxy that fails often and asks for no wait: many, quick."""


@attrs.frozen
class Deployment:
    """The example app behind a flaky proxy: where to send, how to read back."""

    proxy: FlakyProxy
    """In front of the API (and of LocalStorage, which the app serves)."""
    storage_proxy: FlakyProxy
    """In front of storage: what storage received is counted here."""
    direct_url: str
    token: str

    @property
    def api_url(self) -> str:
        """The API's base URL through the proxy."""
        return self.proxy.base_url

    def download(self, recording_id: uuid.UUID) -> bytes:
        """Fetch the recording's audio around the proxy (faults there are not under test)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(timeout=60) as http:
            answer = http.get(
                f"{self.direct_url}{API}/{recording_id}/download-url", headers=headers
            )
            assert answer.status_code == 200, answer.text
            url = answer.json()["download_url"].replace(self.proxy.base_url, self.direct_url)
            body = http.get(url)
            assert body.status_code == 200
            return body.content


def _serve(
    proxy: FlakyProxy, service: RecordingService, local: LocalStorage | None
) -> ServerThread:
    app = create_app(service, jwt_secret=SECRET, local_storage=local)
    server = ServerThread(app).start()
    proxy.target = ("127.0.0.1", server.port)
    return server


@pytest.fixture(scope="module")
def local_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The example app on LocalStorage; its upload URLs name the proxy."""
    proxy = FlakyProxy(seed=7).start()
    storage = LocalStorage(
        tmp_path_factory.mktemp("client-local"),
        base_url=proxy.base_url + "/local-storage",
        secret=secrets.token_urlsafe(32),
    )
    service = RecordingService(
        storage=storage,
        repository=InMemoryRepository(),
        settings=RecordingSettings(max_file_size=200 * MiB),
    )
    server = _serve(proxy, service, storage)
    try:
        yield Deployment(proxy, proxy, server.base_url, mint_token(SECRET, uuid.uuid4()))
    finally:
        proxy.stop()  # first: its connections would hold the server's shutdown
        server.stop()


@pytest.fixture(scope="module")
def seaweed_deployment(seaweed: SeaweedEndpoint) -> Iterator[Deployment]:
    """The example app on S3Storage/SeaweedFS; the app and the client reach storage by proxy."""
    bucket = f"client-{secrets.token_hex(4)}"
    create_bucket(seaweed, bucket)
    storage_proxy = FlakyProxy(seed=11).start()
    storage_proxy.target = ("127.0.0.1", int(httpx.URL(seaweed.endpoint_url).port or 80))
    client = boto3.client(
        "s3",
        endpoint_url=storage_proxy.base_url,
        aws_access_key_id=seaweed.access_key,
        aws_secret_access_key=seaweed.secret_key,
        region_name=seaweed.region,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    service = RecordingService(
        storage=S3Storage(bucket, client=client),
        repository=InMemoryRepository(),
        settings=RecordingSettings(max_file_size=200 * MiB, s3_bucket_name=bucket),
    )
    api_proxy = FlakyProxy(seed=13).start()
    server = _serve(api_proxy, service, None)
    try:
        yield Deployment(
            api_proxy, storage_proxy, server.base_url, mint_token(SECRET, uuid.uuid4())
        )
    finally:
        api_proxy.stop()
        server.stop()
        storage_proxy.stop()


@pytest.fixture(params=["local", "seaweed"])
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """Each deployment in turn, its proxy faults reset afterwards."""
    chosen: Deployment = request.getfixturevalue(f"{request.param}_deployment")
    yield chosen
    chosen.proxy.set_faults()


def _uploader(deployment: Deployment, **options: object) -> RecordingUploader:
    return RecordingUploader(
        deployment.api_url,
        token=deployment.token,
        retry=PATIENT,
        **options,  # type: ignore[arg-type]
    )


def test_post_upload_survives_a_flaky_network(deployment: Deployment, tmp_path: Path) -> None:
    """A small file goes by POST through refusals and drops, and the stored bytes are the file's."""
    path = wav_file(tmp_path / "visit.wav", 3 * MiB + 17)
    deployment.proxy.set_faults(refuse=0.25, drop=0.15, cut=0.1)
    with _uploader(deployment) as uploader:
        recording = uploader.upload(path, duration_seconds=1.5)
    deployment.proxy.set_faults()
    assert recording.status == "uploaded"
    assert recording.file_size_bytes == path.stat().st_size
    stored = deployment.download(recording.id)
    assert hashlib.sha256(stored).digest() == hashlib.sha256(path.read_bytes()).digest()
    assert deployment.proxy.faults["refuse"] + deployment.proxy.faults["drop"] > 0


def test_multipart_upload_survives_a_flaky_network(deployment: Deployment, tmp_path: Path) -> None:
    """A large file goes through refusals, drops and cut bodies; the stored bytes match.

    It goes in parallel parts on both deployments (LocalStorage serves part PUTs too).
    """
    path = wav_file(tmp_path / "visit.wav", 3 * PART + 333_333)
    progress: list[int] = []
    deployment.proxy.set_faults(refuse=0.2, drop=0.1, cut=0.15)
    try:
        with _uploader(deployment, parallel=4) as uploader:
            recording = uploader.upload(path, progress=lambda sent, _total: progress.append(sent))
    finally:
        deployment.proxy.set_faults()
    assert recording.status == "uploaded"
    assert recording.file_size_bytes == path.stat().st_size
    assert progress == sorted(progress)
    assert progress[-1] == path.stat().st_size
    stored = deployment.download(recording.id)
    assert hashlib.sha256(stored).digest() == hashlib.sha256(path.read_bytes()).digest()


def _parts_held(deployment: Deployment, recording_id: uuid.UUID) -> int:
    """Bytes storage holds for the upload, as the parts route reports them."""
    answer = httpx.post(
        f"{deployment.direct_url}{API}/upload/multipart/{recording_id}/parts",
        headers={"Authorization": f"Bearer {deployment.token}"},
        json={},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return sum(part["size"] for part in answer.json()["uploaded_parts"])


def test_killed_client_resumes_and_sends_only_missing_parts(
    deployment: Deployment, tmp_path: Path
) -> None:
    """``helppet-recordings upload`` SIGKILLed mid-upload resumes from its state file.

    The second run sends (through the proxy) the parts storage lacks and no
    more than a few kilobytes of requests besides.
    """
    size = 5 * PART + 4242
    path = wav_file(tmp_path / "visit.wav", size)
    state = tmp_path / "visit.wav.upload-state.json"
    command = [
        sys.executable,
        "-m",
        "helppet_recordings.cli",
        "upload",
        str(path),
        "--api",
        deployment.api_url,
        "--parallel",
        "2",
        "--json",
    ]
    env = {**os.environ, "HELPPET_API_TOKEN": deployment.token}
    storage = deployment.storage_proxy
    storage.throttle = 16 * MiB  # bytes per second per connection: time to kill it
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            saved = load_state(state)
            if saved is not None and saved.sent_parts:
                break
            assert first.poll() is None, "the first run ended before it was killed"
            assert time.monotonic() < deadline, "the first run never finished a part"
            time.sleep(0.01)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
        storage.throttle = None
    storage.wait_quiet(1.0, timeout=30)  # a part the killed run sent whole still lands: count it
    saved = load_state(state)
    assert saved is not None
    assert saved.recording_id is not None
    held = _parts_held(deployment, saved.recording_id)
    assert 0 < held < size

    before = storage.bytes_up
    second = subprocess.run(command, env=env, capture_output=True, timeout=120, check=False)
    assert second.returncode == 0, second.stderr.decode()
    resent = storage.bytes_up - before
    assert size - held <= resent <= size - held + 64 * 1024
    assert not state.exists()
    recording = json.loads(second.stdout)["recording"]
    assert recording["id"] == str(saved.recording_id)
    stored = deployment.download(saved.recording_id)
    assert hashlib.sha256(stored).digest() == hashlib.sha256(path.read_bytes()).digest()
    print(f"resume: storage held {held} of {size} bytes; the second run sent {resent}")
