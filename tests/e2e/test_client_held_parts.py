"""Parts storage already holds are kept only when they hold this file's bytes.

The example app on LocalStorage, over real HTTP. A first upload is cut off
after its first two parts (storage refuses part 3 for good); the file is then
rewritten with other content of the same size and uploaded again. Whatever
leads the second run to the first run's recording (the same idempotency key,
with or without a state file, or a state file naming that recording), the
completed object must be the new file, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import pytest
from examples.fastapi_app.auth import mint_token
from examples.fastapi_app.main import create_app

from helppet_recordings import InMemoryRepository, LocalStorage, RecordingService, RecordingSettings
from helppet_recordings.client import RecordingUploader, load_state
from helppet_recordings.errors import StorageError
from tests.support.asgi_server import ServerThread
from tests.support.audio import wav_file

pytestmark = pytest.mark.e2e

SECRET = "client-held-parts-jwt-secret-0123456789abc"
API = "/api/v1/recordings"
MiB = 1024 * 1024
SIZE = 24 * MiB  # three parts of 8 MiB


@attrs.frozen
class App:
    """The example app on LocalStorage, and a token of one user."""

    base_url: str
    token: str

    def download(self, recording_id: uuid.UUID) -> bytes:
        """The recording's stored audio."""
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(timeout=60) as http:
            answer = http.get(f"{self.base_url}{API}/{recording_id}/download-url", headers=headers)
            assert answer.status_code == 200, answer.text
            body = http.get(answer.json()["download_url"])
            assert body.status_code == 200
            return body.content


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """The example app on LocalStorage (its part URLs served by the app itself)."""
    holder: dict[str, object] = {}

    async def asgi(scope: object, receive: object, send: object) -> None:
        await holder["app"](scope, receive, send)  # type: ignore[operator]

    server = ServerThread(asgi)  # bound first: LocalStorage's URLs must name its port
    storage = LocalStorage(
        tmp_path_factory.mktemp("held-parts"),
        base_url=server.base_url + "/local-storage",
        secret=secrets.token_urlsafe(32),
    )
    service = RecordingService(
        storage=storage,
        repository=InMemoryRepository(),
        settings=RecordingSettings(max_file_size=200 * MiB),
    )
    holder["app"] = create_app(service, jwt_secret=SECRET, local_storage=storage)
    server.start()
    try:
        yield App(server.base_url, mint_token(SECRET, uuid.uuid4()))
    finally:
        server.stop()


class RefusePart(httpx.BaseTransport):
    """Real HTTP, except that storage refuses one part number for good (a 400 not retried)."""

    def __init__(self, part_number: int) -> None:
        self._inner = httpx.HTTPTransport()
        self._refused = str(part_number)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Refuse the part, pass everything else on."""
        if request.method == "PUT" and request.url.params.get("partNumber") == self._refused:
            body = "<Error><Code>InvalidRequest</Code><Message>refused</Message></Error>"
            return httpx.Response(400, text=body, headers={"Content-Type": "application/xml"})
        return self._inner.handle_request(request)

    def close(self) -> None:
        """Close the real transport."""
        self._inner.close()


def _cut_off(app: App, path: Path, **options: object) -> None:
    """Upload ``path`` until storage holds parts 1 and 2, then stop (part 3 is refused)."""
    with (
        RecordingUploader(
            app.base_url, token=app.token, parallel=1, transport=RefusePart(3)
        ) as uploader,
        pytest.raises(StorageError),
    ):
        uploader.upload(path, **options)  # type: ignore[arg-type]


def _rewrite(path: Path) -> bytes:
    """Give ``path`` other content of the same size; return it."""
    before = path.read_bytes()
    wav_file(path, SIZE)
    after = path.read_bytes()
    assert after != before
    assert len(after) == len(before)
    return after


@pytest.mark.parametrize("with_state_file", [False, True])
def test_a_rewritten_file_replaces_the_parts_held_under_its_key(
    app: App, tmp_path: Path, *, with_state_file: bool
) -> None:
    """The same idempotency key after a rewrite: the parts held are old bytes and are sent again."""
    path = wav_file(tmp_path / "visit.wav", SIZE)
    key = f"visit-{secrets.token_hex(4)}"
    options: dict[str, object] = {"idempotency_key": key}
    if with_state_file:
        options["state_file"] = tmp_path / "visit.wav.upload-state.json"
    _cut_off(app, path, **options)
    new = _rewrite(path)

    with RecordingUploader(app.base_url, token=app.token) as uploader:
        recording = uploader.upload(path, **options)  # type: ignore[arg-type]

    assert hashlib.sha256(app.download(recording.id)).digest() == hashlib.sha256(new).digest()


def test_a_state_file_naming_another_upload_gets_this_files_bytes(app: App, tmp_path: Path) -> None:
    """A state file whose recording is another unfinished upload of the same size.

    The other upload's parts are not this file's: they are sent again, and
    the completed object is this file.
    """
    other = wav_file(tmp_path / "other.wav", SIZE)
    _cut_off(app, other, state_file=tmp_path / "other.state.json")
    other_state = load_state(tmp_path / "other.state.json")
    assert other_state is not None
    assert other_state.recording_id is not None

    path = wav_file(tmp_path / "visit.wav", SIZE)
    state_file = tmp_path / "visit.state.json"
    _cut_off(app, path, state_file=state_file)
    edited = json.loads(state_file.read_text())
    edited["recording_id"] = str(other_state.recording_id)
    state_file.write_text(json.dumps(edited))

    with RecordingUploader(app.base_url, token=app.token) as uploader:
        recording = uploader.upload(path, state_file=state_file)

    assert recording.id == other_state.recording_id
    stored = app.download(recording.id)
    assert hashlib.sha256(stored).digest() == hashlib.sha256(path.read_bytes()).digest()
