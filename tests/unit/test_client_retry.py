"""The client's retry rules and error mapping, over ``httpx.MockTransport``."""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Iterator

import httpx
import pytest
import stamina
from hypothesis import given
from hypothesis import strategies as st

from helppet_recordings.client import ConnectionFailedError, RetryPolicy, retry_after
from helppet_recordings.client._api import Session
from helppet_recordings.client._errors import api_error, is_expired_url, storage_error
from helppet_recordings.client._retry import RetryableResponseError, _backoff_hook
from helppet_recordings.errors import (
    FileTooLargeError,
    MissingDependencyError,
    RecordingError,
    RepositoryUnavailableError,
    StorageError,
    StorageUnavailableError,
    UploadIncompleteError,
    ValidationError,
)
from helppet_recordings.storage.local.deadlines import request_timeout
from helppet_recordings.storage.local.responses import refused
from tests.support.fake_recordings_api import error, s3_error

NOW = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
TRANSIENT_STORAGE_CODES = [
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
]


@pytest.fixture(autouse=True)
def no_waiting() -> Iterator[None]:
    """Stamina retries without sleeping (up to 5 attempts) in these tests."""
    with stamina.set_testing(True, attempts=5, cap=True):
        yield


def _session(*answers: httpx.Response | Exception) -> tuple[Session, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    http = httpx.Client(transport=httpx.MockTransport(handle))
    return Session(http, RetryPolicy(attempts=10)), seen


def _get(session: Session) -> httpx.Response:
    return session.send(lambda: session.http.build_request("GET", "http://api.test/x"))


def test_retry_after_in_seconds() -> None:
    """A Retry-After of seconds is read as such."""
    assert retry_after(httpx.Response(503, headers={"Retry-After": "7"}), now=NOW) == 7.0


def test_retry_after_as_http_date() -> None:
    """A Retry-After HTTP date is the seconds from now until then (0 if past)."""
    later = email.utils.format_datetime(NOW + dt.timedelta(seconds=42), usegmt=True)
    earlier = email.utils.format_datetime(NOW - dt.timedelta(seconds=42), usegmt=True)
    assert retry_after(httpx.Response(429, headers={"Retry-After": later}), now=NOW) == 42.0
    assert retry_after(httpx.Response(429, headers={"Retry-After": earlier}), now=NOW) == 0.0


def test_retry_after_from_error_details() -> None:
    """Without the header, the API body's details.retry_after counts; garbage does not."""
    assert retry_after(error(503, "STORAGE_UNAVAILABLE", retry_after=3), now=NOW) == 3.0
    assert retry_after(error(503, "STORAGE_UNAVAILABLE", retry_after="soon"), now=NOW) is None
    assert retry_after(httpx.Response(503, headers={"Retry-After": "soon"}), now=NOW) is None
    assert retry_after(httpx.Response(503, text="{not json"), now=NOW) is None
    superscript = httpx.Response(503, headers=[(b"Retry-After", "\u00b2".encode("latin-1"))])
    assert retry_after(superscript, now=NOW) is None  # a digit to str.isdigit, not to float


@given(st.integers(min_value=0, max_value=10**6))
def test_retry_after_seconds_round_trip(seconds: int) -> None:
    """Any whole number of seconds in the header comes back unchanged."""
    response = httpx.Response(503, headers={"Retry-After": str(seconds)})
    assert retry_after(response, now=NOW) == float(seconds)


def test_backoff_hook_uses_the_servers_delay_capped() -> None:
    """The server's delay replaces the backoff (capped); transport errors retry too."""
    hook = _backoff_hook(RetryPolicy(max_retry_after=60))
    assert hook(RetryableResponseError(httpx.Response(503), 7.0)) == 7.0
    assert hook(RetryableResponseError(httpx.Response(503), 3600.0)) == 60
    assert hook(RetryableResponseError(httpx.Response(503), None)) is True
    assert hook(httpx.ConnectError("refused")) is True
    assert hook(httpx.ReadTimeout("slow")) is True
    assert hook(ValueError("not ours")) is False


def test_session_retries_5xx_429_408_and_connection_errors() -> None:
    """Retryable answers and failures are sent again until a final answer comes."""
    session, seen = _session(
        httpx.Response(503, headers={"Retry-After": "1"}),
        httpx.ConnectError("refused"),
        httpx.Response(429),
        httpx.Response(408),
        httpx.Response(200, text="ok"),
    )
    assert _get(session).text == "ok"
    assert len(seen) == 5


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 413, 415, 422])
def test_session_never_retries_other_4xx(status: int) -> None:
    """A 4xx other than 408/429 is final at once."""
    session, seen = _session(httpx.Response(status), httpx.Response(200))
    assert _get(session).status_code == status
    assert len(seen) == 1


@pytest.mark.parametrize("status", [400, 403, 503])
@pytest.mark.parametrize("code", TRANSIENT_STORAGE_CODES)
def test_storage_transient_codes_are_retried_whatever_the_status(code: str, status: int) -> None:
    """S3's 400 RequestTimeout, SlowDown and the like are sent again, as AWS SDKs do."""
    session, seen = _session(s3_error(status, code, "try again"), httpx.Response(200, text="ok"))
    assert _get(session).text == "ok"
    assert len(seen) == 2


def test_local_storage_idle_timeout_is_retried() -> None:
    """LocalStorage's own 400 RequestTimeout (an idle upload it dropped) is sent again."""
    refusal = refused(request_timeout(), body_left=True)
    answer = httpx.Response(refusal.status, headers=dict(refusal.headers), content=refusal.body)
    session, seen = _session(answer, httpx.Response(200, text="ok"))
    assert _get(session).text == "ok"
    assert len(seen) == 2


def test_other_storage_codes_and_quoted_codes_are_final() -> None:
    """Another S3 code, or a JSON answer quoting a transient code, is final at once."""
    quoted = error(422, "VALIDATION_ERROR", "bad filename: <Code>SlowDown</Code>")
    for answer in (s3_error(400, "EntityTooSmall", "too small"), quoted):
        session, seen = _session(answer, httpx.Response(200))
        assert _get(session).status_code == answer.status_code
        assert len(seen) == 1


def test_session_returns_the_last_retryable_answer_when_attempts_run_out() -> None:
    """After the last attempt the 503 itself comes back, to be raised as the API's error."""
    session, seen = _session(*[error(503, "STORAGE_UNAVAILABLE", retry_after=1)] * 5)
    response = _get(session)
    assert (response.status_code, len(seen)) == (503, 5)
    raised = api_error(response)
    assert isinstance(raised, StorageUnavailableError)
    assert raised.retry_after == 1


def test_session_raises_connection_failed_after_the_last_attempt() -> None:
    """Connection failures through every attempt raise ConnectionFailedError, chained."""
    session, seen = _session(*[httpx.ConnectError("refused")] * 5)
    with pytest.raises(ConnectionFailedError) as caught:
        _get(session)
    assert len(seen) == 5
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert caught.value.to_dict()["error_code"] == "CONNECTION_FAILED"


def _undecodable(status: int, **headers: str) -> httpx.Response:
    """An answer claiming a gzip body that is no gzip, read (and found corrupt) by the client."""
    return httpx.Response(
        status,
        headers={"Content-Encoding": "gzip", **headers},
        stream=httpx.ByteStream(b"not gzip"),
    )


def test_an_undecodable_answer_keeps_its_status_with_an_empty_body() -> None:
    """A corrupt body is read as empty: a 502 is still retried, a 200 still a success."""
    session, seen = _session(_undecodable(502), _undecodable(200, ETag='"x"'))
    response = _get(session)
    assert (response.status_code, response.content, len(seen)) == (200, b"", 2)
    assert response.headers["ETag"] == '"x"'
    assert "content-encoding" not in response.headers


def test_a_redirect_loop_is_the_package_error_of_the_api_or_storage() -> None:
    """A redirect loop (no connection failure) raises RecordingError, or StorageError."""

    def loop(request: httpx.Request) -> httpx.Response:
        return httpx.Response(307, headers={"Location": str(request.url)})

    http = httpx.Client(transport=httpx.MockTransport(loop), follow_redirects=True)
    session = Session(http, RetryPolicy())

    def build() -> httpx.Request:
        return http.build_request("PUT", "http://storage.test/part?X-Amz-Signature=secret")

    with pytest.raises(RecordingError) as api:
        session.send(build)
    assert type(api.value) is RecordingError
    assert api.value.details == {"reason": "TooManyRedirects"}
    with pytest.raises(StorageError) as storage:
        session.send(build, storage=True)
    assert storage.value.details == {"storage_error": "TooManyRedirects"}
    assert "secret" not in str(storage.value)
    assert isinstance(storage.value.__cause__, httpx.TooManyRedirects)


def test_api_errors_become_the_package_classes() -> None:
    """Each error_code is rebuilt as its errors.py class, with message and details as sent."""
    incomplete = api_error(error(409, "UPLOAD_INCOMPLETE", "parts missing", missing_parts=[2, 5]))
    assert isinstance(incomplete, UploadIncompleteError)
    assert (incomplete.message, incomplete.details) == ("parts missing", {"missing_parts": [2, 5]})
    assert isinstance(api_error(error(413, "FILE_TOO_LARGE")), FileTooLargeError)
    assert isinstance(api_error(error(422, "VALIDATION_ERROR", errors=[])), ValidationError)
    missing = api_error(error(500, "MISSING_DEPENDENCY", "no boto3", package="boto3", extra="s3"))
    assert isinstance(missing, MissingDependencyError)
    assert missing.details == {"package": "boto3", "extra": "s3"}


@pytest.mark.parametrize("key", ["message", "self", "details", "retry_after"])
def test_details_named_like_an_argument_are_details_as_sent(key: str) -> None:
    """A detail named ``message`` or ``self`` is kept as sent (it raised TypeError)."""
    body = {"message": "refused", "error_code": "BAD_REQUEST", "details": {key: "upstream said no"}}
    raised = api_error(httpx.Response(400, json=body))
    assert type(raised) is RecordingError
    assert (raised.message, raised.details) == ("refused", {key: "upstream said no"})
    assert (raised.error_code, raised.http_status) == ("BAD_REQUEST", 400)


def test_an_unavailable_answer_without_a_usable_retry_after_waits_the_default() -> None:
    """``retry_after`` of a rebuilt UnavailableError is the class default when the body lacks it."""
    bare = api_error(error(503, "STORAGE_UNAVAILABLE", "busy"))
    assert isinstance(bare, StorageUnavailableError)
    assert bare.details == {}
    assert bare.retry_after == StorageUnavailableError.default_retry_after
    for odd in ('"soon"', "null", "true", "-1", "NaN", "Infinity"):
        details = f'{{"retry_after": {odd}}}'
        body = f'{{"message": "x", "error_code": "DATABASE_UNAVAILABLE", "details": {details}}}'
        raised = api_error(httpx.Response(503, content=body.encode()))
        assert isinstance(raised, RepositoryUnavailableError)
        assert raised.retry_after == RepositoryUnavailableError.default_retry_after, odd
    fractional = api_error(error(503, "STORAGE_UNAVAILABLE", retry_after=7.5))
    assert isinstance(fractional, StorageUnavailableError)
    assert fractional.retry_after == 7


def test_unknown_codes_stay_recording_errors_with_their_code() -> None:
    """An unknown code is a plain RecordingError that keeps the server's code and status."""
    raised = api_error(error(401, "UNAUTHORIZED", "token expired"))
    assert type(raised) is RecordingError
    assert (raised.error_code, raised.http_status, raised.message) == (
        "UNAUTHORIZED",
        401,
        "token expired",
    )
    garbled = api_error(httpx.Response(502, text="<html>bad gateway</html>"))
    assert type(garbled) is RecordingError
    assert garbled.to_dict()["error_code"] == "HTTP_502"


def test_storage_refusals_and_expiry() -> None:
    """Storage's XML errors become StorageError; a 403 AccessDenied is an expired URL."""
    expired = s3_error(403, "AccessDenied", "Request has expired")
    assert is_expired_url(expired)
    assert not is_expired_url(s3_error(400, "EntityTooLarge", "too big"))
    assert not is_expired_url(s3_error(403, "SignatureDoesNotMatch", "bad signature"))
    refused = storage_error(s3_error(400, "EntityTooLarge", "too big"))
    assert refused.details == {"storage_error": "EntityTooLarge", "http_status": 400}


def test_a_storage_refusal_reads_its_xml_or_says_so_once() -> None:
    """S3's XML code and message when there are some; one plain sentence when there are none."""
    bare = storage_error(httpx.Response(400))
    assert bare.message == "Storage refused the upload"
    assert bare.details["storage_error"] == "HTTP400"
    xml = storage_error(s3_error(400, "EntityTooSmall", "Your proposed upload is too small"))
    assert xml.message == "Storage refused the upload: Your proposed upload is too small"
    assert xml.details["storage_error"] == "EntityTooSmall"
