"""The recording entity: everything known about one recording, and its own rules.

Transition methods return a changed copy after checking the move against the
transition table (``status.TRANSITIONS``); they never touch storage or the
repository. The service loads, transitions, saves with a compare-and-set and
publishes the change (``service/changes.py``). The transitions of processing
(a worker's claim, retries, reprocessing, audio facts, the transcript) are in
``recording_processing.py``, a mixin of :class:`Recording`.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from typing import Any, Final

import attrs

from helppet_recordings.errors import InvalidStatusTransitionError
from helppet_recordings.recording_processing import ProcessingTransitions
from helppet_recordings.status import RecordingStatus, RecordingType, check_transition

__all__ = ["AudioFacts", "Recording"]


def _redacted(value: object) -> str:
    """Show personal content in a repr by its size only, as ``Transcript`` shows its text."""
    if value is None:
        return "None"
    if isinstance(value, str):
        return f"<{len(value)} characters>"
    if isinstance(value, dict):
        return f"<{len(value)} keys>"
    return "<redacted>"


@attrs.frozen(kw_only=True)
class AudioFacts:
    """What decoding a stored file measured: container, codec, duration, rate, channels."""

    format: str
    codec: str
    duration_seconds: float
    sample_rate: int
    channels: int


@attrs.define(kw_only=True, slots=False)
class Recording(ProcessingTransitions):
    """One audio recording and everything known about it.

    The fields mirror the design's ``recordings`` table, plus:

    - ``upload_expires_at``: the deadline after which an upload that never
      arrived is declared failed (a sweeper's claim moves it to the end of its
      lease; an expired upload keeps at most the moment it failed);
    - ``idempotency_key``: the client's key that makes a retried initiate
      return this recording instead of creating another;
    - ``content_md5`` / ``content_sha256``: checksums the client declared
      (lower-case hex), checked against what storage reports;
    - ``purged_at``: when a soft-deleted recording's audio was removed and its
      personal fields scrubbed;
    - ``upload_key``: the key upload tickets name. A staging key (completion
      moves the verified object from there to ``s3_key``, which no such ticket
      names), or ``s3_key`` itself when every ticket pins the declared
      ``content_sha256`` (storage refuses other bytes, so a ticket can only
      ever write the same audio there; see ``ChecksumPinning``); None for rows
      from before staging keys;
    - ``verified_at`` / ``verified_etag``: when storage confirmed the audio, and
      the ETag it reported for the object at ``s3_key`` then;
    - ``checksum_status``: ``verified`` when storage confirmed a checksum the
      client declared, ``unverified`` when it could not, None when none was declared;
    - ``audio_*``: what decoding the stored file measured (format, codec,
      duration, sample rate, channels), apart from the client's ``duration_seconds``;
    - ``processing_attempts`` / ``lease_expires_at``: how many times a worker
      took it, and until when the current claim (or a retry's wait) holds;
    - ``processing_cycle``: which round of processing this is (1, then one
      more for each ``reprocess``). Retries and takeovers within a round keep
      it, so work started for the round (a paid transcription job) is found
      again rather than started twice;
    - ``multipart_*``: for a resumable upload, storage's upload id (None once
      the parts are assembled or the upload aborted), the part size and the
      size the client declared.

    The entity carries its own rules: each transition method returns a changed
    copy after checking the move against the transition table, and never
    touches storage or the repository. The service loads, transitions, saves
    with a compare-and-set and publishes the change (``service/changes.py``).

    The class keeps a ``__dict__`` (no slots) so that :meth:`copy` is cheap.
    Its repr shows ``original_filename``, ``transcript_text``,
    ``recording_metadata`` and ``processing_error`` by their size only
    (``<12 characters>``): they hold personal content, which must stay out of
    logs and tracebacks. Equality compares them as usual.
    """

    id: uuid.UUID
    recorded_by_user_id: uuid.UUID
    appointment_id: uuid.UUID | None = None
    visit_id: uuid.UUID | None = None
    recording_type: RecordingType = RecordingType.VISIT_AUDIO
    status: RecordingStatus = RecordingStatus.UPLOADING
    filename: str
    original_filename: str | None = attrs.field(default=None, repr=_redacted)
    file_size_bytes: int | None = None
    duration_seconds: float | None = None
    mime_type: str | None = None
    s3_bucket: str
    s3_key: str
    s3_url: str | None = None
    transcript_text: str | None = attrs.field(default=None, repr=_redacted)
    transcript_confidence: float | None = None
    transcript_language: str | None = None
    transcription_service: str | None = None
    processing_started_at: dt.datetime | None = None
    processing_completed_at: dt.datetime | None = None
    processing_error: str | None = attrs.field(default=None, repr=_redacted)
    recording_metadata: dict[str, Any] | None = attrs.field(default=None, repr=_redacted)
    is_deleted: bool = False
    deleted_at: dt.datetime | None = None
    deleted_by_user_id: uuid.UUID | None = None
    upload_expires_at: dt.datetime | None = None
    idempotency_key: str | None = None
    content_md5: str | None = None
    content_sha256: str | None = None
    purged_at: dt.datetime | None = None
    upload_key: str | None = None
    verified_at: dt.datetime | None = None
    verified_etag: str | None = None
    checksum_status: str | None = None
    audio_format: str | None = None
    audio_codec: str | None = None
    audio_duration_seconds: float | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    processing_attempts: int = 0
    processing_cycle: int = 1
    lease_expires_at: dt.datetime | None = None
    multipart_upload_id: str | None = None
    multipart_part_size: int | None = None
    multipart_size_bytes: int | None = None
    created_at: dt.datetime
    updated_at: dt.datetime

    def copy(self, **changes: Any) -> Recording:
        """Return a copy with ``changes`` applied (the metadata dict is copied too)."""
        if changes and not _RECORDING_FIELDS.issuperset(changes):
            unknown = sorted(set(changes) - _RECORDING_FIELDS)
            msg = f"Recording has no field(s) {unknown}"
            raise TypeError(msg)
        # A plain __dict__ copy: repositories copy on every read and write, and
        # attrs.evolve costs several times more on that hot path.
        clone = object.__new__(Recording)
        values = clone.__dict__
        values.update(self.__dict__)
        if changes:
            values.update(changes)
        metadata = values["recording_metadata"]
        if metadata is not None and "recording_metadata" not in changes:
            values["recording_metadata"] = copy.deepcopy(metadata)
        return clone

    def is_owned_by(self, user_id: uuid.UUID) -> bool:
        """Return whether ``user_id`` recorded this recording."""
        return self.recorded_by_user_id == user_id

    @property
    def audio(self) -> AudioFacts | None:
        """What decoding measured, or None until the audio was inspected."""
        if (
            self.audio_format is None
            or self.audio_codec is None
            or self.audio_duration_seconds is None
            or self.audio_sample_rate is None
            or self.audio_channels is None
        ):
            return None
        return AudioFacts(
            format=self.audio_format,
            codec=self.audio_codec,
            duration_seconds=self.audio_duration_seconds,
            sample_rate=self.audio_sample_rate,
            channels=self.audio_channels,
        )

    @property
    def uploads_in_place(self) -> bool:
        """Whether its tickets name ``s3_key`` itself, each pinning ``content_sha256``."""
        return self.upload_key is not None and self.upload_key == self.s3_key

    @property
    def staging_key(self) -> str | None:
        """The staging key its tickets name, if they name one (not ``s3_key``)."""
        return None if self.upload_key == self.s3_key else self.upload_key

    @property
    def has_verified_audio(self) -> bool:
        """Whether its object arrived and passed verification, so it can be read.

        Completion (or the sweeper) records when: ``verified_at``. A ``failed``
        recording whose upload never arrived has none.
        """
        return self.verified_at is not None

    @property
    def upload_timed_out(self) -> bool:
        """Whether it is ``failed`` because its upload deadline passed without verified audio.

        Told from the stored state: ``failed``, never verified, and failed at
        or after its deadline (:meth:`expire_upload` keeps the deadline at
        most the moment of failure). A recording ``mark_failed`` while
        ``uploading`` after its deadline looks the same, and is taken as
        timed out too: its deadline did pass without a completed upload.
        """
        deadline = self.upload_expires_at
        return (
            self.status is RecordingStatus.FAILED
            and self.verified_at is None
            and deadline is not None
            and deadline <= self.updated_at
        )

    # ----------------------------------------------------------------------- transitions

    def _moved(self, target: RecordingStatus, now: dt.datetime, **changes: Any) -> Recording:
        check_transition(self.status, target)
        return self.copy(status=target, updated_at=now, **changes)

    def mark_uploaded(
        self,
        now: dt.datetime,
        *,
        size: int,
        md5: str | None = None,
        sha256: str | None = None,
        etag: str | None = None,
        checksum_status: str | None = None,
        duration_seconds: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Recording:
        """Move ``uploading`` -> ``uploaded``: storage confirmed an object of ``size`` bytes.

        Checksums, duration and metadata replace the recorded ones when given.
        """
        # lease_expires_at: from now on a transcription worker may claim it
        # multipart_upload_id: the parts are assembled, storage forgot the upload id
        changes: dict[str, Any] = {"file_size_bytes": size, "verified_at": now}
        changes["multipart_upload_id"] = None
        changes.update(lease_expires_at=now, verified_etag=etag, checksum_status=checksum_status)
        if md5 is not None:
            changes["content_md5"] = md5
        if sha256 is not None:
            changes["content_sha256"] = sha256
        if duration_seconds is not None:
            changes["duration_seconds"] = duration_seconds
        if metadata is not None:
            changes["recording_metadata"] = metadata
        return self._moved(RecordingStatus.UPLOADED, now, **changes)

    def fail(self, now: dt.datetime, *, reason: str) -> Recording:
        """Move any status that is not final to ``failed``, keeping ``reason``."""
        completed = (
            now if self.status is RecordingStatus.PROCESSING else self.processing_completed_at
        )
        return self._moved(
            RecordingStatus.FAILED,
            now,
            processing_error=reason,
            processing_completed_at=completed,
            lease_expires_at=None,
        )

    def expire_upload(self, now: dt.datetime, *, reason: str) -> Recording:
        """Move ``uploading`` -> ``failed``: the upload deadline passed (see ``upload_timed_out``).

        The deadline becomes at most ``now``: a sweeper's claim had moved it to
        the end of its lease, which is no deadline the upload ever had.
        """
        if self.status is not RecordingStatus.UPLOADING:
            raise InvalidStatusTransitionError(
                f"A recording that is {self.status.value} has no upload to expire",
                recording_id=str(self.id),
                current_status=self.status.value,
                requested_status=RecordingStatus.FAILED.value,
            )
        failed = self.fail(now, reason=reason)
        deadline = self.upload_expires_at
        if deadline is None or deadline > now:
            return failed.copy(upload_expires_at=now)
        return failed

    def renew(self, now: dt.datetime, *, upload_expires_at: dt.datetime) -> Recording:
        """Push the upload deadline of an ``uploading`` recording (a new ticket was issued).

        A sweeper's claim on it ends: the upload is no longer stale.
        """
        if self.status is not RecordingStatus.UPLOADING:
            raise InvalidStatusTransitionError(
                f"A recording that is {self.status.value} takes no new upload",
                recording_id=str(self.id),
                current_status=self.status.value,
            )
        return self.copy(upload_expires_at=upload_expires_at, lease_expires_at=None, updated_at=now)

    def soft_delete(self, now: dt.datetime, *, by: uuid.UUID) -> Recording:
        """Hide it from its owner; the audio stays until purged."""
        return self.copy(is_deleted=True, deleted_at=now, deleted_by_user_id=by, updated_at=now)

    def scrubbed(self, now: dt.datetime) -> Recording:
        """Return the purged form of a soft-deleted recording: personal content removed.

        Ids, keys and timestamps stay for the audit trail.
        """
        return self.copy(
            original_filename=None,
            transcript_text=None,
            recording_metadata=None,
            processing_error=None,
            s3_url=None,
            purged_at=now,
            updated_at=now,
        )


_RECORDING_FIELDS: Final = frozenset(field.name for field in attrs.fields(Recording))
