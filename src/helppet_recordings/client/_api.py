"""The HTTP exchanges of an upload: the API's routes and storage's URLs, each retried.

Every exchange goes through :meth:`Session.send`, which retries connection
failures, timeouts, 408/429/5xx answers and storage's transient error codes
(``400 RequestTimeout``; :mod:`._retry`) and hands back
any other answer. The API's routes then raise the package's error for a
failed answer; storage's answers are judged by the caller (an expired URL is
renewed, not raised). An answer whose body cannot be decoded (a corrupt
gzip body, say) is handed back with its status and headers and an empty
body, to be judged like any other. An answer must arrive whole within one
read timeout of its headers (one that trickles in is a ``ReadTimeout``).
Once the session is closed (the uploader's ``close()``, from any thread), no
attempt starts, a wait ends, a part's body stops at its next chunk, and the
request ends with a ``RecordingError`` (``details["reason"]`` ``closed``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from helppet_recordings.client._errors import ConnectionFailedError, api_error, closed_error
from helppet_recordings.client._retry import (
    Aborted,
    RetryableResponseError,
    RetryPolicy,
    check_abort,
    is_retryable,
    retry_after,
    retrying,
)
from helppet_recordings.errors import RecordingError, StorageError
from helppet_recordings.schemas import (
    CompleteUploadRequest,
    InitiateMultipartUploadRequest,
    InitiateUploadRequest,
    InitiateUploadResponse,
    MultipartUploadResponse,
    RecordingResponse,
    SignUploadPartsRequest,
)

__all__ = ["API_PREFIX", "RecordingsApi", "Session", "TokenSource"]

API_PREFIX = "/api/v1/recordings"
"""Where the recordings routes live under the API's base URL."""

TokenSource = str | Callable[[], str]
"""A bearer token, or a callable returning a current one (called for every API request)."""

Model = TypeVar("Model", bound=BaseModel)

logger = logging.getLogger("helppet_recordings.client")


class Session:
    """One ``httpx.Client`` and a retry policy: sends a request until it gets a final answer."""

    def __init__(self, http: httpx.Client, policy: RetryPolicy) -> None:
        self.http = http
        self.policy = policy
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._watched: set[threading.Event] = set()

    @contextlib.contextmanager
    def watching(self, abort: threading.Event) -> Iterator[None]:
        """Set ``abort`` when the session is closed while the block runs (or was already)."""
        with self._lock:
            self._watched.add(abort)
            if self.closed.is_set():
                abort.set()
        try:
            yield
        finally:
            with self._lock:
                self._watched.discard(abort)

    def close(self) -> None:
        """Close the session: requests sending or waiting in any thread stop; httpx closes."""
        with self._lock:
            self.closed.set()
            for abort in self._watched:
                abort.set()
        self.http.close()

    def send(
        self,
        build: Callable[[], httpx.Request],
        *,
        storage: bool = False,
        abort: threading.Event | None = None,
    ) -> httpx.Response:
        """Send the request ``build`` makes (once per attempt) and return the final answer.

        A retryable answer that is still retryable after the last attempt is
        returned as it is; transport failures after the last attempt raise
        ``ConnectionFailedError``. Any other failure of httpx (a redirect
        loop) raises ``StorageError`` when ``storage`` says the request went
        to storage, the package's ``RecordingError`` otherwise. Once
        ``abort`` is set, no attempt starts, a wait ends, and ``Aborted`` is
        raised; once the session is closed, a ``RecordingError`` (reason
        ``closed``) is, whatever the request was doing.
        """
        signal = self.closed if abort is None else abort
        try:
            for attempt in retrying(self.policy, abort=signal):
                with attempt:
                    check_abort(signal)
                    return self._once(build(), signal)
        except Aborted:
            if self.closed.is_set():
                raise closed_error() from None
            raise
        except RuntimeError as exc:  # httpx's "the client has been closed"
            if self.closed.is_set():
                raise closed_error() from exc
            raise
        except RetryableResponseError as exhausted:
            return exhausted.response
        except httpx.TransportError as exc:
            if self.closed.is_set():  # its connections were closed under it
                raise closed_error() from exc
            raise ConnectionFailedError(reason=type(exc).__name__) from exc
        except httpx.RequestError as exc:
            # The message names the failure only: the request's URL may carry a signature.
            if storage:
                raise StorageError(
                    "Storage's answer could not be read", storage_error=type(exc).__name__
                ) from exc
            raise RecordingError(
                "The API's answer could not be read", reason=type(exc).__name__
            ) from exc
        raise AssertionError("unreachable: stamina either returns or raises")  # pragma: no cover

    def _once(self, request: httpx.Request, abort: threading.Event) -> httpx.Response:
        answer = self.http.send(request, stream=True)
        try:
            response = _with_body(answer, self._read(answer, abort))
        except httpx.DecodingError as exc:
            logger.warning(
                "an answer's body (HTTP %d) could not be decoded (%s); it is read as empty",
                answer.status_code,
                exc,
            )
            response = _with_body(answer, b"")
        finally:
            answer.close()
        if is_retryable(response):
            raise RetryableResponseError(response, retry_after(response))
        return response

    def _read(self, answer: httpx.Response, abort: threading.Event) -> bytes:
        """Read the whole (small) body, within one read timeout of its headers in all.

        httpx's read timeout bounds each read only: an answer trickling in a
        byte at a time would hold the attempt (and a part the upload gave up)
        for as long as it trickles. It ends in ``ReadTimeout``, retried like
        any; an abort is seen at each chunk.
        """
        limit = self.http.timeout.read
        deadline = time.monotonic() + (self.policy.timeout if limit is None else limit)
        chunks: list[bytes] = []
        for chunk in answer.iter_bytes():
            chunks.append(chunk)
            check_abort(abort)
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout("the answer did not arrive in time", request=answer.request)
        return b"".join(chunks)


def _with_body(response: httpx.Response, body: bytes) -> httpx.Response:
    """``response``'s status and headers with ``body``, its decoded body (or none)."""
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in {"content-encoding", "content-length", "transfer-encoding"}
    ]
    return httpx.Response(
        response.status_code, headers=headers, content=body, request=response.request
    )


class RecordingsApi:
    """The API's upload routes, authenticated with a bearer token, each retried."""

    def __init__(
        self, session: Session, base_url: str, token: TokenSource, *, prefix: str = API_PREFIX
    ) -> None:
        self._session = session
        self._root = base_url.rstrip("/") + prefix
        self._token = token

    def initiate(self, request: InitiateUploadRequest) -> InitiateUploadResponse:
        """``POST /upload/initiate``: create the recording, get a ticket."""
        return self._post("/upload/initiate", request, InitiateUploadResponse)

    def renew(self, recording_id: uuid.UUID) -> InitiateUploadResponse:
        """``POST /upload/renew/{id}``: a fresh ticket for an expired one."""
        return self._post(f"/upload/renew/{recording_id}", None, InitiateUploadResponse)

    def initiate_multipart(
        self, request: InitiateMultipartUploadRequest
    ) -> MultipartUploadResponse:
        """``POST /upload/multipart/initiate``: create the recording, get the part plan."""
        return self._post("/upload/multipart/initiate", request, MultipartUploadResponse)

    def sign_parts(
        self, recording_id: uuid.UUID, part_numbers: list[int] | None = None
    ) -> MultipartUploadResponse:
        """``POST /upload/multipart/{id}/parts``: fresh URLs, and what storage holds."""
        body = SignUploadPartsRequest(part_numbers=part_numbers)
        return self._post(f"/upload/multipart/{recording_id}/parts", body, MultipartUploadResponse)

    def complete(
        self, recording_id: uuid.UUID, request: CompleteUploadRequest
    ) -> RecordingResponse:
        """``POST /upload/complete/{id}``: verify and settle the upload (idempotent)."""
        return self._post(f"/upload/complete/{recording_id}", request, RecordingResponse)

    def _post(self, path: str, body: BaseModel | None, answer: type[Model]) -> Model:
        payload: Mapping[str, Any] | None = (
            None if body is None else body.model_dump(mode="json", exclude_none=True)
        )

        def build() -> httpx.Request:
            headers = {"Authorization": f"Bearer {self._current_token()}"}
            return self._session.http.build_request(
                "POST", self._root + path, json=payload, headers=headers
            )

        response = self._session.send(build)
        if not response.is_success:
            raise api_error(response)
        try:
            return answer.model_validate_json(response.content)
        except ValueError as exc:
            raise RecordingError(
                "The API answered with a body this client does not understand",
                http_status=response.status_code,
            ) from exc

    def _current_token(self) -> str:
        return self._token if isinstance(self._token, str) else self._token()
