"""Every storage and database call of every operation fails once: nothing half-done remains.

For each service operation, each backend method it calls is made to raise the
translated outage error (``STORAGE_UNAVAILABLE`` / ``DATABASE_UNAVAILABLE``).
The operation must raise that retryable error and leave every recording and
every stored object exactly as it was.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from helppet_recordings import (
    InMemoryRepository,
    RecordingError,
    RecordingService,
    RecordingSettings,
    RecordingStatus,
    S3Storage,
    UnavailableError,
)
from helppet_recordings.testing.clock import FakeClock
from tests.support.faults import FaultyRepository, FaultyStorage
from tests.support.moto_s3 import BUCKET, moto_bucket
from tests.support.uploads import upload_key

USER = uuid.UUID("5f0c6c1e-0a7e-4b8e-9d5e-0c2b7b7f1a01")
BODY = b"\x00\x00\x00\x18ftypM4A " + b"audio" * 100

STORAGE_METHODS = (
    "create_upload",
    "create_download_url",
    "object_url",
    "head",
    "read_range",
    "promote",
    "delete",
    "iter_objects",
)
REPOSITORY_METHODS = (
    "add",
    "get",
    "save",
    "find",
    "find_page",
    "claim_stale_uploads",
    "claim_work",
    "find_by_upload_key",
    "find_by_idempotency_key",
    "list_by_key",
    "list_purgeable",
    "mark_purged",
)


@attrs.define
class World:
    """A service over wrapped backends, with recordings in every interesting state."""

    service: RecordingService
    storage: FaultyStorage
    repository: FaultyRepository
    clock: FakeClock
    ids: dict[str, uuid.UUID]

    def snapshot(self) -> tuple[list[Any], list[Any]]:
        """Every recording and every object, as the backends hold them."""
        self.repository.failing, self.storage.failing = set(), set()
        rows = self.repository.list_by_key(prefix="", after=None, limit=10_000)
        objects = [(o.key, o.size, o.etag) for o in self.storage.iter_objects("")]
        return rows, objects


def build_world(client: Any) -> World:
    """Recordings uploading, uploaded, processing, stale and deleted-long-ago."""
    clock = FakeClock()
    storage = FaultyStorage(S3Storage(BUCKET, client=client))
    repository = FaultyRepository(InMemoryRepository())
    settings = RecordingSettings(max_file_size=10_000, s3_presigned_url_expiration=60)
    service = RecordingService(storage, repository, settings, clock=clock)

    def uploaded(**extra: Any) -> uuid.UUID:
        ticket = service.initiate_upload(
            USER, {"filename": "a.m4a", "content_type": "audio/mp4", **extra}
        )
        client.put_object(Bucket=BUCKET, Key=upload_key(ticket), Body=BODY, ContentType="audio/mp4")
        service.complete_upload(USER, ticket.recording_id, {"file_size_bytes": len(BODY)})
        return ticket.recording_id

    ids = {"gone": uploaded()}
    service.delete_recording(USER, ids["gone"])
    clock.advance(days=40)
    ids["stale"] = service.initiate_upload(
        USER, {"filename": "a.m4a", "content_type": "audio/mp4"}
    ).recording_id
    clock.advance(hours=2)
    ids["uploading"] = service.initiate_upload(
        USER, {"filename": "a.m4a", "content_type": "audio/mp4", "idempotency_key": "k"}
    ).recording_id
    ids["arrived"] = service.initiate_upload(
        USER, {"filename": "b.m4a", "content_type": "audio/mp4"}
    ).recording_id
    arrived = repository.get(ids["arrived"])
    client.put_object(Bucket=BUCKET, Key=upload_key(arrived), Body=BODY, ContentType="audio/mp4")
    ids["uploaded"] = uploaded()
    ids["processing"] = uploaded()
    service.start_processing(ids["processing"])
    client.put_object(
        Bucket=BUCKET,
        Key=f"recordings/{USER}/unassigned/20200101_000000_0123456789abcdef.m4a",
        Body=b"orphan",
    )
    return World(service, storage, repository, clock, ids)


Operation = Callable[[World], object]

OPERATIONS: dict[str, Operation] = {
    "initiate_upload": lambda w: w.service.initiate_upload(
        USER, {"filename": "n.m4a", "content_type": "audio/mp4"}
    ),
    "initiate_upload (retry)": lambda w: w.service.initiate_upload(
        USER, {"filename": "a.m4a", "content_type": "audio/mp4", "idempotency_key": "k"}
    ),
    "renew_upload": lambda w: w.service.renew_upload(USER, w.ids["uploading"]),
    "complete_upload": lambda w: w.service.complete_upload(
        USER, w.ids["arrived"], {"file_size_bytes": len(BODY)}
    ),
    "complete_upload (late)": lambda w: w.service.complete_upload(
        USER, w.ids["stale"], {"file_size_bytes": len(BODY)}
    ),
    "list_recordings": lambda w: w.service.list_recordings(USER),
    "get_recording": lambda w: w.service.get_recording(USER, w.ids["uploaded"]),
    "get_download_url": lambda w: w.service.get_download_url(USER, w.ids["uploaded"]),
    "delete_recording": lambda w: w.service.delete_recording(USER, w.ids["uploaded"]),
    "start_processing": lambda w: w.service.start_processing(w.ids["uploaded"]),
    "record_transcript": lambda w: w.service.record_transcript(w.ids["processing"], text="ok"),
    "mark_failed": lambda w: w.service.mark_failed(w.ids["uploading"], error="gave up"),
    "expire_stale_uploads": lambda w: w.service.expire_stale_uploads(),
    "reconcile": lambda w: w.service.reconcile(
        delete_orphans=True, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    ),
    "purge_deleted": lambda w: w.service.purge_deleted(),
}

FAULTS = [("storage", m) for m in STORAGE_METHODS] + [("repository", m) for m in REPOSITORY_METHODS]


def _without_leases(rows: list[Any]) -> list[Any]:
    """Rows with the sweeper's claim (a pushed deadline, and the lease of an upload) set aside."""
    return [
        attrs.evolve(
            row,
            upload_expires_at=None,
            lease_expires_at=(
                None if row.status is RecordingStatus.UPLOADING else row.lease_expires_at
            ),
        )
        for row in rows
    ]


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_a_failing_backend_call_changes_nothing(operation: str) -> None:
    """Each backend call the operation makes, failed in turn: a retryable error, no change."""
    injected = 0
    with moto_bucket() as client:
        for backend, method in FAULTS:
            world = build_world(client)
            before = world.snapshot()
            target = world.storage if backend == "storage" else world.repository
            target.failing = {method}
            target.calls.clear()
            try:
                OPERATIONS[operation](world)
            except UnavailableError as exc:
                assert exc.details["retry_after"] > 0  # noqa: PT017 - the loop needs the error
                injected += 1
            except RecordingError:
                # the operation's ordinary answer (e.g. UPLOAD_TIMEOUT): the fault was not hit
                assert target.calls[method] == 0, f"{method} failed and became another error"
                continue
            else:
                assert target.calls[method] == 0, f"{method} was called but its failure was lost"
                continue
            after = world.snapshot()
            if operation == "expire_stale_uploads":
                assert (_without_leases(after[0]), after[1]) == (
                    _without_leases(before[0]),
                    before[1],
                )
            elif (operation, method) == ("complete_upload", "save"):
                # The audio moves to its final key first, then the row: a completion cut
                # short between the two leaves the row as it was, and completing again
                # finishes it from the final key (which no ticket names).
                assert after[0] == before[0]
                done = world.service.complete_upload(
                    USER, world.ids["arrived"], {"file_size_bytes": len(BODY)}
                )
                assert done.status.value == "uploaded"
            elif (operation, method) == ("purge_deleted", "mark_purged"):
                # The audio goes first, then the row: a purge cut short between the two
                # leaves the recording purgeable, and the next run finishes it.
                assert after[0] == before[0]
                assert world.service.purge_deleted() == 1
            else:
                assert after == before, f"{operation} changed state when {backend}.{method} failed"
            for row in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
                client.delete_object(Bucket=BUCKET, Key=row["Key"])
    assert injected > 0
