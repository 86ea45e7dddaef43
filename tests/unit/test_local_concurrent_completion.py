"""Two completions of one staged POST upload at once, on LocalStorage: both succeed.

Completion is idempotent. A POST upload without a declared SHA-256 lands on
a staging key, and completion promotes it to ``s3_key``; a second completion
racing the first looks at the staging key, then at ``s3_key``, and must find
the object at one of them. Had it found neither, it would answer
``UPLOAD_NOT_FOUND`` (and report ``upload.rejected``), or, past the upload's
deadline, fail the recording while its verified file sits at ``s3_key``.
"""

from __future__ import annotations

import threading
import urllib.parse
import uuid
from pathlib import Path

import attrs
import pytest

from helppet_recordings import (
    InMemoryRepository,
    LocalStorage,
    RecordingError,
    RecordingService,
    RecordingSettings,
    RecordingStatus,
)
from helppet_recordings.events import UPLOAD_COMPLETED, UPLOAD_REJECTED, RecordingEvent
from helppet_recordings.schemas import RecordingResponse
from helppet_recordings.storage.local import LocalPartReceiver, LocalUploadReceiver
from helppet_recordings.testing.clock import FakeClock
from tests.support.local_forms import SECRET, encode_form
from tests.support.replay import ORIGINAL

ROUNDS = 10
"""Races per test: before the fix, most rounds of two completions met the window."""


@attrs.define
class Scene:
    """A service over LocalStorage (flushing to disk, as deployed) and what it reported."""

    service: RecordingService
    storage: LocalStorage
    clock: FakeClock
    events: list[RecordingEvent]
    user: uuid.UUID = attrs.Factory(uuid.uuid4)

    def uploaded(self) -> uuid.UUID:
        """Initiate a WAV upload and POST it to its ticket (a staging key); return its id."""
        ticket = self.service.initiate_upload(
            self.user, {"filename": "visit.wav", "content_type": "audio/wav"}
        )
        assert ticket.upload_fields["key"] != ticket.s3_key
        content_type, encoded = encode_form(ticket.upload_fields.items(), ORIGINAL)
        answer = LocalUploadReceiver(self.storage).receive(content_type, [encoded])
        assert answer.status == 204, answer.body
        return ticket.recording_id

    def uploaded_in_parts(self) -> uuid.UUID:
        """Initiate a multipart WAV upload and PUT its one part; return its id."""
        answer = self.service.initiate_multipart_upload(
            self.user,
            {
                "filename": "visit.wav",
                "content_type": "audio/wav",
                "file_size_bytes": len(ORIGINAL),
            },
        )
        (part,) = answer.parts
        url = urllib.parse.urlsplit(part.url)
        query = dict(urllib.parse.parse_qsl(url.query))
        key = urllib.parse.unquote(url.path.split("/part/", 1)[1])
        sent = LocalPartReceiver(self.storage).receive(key, query, str(part.size), [ORIGINAL])
        assert sent.status == 200, sent.body
        return answer.recording_id

    def complete_twice_at_once(self, rid: uuid.UUID) -> list[RecordingResponse | RecordingError]:
        """Two threads complete ``rid`` together; return both answers."""
        start = threading.Barrier(2)
        answers: list[RecordingResponse | RecordingError] = []

        def complete() -> None:
            start.wait(timeout=10)
            try:
                answer = self.service.complete_upload(
                    self.user, rid, {"file_size_bytes": len(ORIGINAL)}
                )
            except RecordingError as exc:
                answers.append(exc)
            else:
                answers.append(answer)

        threads = [threading.Thread(target=complete) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        return answers

    def reported(self, rid: uuid.UUID, name: str) -> int:
        """How many events called ``name`` were reported for ``rid``."""
        return sum(1 for event in self.events if event.name == name and event.recording_id == rid)


@pytest.fixture
def scene(tmp_path: Path) -> Scene:
    """A fresh service on LocalStorage and the in-memory repository."""
    clock = FakeClock()
    events: list[RecordingEvent] = []
    storage = LocalStorage(tmp_path / "store", "http://127.0.0.1:9", SECRET)
    service = RecordingService(
        storage,
        InMemoryRepository(),
        RecordingSettings(max_file_size=1_000_000),
        clock=clock,
        on_event=events.append,
    )
    return Scene(service, storage, clock, events)


@pytest.mark.parametrize("late", [False, True], ids=["in_time", "after_the_deadline"])
@pytest.mark.parametrize("kind", ["post", "multipart"])
def test_two_completions_at_once_both_succeed(scene: Scene, kind: str, *, late: bool) -> None:
    """Both answer ``uploaded``; one ``upload.completed``, no ``upload.rejected``, each round."""
    for _ in range(ROUNDS):
        rid = scene.uploaded() if kind == "post" else scene.uploaded_in_parts()
        if late:
            scene.clock.advance(hours=2)  # past the upload's deadline: nothing must fail it
        answers = scene.complete_twice_at_once(rid)

        assert [getattr(answer, "error_code", None) for answer in answers] == [None, None]
        assert all(
            isinstance(answer, RecordingResponse) and answer.status is RecordingStatus.UPLOADED
            for answer in answers
        )
        assert scene.service.get_recording(scene.user, rid).status is RecordingStatus.UPLOADED
        assert (scene.reported(rid, UPLOAD_COMPLETED), scene.reported(rid, UPLOAD_REJECTED)) == (
            1,
            0,
        )
