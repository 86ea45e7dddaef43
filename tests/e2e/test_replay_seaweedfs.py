"""Replayed upload tickets and non-audio uploads on S3Storage against SeaweedFS.

Uploads are real multipart POSTs to SeaweedFS with the ticket's POST policy;
SeaweedFS enforces the policy as S3 does, and accepts a replay of a ticket
that has not expired. The suite's one SeaweedFS server is shared; each test
gets its own bucket.
"""

from __future__ import annotations

import pytest

from helppet_recordings import (
    InMemoryRepository,
    RecordingService,
    RecordingSettings,
    S3Storage,
)
from tests.support.replay import (
    ORIGINAL,
    STATUSES,
    assert_html_is_refused,
    assert_pinned_replay_is_harmless,
    assert_pinned_replays_during_completion_are_harmless,
    assert_replay_is_harmless,
)
from tests.support.seaweedfs import SeaweedEndpoint, make_client

pytestmark = pytest.mark.e2e


@pytest.fixture
def service(seaweed: SeaweedEndpoint, seaweed_bucket: str) -> RecordingService:
    """A service over S3Storage on a fresh SeaweedFS bucket."""
    storage = S3Storage(seaweed_bucket, client=make_client(seaweed))
    return RecordingService(
        storage=storage, repository=InMemoryRepository(), settings=RecordingSettings()
    )


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
