"""AwsTranscribeTranscriber: an Amazon Transcribe job on the object in S3 (extra ``aws``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final

from helppet_recordings import policy
from helppet_recordings.errors import MissingDependencyError, UnsupportedContentTypeError
from helppet_recordings.transcription._aws_result import delete_result, parse_result, read_object
from helppet_recordings.transcription._aws_result import fetch_https as _fetch_https
from helppet_recordings.transcription._languages import is_language_tag
from helppet_recordings.transcription._retry_after import retry_after_seconds
from helppet_recordings.transcription.base import Transcript, TranscriptionInput
from helppet_recordings.transcription.errors import (
    PermanentTranscriptionError,
    TranscriberConfigurationError,
    TransientTranscriptionError,
)

try:
    import boto3
    import botocore.exceptions
    import botocore.model
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("boto3", "aws") from exc

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_transcribe import TranscribeServiceClient
    from mypy_boto3_transcribe.type_defs import TranscriptionJobTypeDef

__all__ = ["MEDIA_FORMATS", "AwsTranscribeTranscriber"]

MEDIA_FORMATS: Final = {
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/wav": "wav",
    "audio/flac": "flac",
    "audio/ogg": "ogg",
    "audio/webm": "webm",
    "audio/amr": "amr",
}
"""Accepted types Amazon Transcribe reads, by canonical MIME type, with its ``MediaFormat``.

AAC (ADTS), AMR-WB, CAF and 3GP/3G2 uploads are refused before a job starts
(``PermanentTranscriptionError``, reason ``unsupported_format``).
"""

_TRANSIENT_CODES: Final = frozenset(
    {
        "LimitExceededException",
        "ThrottlingException",
        "TooManyRequestsException",
        "InternalFailureException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "SlowDown",
        "InternalError",
    }
)
_CONFIGURATION_CODES: Final = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "NoSuchBucket",
        "KMS.AccessDeniedException",
    }
)
_RUNNING: Final = frozenset({"QUEUED", "IN_PROGRESS"})


class AwsTranscribeTranscriber:
    """Runs one Amazon Transcribe job per round of processing of a recording, on the audio in place.

    The job reads ``TranscriptionInput.s3_uri`` directly: nothing is copied.
    Its name is ``{job_prefix}-{recording_id}-{cycle}``, where ``cycle`` is
    the recording's round of processing (``Recording.processing_cycle``).
    Every attempt within a round (a retry after a transient error or a
    timed-out poll, a worker taking over from one that died) finds the
    existing job (``ConflictException``) and polls it instead of paying for
    a second one; a reprocessed recording is in a new round and gets a new
    job, not the old failed one.

    - ``language``: ``en-US`` by default, or another code Transcribe lists
      (in any case: ``en-gb`` is kept as ``en-GB``); None lets Transcribe
      identify it (among ``language_options``, codes too, when given). A code
      Transcribe does not list raises ``TranscriberConfigurationError``
      (``details["parameter"]``) here, before any job.
    - ``output_bucket`` / ``output_prefix``: where Transcribe writes the
      result (read back with S3 ``GetObject``; the role needs
      ``s3:PutObject`` there for Transcribe and ``s3:GetObject`` for the
      worker). Without it the result is fetched from the presigned HTTPS
      ``TranscriptFileUri`` in Transcribe's own bucket.
    - ``cleanup``: once the result is read, delete the job (and so its copy
      of the transcript in Transcribe's bucket) and the result object in
      ``output_bucket``; also when the result then cannot be used
      (``PermanentTranscriptionError``, reason ``bad_result``: not in the
      documented shape, or too large). Clinic transcripts then live only in
      the database. A result that could not be read (a transient error: the
      download failed, or ended short of its ``Content-Length``) is left for
      the retry, job and all. A ``fetch_url`` of your own must raise
      ``TransientTranscriptionError`` for a download that did not complete:
      what it returns is taken as the whole result.
      Each deletion is tried on its own; one that fails is logged (WARNING,
      job name and error code) and the transcript is returned all the same.
      A job left behind expires by itself after 90 days; a result object
      left behind stays until a lifecycle rule on ``output_prefix`` (which
      the operator sets up) expires it. A job that ends ``FAILED`` is kept:
      it holds no transcript, only the media URI and Transcribe's reason,
      for an operator to read (a reprocess starts a new job). A recording
      deleted while its job runs past ``max_wait``, or while it waits for a
      retry, is never claimed again, and Transcribe refuses to delete a job
      in progress: its transcript is left where the job writes it.
    - Polling waits ``poll_initial`` seconds, growing by half each time up to
      ``poll_max``; after ``max_wait`` seconds (keep it under the worker's
      lease) it raises ``TransientTranscriptionError`` with
      ``details["job_name"]``: a retry in the same round resumes polling the
      same job.

    Without ``client``, one is made for ``region_name`` (default: botocore's,
    which reads ``AWS_DEFAULT_REGION``, not ``AWS_REGION``); botocore refusing
    to make it (no region, a missing profile, partial credentials) raises
    ``TranscriberConfigurationError``.

    ``confidence`` is the mean confidence of the recognised words;
    ``language`` the job's language code. A job that ends ``FAILED`` raises
    ``PermanentTranscriptionError`` (reason ``job_failed``, with
    Transcribe's ``failure_reason``).
    """

    name: ClassVar[str] = "aws-transcribe"

    def __init__(
        self,
        *,
        client: TranscribeServiceClient | None = None,
        s3_client: S3Client | None = None,
        region_name: str | None = None,
        language: str | None = "en-US",
        language_options: list[str] | None = None,
        output_bucket: str | None = None,
        output_prefix: str = "transcripts/",
        job_prefix: str = "helppet",
        cleanup: bool = True,
        poll_initial: float = 2.0,
        poll_max: float = 30.0,
        max_wait: float = 840.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        fetch_url: Callable[[str], bytes] = _fetch_https,
    ) -> None:
        if client is None:
            try:
                client = boto3.client("transcribe", region_name=region_name)
            except (botocore.exceptions.BotoCoreError, ValueError) as exc:
                # No region, a missing profile, half the credentials, a bad endpoint URL.
                msg = f"The Amazon Transcribe client cannot be configured: {exc}"
                raise TranscriberConfigurationError(msg, reason=type(exc).__name__) from exc
        codes = _language_codes(client)
        self._client = client
        self._s3 = s3_client
        self._region_name = region_name
        self.language = _language_code(language, codes, "language") if language else None
        self.language_options = (
            None
            if language_options is None
            else [_language_code(code, codes, "language_options") for code in language_options]
        )
        self.output_bucket = output_bucket
        self.output_prefix = output_prefix
        self.job_prefix = job_prefix
        self.cleanup = cleanup
        self.poll_initial = poll_initial
        self.poll_max = poll_max
        self.max_wait = max_wait
        self._sleep = sleep
        self._clock = clock
        self._fetch_url = fetch_url

    def job_name(self, recording_id: uuid.UUID, cycle: int) -> str:
        """Return the Transcribe job name of one round of processing of one recording."""
        return f"{self.job_prefix}-{recording_id}-{cycle}"

    def output_key(self, job_name: str) -> str:
        """Return the key of a job's result in ``output_bucket``."""
        return f"{self.output_prefix}{job_name}.json"

    def transcribe(self, audio: TranscriptionInput) -> Transcript:
        """Start (or resume) this round's job, wait for it and return its transcript."""
        if not audio.s3_uri or not audio.s3_uri.startswith("s3://"):
            msg = "Amazon Transcribe reads audio from S3, and this recording has no S3 URI"
            raise TranscriberConfigurationError(msg)
        media_format = _media_format(audio.mime_type)
        name = self.job_name(audio.recording_id, audio.cycle)
        self._start(name, audio.s3_uri, media_format)
        job = self._wait(name)
        media = job.get("Media", {}).get("MediaFileUri")
        if media != audio.s3_uri:
            msg = "A Transcribe job with this name belongs to other audio"
            raise TranscriberConfigurationError(msg, job_name=name)
        if job.get("TranscriptionJobStatus") == "FAILED":
            raise PermanentTranscriptionError(
                "Amazon Transcribe could not transcribe the audio",
                reason="job_failed",
                job_name=name,
                failure_reason=str(job.get("FailureReason", ""))[:500],
            )
        raw = self._read_result(name, job)
        try:
            return parse_result(
                raw,
                job_name=name,
                job_language=job.get("LanguageCode"),
                configured_language=self.language,
                service=self.name,
            )
        finally:
            # Read, whether it parses or not (bad_result is permanent: a reprocess starts a
            # new job), the result is no longer needed where it holds the transcript.
            if self.cleanup:
                delete_result(
                    name,
                    transcribe=self._client,
                    s3=self._s3_client,
                    bucket=self.output_bucket,
                    key=self.output_key(name),
                )

    def _start(self, name: str, s3_uri: str, media_format: str) -> None:
        params: dict[str, Any] = {
            "TranscriptionJobName": name,
            "Media": {"MediaFileUri": s3_uri},
            "MediaFormat": media_format,
        }
        if self.language:
            params["LanguageCode"] = self.language
        else:
            params["IdentifyLanguage"] = True
            if self.language_options:
                params["LanguageOptions"] = self.language_options
        if self.output_bucket:
            params["OutputBucketName"] = self.output_bucket
            params["OutputKey"] = self.output_key(name)
        try:
            self._client.start_transcription_job(**params)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) != "ConflictException":
                raise _translate(exc) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise _translate(exc) from exc

    def _wait(self, name: str) -> TranscriptionJobTypeDef:
        deadline = self._clock() + self.max_wait
        delay = self.poll_initial
        while True:
            try:
                job = self._client.get_transcription_job(TranscriptionJobName=name)[
                    "TranscriptionJob"
                ]
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
                raise _translate(exc) from exc
            if job.get("TranscriptionJobStatus", "QUEUED") not in _RUNNING:
                return job
            if self._clock() + delay > deadline:
                raise TransientTranscriptionError(
                    "The Transcribe job is still running; a retry resumes it",
                    retry_after=self.poll_max,
                    job_name=name,
                )
            self._sleep(delay)
            delay = min(self.poll_max, delay * 1.5)

    def _read_result(self, name: str, job: TranscriptionJobTypeDef) -> bytes:
        if not self.output_bucket:
            uri = job.get("Transcript", {}).get("TranscriptFileUri")
            if not uri:
                msg = "The Transcribe job finished without a transcript location"
                raise PermanentTranscriptionError(msg, reason="bad_result", job_name=name)
            return self._fetch_url(uri)
        try:
            return read_object(self._s3_client(), self.output_bucket, self.output_key(name), name)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise _translate(exc, missing_is_transient=True) from exc

    def _s3_client(self) -> S3Client:
        if self._s3 is None:
            self._s3 = boto3.client("s3", region_name=self._region_name)
        return self._s3


def _language_codes(client: TranscribeServiceClient) -> dict[str, str] | None:
    """Return Transcribe's language codes by their lower case, from botocore's service model.

    None when the client does not carry the model (a stand-in): only the form is checked then.
    """
    try:
        shape = client.meta.service_model.shape_for("LanguageCode")
    except (AttributeError, botocore.model.NoShapeFoundError):
        return None
    if not isinstance(shape, botocore.model.StringShape) or not shape.enum:
        return None
    return {str(code).lower(): str(code) for code in shape.enum}


def _language_code(value: object, codes: dict[str, str] | None, parameter: str) -> str:
    """Return ``value`` as Transcribe spells the language code, or refuse it before any job."""
    if isinstance(value, str):
        if codes is None and is_language_tag(value):
            return value
        if codes is not None and value.lower() in codes:
            return codes[value.lower()]
    alternative = "" if parameter == "language_options" else ", or None to identify it"
    msg = (
        f"{parameter} must be an Amazon Transcribe language code such as 'en-US' or 'en-GB'"
        f"{alternative}, not {str(value)[:40]!r}"
    )
    raise TranscriberConfigurationError(msg, parameter=parameter)


def _media_format(mime_type: str) -> str:
    try:
        canonical = policy.resolve_audio_type(mime_type)[1].mime_type
    except UnsupportedContentTypeError:
        canonical = mime_type
    media_format = MEDIA_FORMATS.get(canonical)
    if media_format is None:
        raise PermanentTranscriptionError(
            "Amazon Transcribe does not read this audio format",
            reason="unsupported_format",
            content_type=canonical[:100],
        )
    return media_format


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _translate(exc: Exception, *, missing_is_transient: bool = False) -> Exception:
    if isinstance(
        exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError
    ):
        return TranscriberConfigurationError("No AWS credentials were found")
    if not isinstance(exc, botocore.exceptions.ClientError):
        return TransientTranscriptionError("Amazon Transcribe could not be reached")
    code = _code(exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if (
        code in _TRANSIENT_CODES
        or status >= 500
        or (missing_is_transient and code in {"NoSuchKey", "404"})
    ):
        headers: Mapping[str, str] = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return TransientTranscriptionError(
            f"Amazon Transcribe is unavailable ({code or status})",
            retry_after=retry_after_seconds(headers),
            service_code=code,
        )
    if code in _CONFIGURATION_CODES or status in {401, 403}:
        return TranscriberConfigurationError(
            f"AWS refused the credentials or permissions ({code})", service_code=code
        )
    return PermanentTranscriptionError(
        f"Amazon Transcribe refused the request ({code})",
        reason="refused",
        service_code=code,
        service_message=str(exc.response.get("Error", {}).get("Message", ""))[:500],
    )
