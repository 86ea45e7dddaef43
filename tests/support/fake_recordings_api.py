"""A hand-written twin of the recordings API and its storage, for ``httpx.MockTransport``.

It speaks the routes of contract sections 5 and 7 with their JSON shapes;
multipart parts go to a real :class:`InMemoryStorage` (signed part URLs that
expire, exact sizes, assembly from what it holds), form uploads to a small
store that enforces the ticket's expiry. Tests script faults in front of any
route (``script``) and read what arrived (``requests``, ``part_bytes``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from typing import Any

import attrs
import httpx

from helppet_recordings.errors import StorageError
from helppet_recordings.multipart import plan_parts
from helppet_recordings.schemas import (
    CompleteUploadRequest,
    InitiateMultipartUploadRequest,
    InitiateUploadRequest,
    SignUploadPartsRequest,
)
from helppet_recordings.storage.memory import InMemoryStorage

API = "http://api.test"
PREFIX = "/api/v1/recordings"
FORMS = "http://forms.test"
TOKEN = "good-token"
EXPIRES_IN = 3600

Reply = Callable[[httpx.Request], httpx.Response | None]


@attrs.define
class FakeRecording:
    id: uuid.UUID
    key: str
    content_type: str
    idempotency_key: str | None
    kind: str
    content_sha256: str | None = None
    upload_id: str | None = None
    size: int | None = None
    part_size: int | None = None
    stored: bytes | None = None
    status: str = "uploading"
    expires: float = 0.0
    completed: dict[str, Any] | None = None


def error(status: int, code: str, message: str = "refused", **details: Any) -> httpx.Response:
    """An ``ErrorResponse`` answer."""
    body = {"message": message, "error_code": code, "details": details}
    return httpx.Response(status, json=body)


def s3_error(status: int, code: str, message: str) -> httpx.Response:
    """An S3-style XML error answer."""
    body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return httpx.Response(status, text=body, headers={"Content-Type": "application/xml"})


class FakeRecordingsApi:
    """The API and storage behind one ``httpx.MockTransport``."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.storage = InMemoryStorage(clock=lambda: self.now)
        self.recordings: dict[uuid.UUID, FakeRecording] = {}
        self.requests: Counter[str] = Counter()
        self.part_bytes: Counter[int] = Counter()
        self.form_bytes = 0
        self.listed_etag: Callable[[int, str], str | None] = lambda _number, etag: etag
        """What the parts route lists as a held part's ETag (storage's, by default)."""
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._lock = threading.Lock()

    @property
    def transport(self) -> httpx.MockTransport:
        """The transport to give the uploader."""
        return httpx.MockTransport(self.handle)

    def script(self, route: str, *replies: Reply) -> None:
        """Answer the next requests to ``route`` (as in ``requests``) with ``replies`` first.

        A reply returning None lets the request through to the real handler.
        """
        self._scripts[route].extend(replies)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request."""
        route = self._route(request)
        with self._lock:
            self.requests[route] += 1
            scripted = self._scripts[route].popleft() if self._scripts[route] else None
        if scripted is not None:
            answer = scripted(request)
            if answer is not None:
                return answer
        with self._lock:
            return self._answer(route, request)

    @staticmethod
    def _route(request: httpx.Request) -> str:
        """``PUT part``, ``POST form``, or the API route (``POST api.test/upload/renew/{id}``)."""
        if request.url.host == "in-memory.invalid":
            return "PUT part"
        if request.url.host == "forms.test":
            return "POST form"
        path = re.sub(r"[0-9a-f-]{36}", "{id}", request.url.path.removeprefix(PREFIX))
        return f"{request.method} {request.url.host}{path}"

    def _answer(self, route: str, request: httpx.Request) -> httpx.Response:
        if request.url.host == "in-memory.invalid":
            return self._receive_part(request)
        if request.url.host == "forms.test":
            return self._receive_form(request)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return error(401, "UNAUTHORIZED", "A valid bearer token is required")
        rid = next(iter(re.findall(r"[0-9a-f-]{36}", request.url.path)), None)
        body = request.read() or b"{}"
        recording = None if rid is None else self.recordings.get(uuid.UUID(rid))
        if rid is not None and recording is None:
            return error(404, "RECORDING_NOT_FOUND")
        handlers: dict[str, Callable[[], httpx.Response]] = {
            "POST api.test/upload/initiate": lambda: self._initiate(body),
            "POST api.test/upload/multipart/initiate": lambda: self._initiate_multipart(body),
            "POST api.test/upload/renew/{id}": lambda: self._renew(_known(recording)),
            "POST api.test/upload/multipart/{id}/parts": lambda: self._parts(
                _known(recording), body
            ),
            "POST api.test/upload/complete/{id}": lambda: self._complete(_known(recording), body),
        }
        return handlers[route]()

    # ------------------------------------------------------------------ the API

    def _existing(self, key: str | None) -> FakeRecording | None:
        return next((r for r in self.recordings.values() if key and r.idempotency_key == key), None)

    def _initiate(self, body: bytes) -> httpx.Response:
        req = InitiateUploadRequest.model_validate_json(body)
        recording = self._existing(req.idempotency_key)
        if recording is None:
            rid = uuid.uuid4()
            recording = FakeRecording(
                rid, f"staging/{rid}", req.content_type, req.idempotency_key, "post"
            )
            self.recordings[rid] = recording
        elif recording.status != "uploading":
            return error(409, "INVALID_STATUS_TRANSITION")
        recording.content_sha256 = req.content_sha256
        return self._ticket(recording)

    def _ticket(self, recording: FakeRecording) -> httpx.Response:
        recording.expires = self.now + EXPIRES_IN
        fields = {"key": recording.key, "Content-Type": recording.content_type}
        return httpx.Response(
            200,
            json={
                "recording_id": str(recording.id),
                "upload_url": f"{FORMS}/upload/{recording.id}",
                "upload_fields": fields,
                "s3_key": f"recordings/{recording.id}",
                "bucket": "fake",
                "expires_in": EXPIRES_IN,
                "max_file_size": 10**9,
            },
        )

    def _renew(self, recording: FakeRecording) -> httpx.Response:
        if recording.kind != "post":
            return error(409, "WRONG_UPLOAD_KIND")
        if recording.status != "uploading":
            return error(409, "INVALID_STATUS_TRANSITION")
        return self._ticket(recording)

    def _initiate_multipart(self, body: bytes) -> httpx.Response:
        req = InitiateMultipartUploadRequest.model_validate_json(body)
        recording = self._existing(req.idempotency_key)
        if recording is None:
            rid = uuid.uuid4()
            plan = plan_parts(req.file_size_bytes)
            recording = FakeRecording(
                rid, f"staging/{rid}", req.content_type, req.idempotency_key, "multipart"
            )
            recording.size, recording.part_size = req.file_size_bytes, plan.part_size
            recording.upload_id = self.storage.create_multipart_upload(
                key=recording.key, content_type=req.content_type
            )
            self.recordings[rid] = recording
        return self._plan(recording, None)

    def _parts(self, recording: FakeRecording, body: bytes) -> httpx.Response:
        if recording.kind != "multipart":
            return error(409, "WRONG_UPLOAD_KIND")
        if recording.status != "uploading":
            return error(409, "INVALID_STATUS_TRANSITION")
        return self._plan(recording, SignUploadPartsRequest.model_validate_json(body).part_numbers)

    def _plan(self, recording: FakeRecording, wanted: list[int] | None) -> httpx.Response:
        assert recording.size is not None
        assert recording.upload_id is not None
        plan = plan_parts(recording.size)
        held = self.storage.list_parts(key=recording.key, upload_id=recording.upload_id)
        held_numbers = {part.part_number for part in held}
        urls = [
            {
                "part_number": part.part_number,
                "url": self.storage.sign_upload_part(
                    key=recording.key,
                    upload_id=recording.upload_id,
                    part_number=part.part_number,
                    size=part.size,
                    expires_in=EXPIRES_IN,
                ),
                "size": part.size,
                "expires_in": EXPIRES_IN,
            }
            for part in plan.parts
            if (part.part_number in wanted if wanted else part.part_number not in held_numbers)
        ]
        return httpx.Response(
            200,
            json={
                "recording_id": str(recording.id),
                "s3_key": f"recordings/{recording.id}",
                "bucket": "fake",
                "part_size": plan.part_size,
                "parts": urls,
                "uploaded_parts": [
                    {
                        "part_number": p.part_number,
                        "size": p.size,
                        "etag": self.listed_etag(p.part_number, p.etag),
                    }
                    for p in held
                ],
                "expires_in": EXPIRES_IN,
                "max_file_size": 10**9,
            },
        )

    def _complete(self, recording: FakeRecording, body: bytes) -> httpx.Response:
        req = CompleteUploadRequest.model_validate_json(body)
        if recording.completed is not None:
            return httpx.Response(200, json=recording.completed)
        if recording.kind == "multipart":
            assert recording.upload_id is not None
            assert recording.size is not None
            held = self.storage.list_parts(key=recording.key, upload_id=recording.upload_id)
            numbers = {p.part_number for p in held}
            missing = [p.part_number for p in plan_parts(recording.size).parts]
            missing = [n for n in missing if n not in numbers]
            if missing:
                return error(409, "UPLOAD_INCOMPLETE", missing_parts=missing)
            self.storage.complete_multipart_upload(
                key=recording.key,
                upload_id=recording.upload_id,
                parts=[(p.part_number, p.etag) for p in held],
            )
            recording.stored = self.storage.read_range(
                recording.key, offset=0, length=recording.size
            )
        if recording.stored is None:
            return error(409, "UPLOAD_NOT_FOUND")
        if len(recording.stored) != req.file_size_bytes:
            return error(409, "UPLOAD_SIZE_MISMATCH")
        declared = req.content_sha256 or recording.content_sha256
        if declared and declared != hashlib.sha256(recording.stored).hexdigest():
            return error(409, "UPLOAD_VERIFICATION_FAILED", reason="checksum")
        recording.status = "uploaded"
        recording.completed = _recording_json(recording, req)
        return httpx.Response(200, json=recording.completed)

    # ------------------------------------------------------------------ storage

    def _receive_part(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        number = int(request.url.params["partNumber"])
        try:
            etag = self.storage.receive_part(str(request.url), body)
        except StorageError as exc:
            if exc.details.get("reason") == "expired":
                return s3_error(403, "AccessDenied", "Request has expired")
            return s3_error(400, "BadDigest", "refused")
        self.part_bytes[number] += len(body)
        return httpx.Response(200, headers={"ETag": f'"{etag}"'})

    def _receive_form(self, request: httpx.Request) -> httpx.Response:
        rid = uuid.UUID(request.url.path.rsplit("/", 1)[-1])
        recording = self.recordings[rid]
        if self.now > recording.expires:
            return s3_error(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        self.form_bytes += len(request.read())
        recording.stored = _form_file(request)
        return httpx.Response(204)


def _known(recording: FakeRecording | None) -> FakeRecording:
    assert recording is not None
    return recording


def _form_file(request: httpx.Request) -> bytes:
    boundary = request.headers["Content-Type"].split("boundary=", 1)[1].encode()
    body = request.read()
    for part in body.split(b"--" + boundary):
        head, _, content = part.partition(b"\r\n\r\n")
        if b'name="file"' in head:
            return content.removesuffix(b"\r\n")
    msg = "no file field in the form"
    raise AssertionError(msg)


def _recording_json(recording: FakeRecording, req: CompleteUploadRequest) -> dict[str, Any]:
    now = dt.datetime.fromtimestamp(1_700_000_000, dt.UTC).isoformat()
    return {
        "id": str(recording.id),
        "appointment_id": None,
        "visit_id": None,
        "recorded_by_user_id": str(uuid.UUID(int=1)),
        "recording_type": "visit_audio",
        "status": "uploaded",
        "filename": f"{recording.id}.wav",
        "original_filename": "x.wav",
        "file_size_bytes": req.file_size_bytes,
        "duration_seconds": req.duration_seconds,
        "mime_type": recording.content_type,
        "s3_bucket": "fake",
        "s3_key": f"recordings/{recording.id}",
        "transcript_text": None,
        "transcript_confidence": None,
        "transcript_language": None,
        "transcription_service": None,
        "processing_started_at": None,
        "processing_completed_at": None,
        "processing_error": None,
        "recording_metadata": req.recording_metadata,
        "is_deleted": False,
        "upload_expires_at": None,
        "created_at": now,
        "updated_at": now,
    }
