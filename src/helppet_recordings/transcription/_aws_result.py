"""An Amazon Transcribe job's result: downloading it, reading its transcript, deleting it.

A job writes its result (``asrOutput.json``) to the output bucket, where it
is read with S3 ``GetObject`` (:func:`read_object`), or to Transcribe's own
bucket, behind the presigned HTTPS ``TranscriptFileUri``
(:func:`fetch_https`). Either download that did not complete raises
``TransientTranscriptionError``: a body cut off after its headers reads as a
short body, without an error, and parsing it would fail a recording for good
over a network fault. :func:`parse_result` turns the document into a
:class:`Transcript`; one that is not in the documented shape, or larger than
:data:`MAX_RESULT_BYTES`, is ``PermanentTranscriptionError`` (``bad_result``),
quoting nothing of the transcript. Once read, :func:`delete_result` removes
the job and the result object, which both hold the transcript.
"""

from __future__ import annotations

import http.client
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import pydantic

from helppet_recordings.errors import MissingDependencyError
from helppet_recordings.transcription._answers import TranscribeResult, bad_result
from helppet_recordings.transcription._languages import is_language_tag
from helppet_recordings.transcription.base import Transcript
from helppet_recordings.transcription.errors import (
    PermanentTranscriptionError,
    TransientTranscriptionError,
)

try:
    import botocore.exceptions
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("boto3", "aws") from exc

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_transcribe import TranscribeServiceClient

__all__ = [
    "MAX_RESULT_BYTES",
    "check_complete",
    "delete_result",
    "fetch_https",
    "parse_result",
    "read_object",
]

MAX_RESULT_BYTES: Final = 64 * 1024 * 1024
"""The largest result read; a larger one is ``bad_result``."""
_logger: Final = logging.getLogger("helppet_recordings.transcription")


def fetch_https(url: str) -> bytes:
    """Download a presigned HTTPS URL (Transcribe's own result location).

    A download that did not complete (cut off, or shorter than its
    ``Content-Length``) raises ``TransientTranscriptionError``.
    """
    if urllib.parse.urlsplit(url).scheme != "https":
        msg = "The transcript location is not an HTTPS URL"
        raise PermanentTranscriptionError(msg, reason="bad_result")
    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - https only
            declared = response.headers.get("Content-Length")
            data: bytes = response.read(MAX_RESULT_BYTES + 1)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        # HTTPException: a chunked body cut off (IncompleteRead) is not an OSError.
        msg = "The transcript could not be downloaded"
        raise TransientTranscriptionError(msg) from exc
    check_complete(data, declared)
    return data


def read_object(s3: S3Client, bucket: str, key: str, job_name: str) -> bytes:
    """Read a job's result from the output bucket, at most one byte past the limit.

    A body shorter than its ``Content-Length`` raises
    ``TransientTranscriptionError``; botocore's errors are the caller's to
    translate.
    """
    response = s3.get_object(Bucket=bucket, Key=key)
    with response["Body"] as body:
        data: bytes = body.read(MAX_RESULT_BYTES + 1)
    check_complete(data, response.get("ContentLength"), job_name)
    return data


def check_complete(data: bytes, declared: object, job_name: str | None = None) -> None:
    """Raise ``TransientTranscriptionError`` when ``data`` is shorter than its declared length.

    A body cut off after its headers reads as a short body, without an error
    (urllib and botocore alike): parsing it would fail a recording for good
    over a network fault.
    """
    try:
        length = int(str(declared))
    except ValueError:
        return  # no length declared (chunked, whose cut raises) or one that means nothing
    if len(data) < min(length, MAX_RESULT_BYTES + 1):
        msg = f"The transcript download stopped after {len(data)} of {length} bytes"
        if job_name is None:
            raise TransientTranscriptionError(msg)
        raise TransientTranscriptionError(msg, job_name=job_name)


def parse_result(
    raw: bytes,
    *,
    job_name: str,
    job_language: str | None,
    configured_language: str | None,
    service: str,
) -> Transcript:
    """Return the transcript in a result document.

    ``confidence`` is the mean confidence of the recognised words;
    ``language`` the first valid tag among the job's language code, the
    document's and ``configured_language``.
    """
    if len(raw) > MAX_RESULT_BYTES:
        msg = "The Transcribe result is larger than any transcript should be"
        raise PermanentTranscriptionError(msg, reason="bad_result", job_name=job_name)
    try:
        document = TranscribeResult.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        # Not chained: pydantic's message quotes the values, the transcript among them.
        msg = "The Transcribe result is not in the documented shape"
        raise bad_result(msg, exc, job_name=job_name) from None
    scores = document.confidences
    confidence = min(1.0, max(0.0, sum(scores) / len(scores))) if scores else None
    reported = (job_language, document.results.language_code, configured_language)
    language = next((code for code in reported if is_language_tag(code)), None)
    return Transcript(document.text, confidence=confidence, language=language, service=service)


def delete_result(
    job_name: str,
    *,
    transcribe: TranscribeServiceClient,
    s3: Callable[[], S3Client],
    bucket: str | None,
    key: str,
) -> None:
    """Delete a job whose result was read, and its result object at ``key`` in ``bucket``.

    A failed deletion is logged (WARNING, the job name and the error code),
    never raised: losing the transcript would pay for the job again. Each
    deletion is tried on its own, so a refused job deletion still removes
    the result object that holds the transcript.
    """
    _try_deleting(
        job_name,
        "the job",
        lambda: transcribe.delete_transcription_job(TranscriptionJobName=job_name),
    )
    if bucket:
        _try_deleting(
            job_name, "the result object", lambda: s3().delete_object(Bucket=bucket, Key=key)
        )


def _try_deleting(job: str, what: str, delete: Callable[[], object]) -> None:
    try:
        delete()
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        detail = (
            str(exc.response.get("Error", {}).get("Code", ""))
            if isinstance(exc, botocore.exceptions.ClientError)
            else ""
        )
        _logger.warning(
            "Transcribe job %s: the transcript was read but deleting %s failed (%s)",
            job,
            what,
            detail or type(exc).__name__,
        )
