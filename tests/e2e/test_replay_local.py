"""Replayed upload tickets and non-audio uploads on LocalStorage, over real HTTP.

uvicorn serves LocalStorage's receiver (the bare ASGI adapter) on 127.0.0.1;
the test is the phone, POSTing multipart forms with the ticket's fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helppet_recordings import InMemoryRepository, RecordingService, RecordingSettings
from helppet_recordings.storage.local import LocalStorage
from tests.support.asgi_server import ServerThread
from tests.support.local_asgi import LocalStorageApp
from tests.support.replay import (
    ORIGINAL,
    STATUSES,
    assert_html_is_refused,
    assert_pinned_replay_is_harmless,
    assert_pinned_replays_during_completion_are_harmless,
    assert_replay_is_harmless,
)

pytestmark = pytest.mark.e2e

SECRET = "replay-local-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def http_app() -> Iterator[tuple[LocalStorageApp, str]]:
    """LocalStorage's upload and download routes, served by uvicorn on 127.0.0.1."""
    app = LocalStorageApp()
    try:
        server = ServerThread(app).start()
    except RuntimeError as exc:
        pytest.fail(f"uvicorn could not start: {exc}", pytrace=False)
    try:
        yield app, server.base_url
    finally:
        server.stop()


@pytest.fixture
def service(tmp_path: Path, http_app: tuple[LocalStorageApp, str]) -> Iterator[RecordingService]:
    """A service over a fresh LocalStorage directory that the module's server serves."""
    app, base_url = http_app
    app.storage = LocalStorage(tmp_path / "store", base_url, SECRET)
    yield RecordingService(
        storage=app.storage, repository=InMemoryRepository(), settings=RecordingSettings()
    )
    app.storage = None


@pytest.mark.parametrize("status", STATUSES)
def test_replayed_ticket_never_changes_verified_audio(
    service: RecordingService, status: str
) -> None:
    """A ticket replayed after completion leaves the verified bytes, and reconcile cleans up."""
    after_replays = assert_replay_is_harmless(service, status)
    expected = b"" if status == "purged" else ORIGINAL
    assert after_replays == [expected, expected]


@pytest.mark.parametrize("status", STATUSES)
def test_a_pinned_ticket_replayed_never_changes_verified_audio(
    service: RecordingService, status: str
) -> None:
    """A ticket naming the final key takes only the pinned bytes, which change nothing."""
    expected = b"" if status == "purged" else ORIGINAL
    assert assert_pinned_replay_is_harmless(service, status) == expected


def test_pinned_replays_during_completion_change_nothing(service: RecordingService) -> None:
    """Four threads replay the pinned ticket while completion verifies: the audio holds."""
    assert_pinned_replays_during_completion_are_harmless(service)


def test_html_page_on_an_audio_ticket_is_refused(service: RecordingService) -> None:
    """An HTML page sent as audio/wav fails completion (html_document); it stays uploading."""
    assert_html_is_refused(service)
