"""A stateful test: random operation sequences against the service and a simple model."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)

from helppet_recordings import (
    InMemoryRepository,
    InvalidStatusTransitionError,
    RecordingError,
    RecordingNotFoundError,
    RecordingService,
    RecordingSettings,
    RecordingStatus,
    S3Storage,
    UploadNotFoundError,
    UploadSizeMismatchError,
    UploadTimeoutError,
)
from helppet_recordings.status import can_transition
from helppet_recordings.testing.clock import FakeClock
from tests.support.moto_s3 import moto_bucket

USERS = [uuid.UUID(int=i + 1) for i in range(3)]
DEADLINE_SECONDS = 60 + 30


def _mp4(size: int) -> bytes:
    """``size`` bytes that begin like an MP4 file, as the signature check requires."""
    return (b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A " + b"a" * size)[:size]


@attrs.define
class Model:
    """What the service should believe about one recording."""

    owner: uuid.UUID
    key: str
    status: RecordingStatus = RecordingStatus.UPLOADING
    stored_size: int | None = None
    completed_size: int | None = None
    deleted: bool = False
    age: int = 0
    timed_out: bool = False  # failed while uploading, at or after its deadline


@pytest.fixture(scope="module")
def s3() -> Iterator[object]:
    """One in-process S3 for all examples; each example gets its own bucket."""
    with moto_bucket("unused") as client:
        yield client


def test_service_matches_the_model(s3: object) -> None:
    """Any sequence of user and system operations keeps the service and the model in step."""

    class ServiceMachine(RuleBasedStateMachine):
        recordings = Bundle("recordings")

        def __init__(self) -> None:
            super().__init__()
            bucket = f"b{uuid.uuid4().hex[:12]}"
            s3.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
            self.client = s3
            self.bucket = bucket
            self.clock = FakeClock()
            self.service = RecordingService(
                S3Storage(bucket, client=s3),  # type: ignore[arg-type]
                InMemoryRepository(),
                RecordingSettings(
                    s3_bucket_name=bucket,
                    max_file_size=1000,
                    s3_presigned_url_expiration=60,
                    upload_grace_seconds=30,
                ),
                clock=self.clock,
            )
            self.model: dict[uuid.UUID, Model] = {}

        @rule(target=recordings, user=st.sampled_from(USERS))
        def initiate(self, user: uuid.UUID) -> uuid.UUID:
            ticket = self.service.initiate_upload(
                user, {"filename": "a.m4a", "content_type": "audio/mp4"}
            )
            self.model[ticket.recording_id] = Model(owner=user, key=ticket.upload_fields["key"])
            return ticket.recording_id

        @rule(rid=recordings, size=st.integers(32, 1000))
        def upload(self, rid: uuid.UUID, size: int) -> None:
            m = self.model[rid]
            if m.stored_size is not None or m.age > DEADLINE_SECONDS:
                return  # a ticket lands once, and never after its deadline
            self.client.put_object(  # type: ignore[attr-defined]
                Bucket=self.bucket, Key=m.key, Body=_mp4(size), ContentType="audio/mp4"
            )
            m.stored_size = size

        @rule(
            rid=recordings,
            user=st.sampled_from(USERS),
            size=st.integers(1, 1000),
            honest=st.booleans(),
        )
        def complete(self, rid: uuid.UUID, user: uuid.UUID, size: int, honest: bool) -> None:
            m = self.model[rid]
            declared = m.stored_size if honest and m.stored_size is not None else size
            try:
                result = self.service.complete_upload(user, rid, {"file_size_bytes": declared})
            except RecordingNotFoundError:
                assert m.deleted or user != m.owner
            except UploadNotFoundError:
                assert m.status is RecordingStatus.UPLOADING and m.stored_size is None
                assert m.age <= DEADLINE_SECONDS
            except UploadTimeoutError:
                if m.status is RecordingStatus.UPLOADING:
                    assert m.stored_size is None and m.age > DEADLINE_SECONDS
                else:
                    assert m.timed_out  # a retry is answered as the first call was
                m.status = RecordingStatus.FAILED
                m.timed_out = True
            except UploadSizeMismatchError:
                expected = (
                    m.stored_size if m.status is RecordingStatus.UPLOADING else m.completed_size
                )
                assert declared != expected
                if m.status is RecordingStatus.UPLOADING and m.age > DEADLINE_SECONDS:
                    m.status = RecordingStatus.FAILED
                    m.timed_out = True
            except InvalidStatusTransitionError:
                assert m.status is RecordingStatus.FAILED and not m.timed_out
            else:
                assert not m.deleted and user == m.owner
                if m.status is RecordingStatus.UPLOADING:
                    assert declared == m.stored_size
                    m.status = RecordingStatus.UPLOADED
                    m.completed_size = declared
                assert result.status is m.status
                assert result.file_size_bytes == m.completed_size

        @rule(
            rid=recordings,
            target_status=st.sampled_from(
                [RecordingStatus.PROCESSING, RecordingStatus.TRANSCRIBED, RecordingStatus.FAILED]
            ),
        )
        def system(self, rid: uuid.UUID, target_status: RecordingStatus) -> None:
            m = self.model[rid]
            operations = {
                RecordingStatus.PROCESSING: lambda: self.service.start_processing(rid),
                RecordingStatus.TRANSCRIBED: lambda: self.service.record_transcript(rid, text="ok"),
                RecordingStatus.FAILED: lambda: self.service.mark_failed(
                    rid, error="worker gave up"
                ),
            }
            try:
                result = operations[target_status]()
            except RecordingNotFoundError:
                assert m.deleted
            except InvalidStatusTransitionError:
                assert not can_transition(m.status, target_status)
            else:
                assert not m.deleted and can_transition(m.status, target_status)
                if m.status is RecordingStatus.UPLOADING and m.age >= DEADLINE_SECONDS:
                    m.timed_out = True  # failed at or after its deadline: told as a timeout
                m.status = target_status
                assert result.status is target_status

        @rule(rid=consumes(recordings), user=st.sampled_from(USERS))
        def delete(self, rid: uuid.UUID, user: uuid.UUID) -> None:
            m = self.model[rid]
            try:
                self.service.delete_recording(user, rid)
            except RecordingNotFoundError:
                assert m.deleted or user != m.owner
            else:
                assert not m.deleted and user == m.owner
                m.deleted = True

        @rule(seconds=st.integers(1, 120))
        def wait(self, seconds: int) -> None:
            self.clock.advance(seconds=seconds)
            for m in self.model.values():
                m.age += seconds

        @rule()
        def sweep(self) -> None:
            expected = 0
            for m in self.model.values():
                if (
                    m.deleted
                    or m.status is not RecordingStatus.UPLOADING
                    or m.age <= DEADLINE_SECONDS
                ):
                    continue
                if m.stored_size is None:
                    m.status = RecordingStatus.FAILED
                    m.timed_out = True
                    expected += 1
                else:
                    m.status = RecordingStatus.UPLOADED
                    m.completed_size = m.stored_size
            assert self.service.expire_stale_uploads() == expected

        @invariant()
        def listings_match(self) -> None:
            for user in USERS:
                listing = self.service.list_recordings(user, limit=200)
                live = {
                    rid: m for rid, m in self.model.items() if m.owner == user and not m.deleted
                }
                assert listing.total == len(live)
                for item in listing.items:
                    m = live[item.id]
                    assert item.status is m.status
                    assert item.file_size_bytes == m.completed_size

        def teardown(self) -> None:
            for rid, m in self.model.items():
                try:
                    self.service.get_recording(m.owner, rid)
                except RecordingError:
                    assert m.deleted

    run_state_machine_as_test(
        ServiceMachine,
        settings=settings(
            max_examples=150,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
