"""The baseline of ``bench_http.py``: the upload API as a user would write it by hand.

FastAPI, PyJWT, one boto3 client, one psycopg connection per worker thread,
no package. ``initiate`` checks the bearer token and the content type, presigns
a POST with the package's conditions (bucket, key, Content-Type, AES256,
1..max bytes, one hour, and the file's SHA-256 when the phone declares it) and
INSERTs one row into a table of the package's
schema; ``complete`` checks the token, runs one ``UPDATE ... RETURNING`` in a
transaction, HEADs the object and commits only if it is the announced size.
No listing, no idempotency, no events, no metrics.

With ``BARE_INTEGRITY=1`` it also does the integrity work a user who wants
replay-proof uploads would hand-write, the same the package does: the ticket
names a staging key; ``complete`` reads the object's first 64 KiB in one
ranged GET (size from ``Content-Range``, type, encryption, ETag), checks its
audio signature, copies it to the final key on the condition that its ETag is
unchanged (``CopySourceIfMatch``) and deletes the staging object.

Configured from the environment: ``BARE_DATABASE_URL`` (a libpq URL),
``HELPPET_JWT_SECRET``, ``S3_BUCKET_NAME`` and the standard boto3 variables
(``AWS_ENDPOINT_URL``, keys, ``AWS_REGION``). Serve with
``uvicorn --app-dir bench bare_http_app:app``.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
import threading
import uuid
from typing import Annotated, Any, Final

import boto3
import botocore.config
import botocore.exceptions
import jwt
import psycopg
from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel

MAX_FILE_SIZE: Final = 104_857_600
EXPIRES_IN: Final = 3600
ALLOWED_TYPES: Final = {"audio/wav": "wav", "audio/mp4": "m4a", "audio/mpeg": "mp3"}
SNIFF_BYTES: Final = 65536
STAGING_PREFIX: Final = "staging/"

_SECRET = os.environ["HELPPET_JWT_SECRET"]
_BUCKET = os.environ["S3_BUCKET_NAME"]
_DATABASE_URL = os.environ["BARE_DATABASE_URL"]
_INTEGRITY = os.environ.get("BARE_INTEGRITY") == "1"
_s3 = boto3.client(
    "s3",
    config=botocore.config.Config(signature_version="s3v4", s3={"addressing_style": "path"}),
)
_local = threading.local()

_INSERT: Final = """
INSERT INTO recordings (id, recorded_by_user_id, appointment_id, recording_type, status,
    filename, original_filename, mime_type, s3_bucket, s3_key, upload_key, created_at, updated_at,
    upload_expires_at)
VALUES (%s, %s, %s, 'visit_audio', 'uploading', %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
_COMPLETE: Final = """
UPDATE recordings SET status = 'uploaded', file_size_bytes = %s, duration_seconds = %s,
    updated_at = %s
WHERE id = %s AND recorded_by_user_id = %s AND status = 'uploading' AND NOT is_deleted
RETURNING s3_key, upload_key, mime_type, filename, created_at
"""

app = FastAPI()


class InitiateBody(BaseModel):
    """The initiate request: what the phone sends."""

    filename: str
    content_type: str
    appointment_id: uuid.UUID | None = None
    content_sha256: str | None = None


class CompleteBody(BaseModel):
    """The complete request."""

    file_size_bytes: int
    duration_seconds: float | None = None


def _connection() -> psycopg.Connection[Any]:
    """This thread's connection, opened on first use."""
    connection: psycopg.Connection[Any] | None = getattr(_local, "connection", None)
    if connection is None:
        connection = _local.connection = psycopg.connect(_DATABASE_URL)
    return connection


def _user(authorization: str | None) -> uuid.UUID:
    """The token's user, or 401."""
    if not authorization or not authorization.startswith("Bearer "):
        raise HTTPException(401, "missing token")
    try:
        claims = jwt.decode(
            authorization[7:], _SECRET, algorithms=["HS256"], options={"require": ["sub", "exp"]}
        )
        return uuid.UUID(claims["sub"])
    except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
        raise HTTPException(401, "bad token") from exc


@app.post("/api/v1/recordings/upload/initiate")
def initiate(
    body: InitiateBody, authorization: Annotated[str | None, Header()] = None
) -> dict[str, Any]:
    """Presign the upload and insert its row."""
    user = _user(authorization)
    extension = ALLOWED_TYPES.get(body.content_type)
    if extension is None:
        raise HTTPException(415, "unsupported content type")
    now = dt.datetime.now(dt.UTC)
    rid = uuid.uuid4()
    name = f"{now:%Y%m%d_%H%M%S}_{secrets.token_hex(8)}.{extension}"
    key = f"recordings/{user}/{name}"
    upload_key = f"{STAGING_PREFIX}{user}/{name}" if _INTEGRITY else None
    fields = {"Content-Type": body.content_type, "x-amz-server-side-encryption": "AES256"}
    if body.content_sha256 is not None:
        digest = base64.b64encode(bytes.fromhex(body.content_sha256)).decode()
        fields |= {"x-amz-checksum-algorithm": "SHA256", "x-amz-checksum-sha256": digest}
    post = _s3.generate_presigned_post(
        Bucket=_BUCKET,
        Key=upload_key or key,
        Fields=fields,
        Conditions=[
            *({name: value} for name, value in fields.items()),
            ["content-length-range", 1, MAX_FILE_SIZE],
        ],
        ExpiresIn=EXPIRES_IN,
    )
    connection = _connection()
    with connection.transaction():
        connection.execute(
            _INSERT,
            (
                rid,
                user,
                body.appointment_id,
                name,
                body.filename,
                body.content_type,
                _BUCKET,
                key,
                upload_key,
                now,
                now,
                now + dt.timedelta(seconds=EXPIRES_IN),
            ),
        )
    return {
        "recording_id": str(rid),
        "upload_url": post["url"],
        "upload_fields": post["fields"],
        "s3_key": key,
        "bucket": _BUCKET,
        "expires_in": EXPIRES_IN,
        "max_file_size": MAX_FILE_SIZE,
    }


@app.post("/api/v1/recordings/upload/complete/{recording_id}")
def complete(
    recording_id: uuid.UUID,
    body: CompleteBody,
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Mark the upload done if storage holds the announced bytes."""
    user = _user(authorization)
    connection = _connection()
    now = dt.datetime.now(dt.UTC)
    with connection.transaction():
        row = connection.execute(
            _COMPLETE, (body.file_size_bytes, body.duration_seconds, now, recording_id, user)
        ).fetchone()
        if row is None:
            raise HTTPException(404, "no such upload")
        key, upload_key, mime_type, filename, created_at = row
        if upload_key is None:
            _check_head(key, body.file_size_bytes, mime_type)
        else:
            _check_and_move(upload_key, key, body.file_size_bytes, mime_type)
    return {
        "id": str(recording_id),
        "status": "uploaded",
        "filename": filename,
        "file_size_bytes": body.file_size_bytes,
        "s3_key": key,
        "created_at": created_at.isoformat(),
        "updated_at": now.isoformat(),
    }


def _check_head(key: str, size: int, mime_type: str) -> None:
    """HEAD the object: 409 unless it is there with the announced size and type."""
    try:
        head = _s3.head_object(Bucket=_BUCKET, Key=key)
    except botocore.exceptions.ClientError as exc:
        raise HTTPException(409, "not uploaded") from exc
    if head["ContentLength"] != size or head.get("ContentType") != mime_type:
        raise HTTPException(409, "size or type mismatch")


def _check_and_move(upload_key: str, key: str, size: int, mime_type: str) -> None:
    """Check the staged object (size, type, encryption, signature); move it if unchanged."""
    try:
        got = _s3.get_object(Bucket=_BUCKET, Key=upload_key, Range=f"bytes=0-{SNIFF_BYTES - 1}")
        first = got["Body"].read()
    except botocore.exceptions.ClientError as exc:
        raise HTTPException(409, "not uploaded") from exc
    stored_size = int(got["ContentRange"].rpartition("/")[2])
    if stored_size != size or got.get("ContentType") != mime_type:
        raise HTTPException(409, "size or type mismatch")
    if got.get("ServerSideEncryption") != "AES256":
        raise HTTPException(409, "not encrypted")
    if not _is_audio(first, mime_type):
        raise HTTPException(409, "not audio")
    try:
        _s3.copy_object(
            Bucket=_BUCKET,
            Key=key,
            CopySource={"Bucket": _BUCKET, "Key": upload_key},
            CopySourceIfMatch=got["ETag"],
            MetadataDirective="COPY",
            ServerSideEncryption="AES256",
        )
    except botocore.exceptions.ClientError as exc:
        raise HTTPException(409, "changed during completion") from exc
    _s3.delete_object(Bucket=_BUCKET, Key=upload_key)


def _is_audio(first: bytes, mime_type: str) -> bool:
    """Whether the first bytes are the container of ``mime_type`` (a bare signature check)."""
    if mime_type == "audio/wav":
        return first[:4] == b"RIFF" and first[8:12] == b"WAVE"
    if mime_type == "audio/mp4":
        return first[4:8] == b"ftyp"
    return first[:3] == b"ID3" or (len(first) > 1 and first[0] == 0xFF and first[1] >= 0xE0)
