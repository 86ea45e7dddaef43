"""S3Storage's direct reads: completion's ranged GET presigned, on the client's HTTP session.

moto answers the client's requests at botocore's ``before-send`` event, which
the direct read emits as the client does, so it answers both paths here; the
same comparison runs on SeaweedFS in ``tests/e2e/test_s3_seaweedfs.py``.
Counting ``before-call`` (emitted by API calls only) tells which path answered.
"""

from __future__ import annotations

import datetime as dt
import http.server
import io
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import boto3
import botocore.awsrequest
import botocore.compat
import botocore.config
import botocore.exceptions
import pytest

from helppet_recordings import S3Storage, StorageUnavailableError
from helppet_recordings.storage.s3._direct import URL_EXPIRES_IN, DirectReads
from tests.support.moto_s3 import BUCKET, moto_bucket

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

AUDIO = b"RIFF\x24\x08\x00\x00WAVEfmt " + bytes(range(256)) * 8


@pytest.fixture
def s3_client() -> Iterator[S3Client]:
    """A client of an in-process S3 holding one empty bucket."""
    with moto_bucket() as client:
        yield client


def api_calls(client: S3Client) -> list[str]:
    """The S3 API calls the client makes from now on (direct reads are none of them)."""
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    client.meta.events.register("before-call.s3", record)
    return calls


def answer_presigned(client: S3Client, answer: Callable[[Any], Any]) -> None:
    """Let ``answer`` reply to the direct reads (presigned requests) before anything else does."""

    def handler(request: Any, **_: Any) -> Any:
        return answer(request) if "X-Amz-Signature=" in request.url else None

    client.meta.events.register_first("before-send.s3.GetObject", handler)


def response(status: int, body: bytes, **headers: str) -> botocore.awsrequest.AWSResponse:
    """An HTTP answer as botocore's session gives it (a streaming body)."""
    raw = io.BytesIO(body)
    fields = botocore.compat.HTTPHeaders.from_dict(headers)
    return botocore.awsrequest.AWSResponse("http://s3.test/", status, fields, raw)


def test_same_answer_as_the_api_call_without_one(s3_client: S3Client) -> None:
    """Headers, size, ETag, encryption, version, time and bytes equal GetObject's; no API call."""
    s3_client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3_client.put_object(
        Bucket=BUCKET,
        Key="a/k.wav",
        Body=AUDIO,
        ContentType="audio/wav",
        ServerSideEncryption="AES256",
    )
    direct = S3Storage(BUCKET, client=s3_client)
    through_api = S3Storage(BUCKET, client=s3_client, direct_reads=False)
    calls = api_calls(s3_client)
    for length in (16, len(AUDIO), len(AUDIO) + 100):
        found = direct.head_and_read("a/k.wav", length=length)
        assert calls == []
        assert found is not None
        assert found == through_api.head_and_read("a/k.wav", length=length)
        calls.clear()
        stored, first = found
        assert first == AUDIO[:length]
        assert (stored.size, stored.content_type, stored.server_side_encryption) == (
            len(AUDIO),
            "audio/wav",
            "AES256",
        )
        assert stored.version_id is not None
        assert stored.last_modified is not None
        assert stored.last_modified.utcoffset() is not None


def test_kms_key_is_reported_as_by_the_api_call(s3_client: S3Client) -> None:
    """SSE-KMS headers (encryption and key id) come back as GetObject names them."""
    key_id = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    s3_client.put_object(
        Bucket=BUCKET, Key="kms.wav", Body=AUDIO, ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id
    )
    found = S3Storage(BUCKET, client=s3_client).head_and_read("kms.wav", length=4)
    assert found is not None
    assert found == S3Storage(BUCKET, client=s3_client, direct_reads=False).head_and_read(
        "kms.wav", length=4
    )
    assert (found[0].server_side_encryption, found[0].kms_key_id) == ("aws:kms", key_id)


def test_the_url_is_signed_for_a_minute(s3_client: S3Client) -> None:
    """The presigned URL carries the client's SigV4 signature and expires in URL_EXPIRES_IN."""
    s3_client.put_object(Bucket=BUCKET, Key="k.wav", Body=AUDIO)
    seen: list[str] = []
    answer_presigned(s3_client, lambda request: seen.append(request.url))
    assert S3Storage(BUCKET, client=s3_client).head_and_read("k.wav", length=4) is not None
    (url,) = seen
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
    assert f"X-Amz-Expires={URL_EXPIRES_IN}" in url


def test_missing_and_empty_objects_are_answered_by_the_api_call(s3_client: S3Client) -> None:
    """404 and 416 are not a plain success: GetObject then says absent, or empty (with a HEAD)."""
    s3_client.put_object(Bucket=BUCKET, Key="empty.wav", Body=b"", ContentType="audio/wav")
    storage = S3Storage(BUCKET, client=s3_client)
    calls = api_calls(s3_client)
    assert storage.head_and_read("absent.wav", length=4) is None
    assert calls == ["GetObject"]
    calls.clear()
    found = storage.head_and_read("empty.wav", length=4)
    assert found is not None
    assert (found[0].size, found[1]) == (0, b"")
    assert calls == ["GetObject", "HeadObject"]


@pytest.mark.parametrize(
    "failure",
    [
        lambda _request: response(503, b"<Error><Code>SlowDown</Code></Error>"),
        lambda _request: response(403, b"<Error><Code>AccessDenied</Code></Error>"),
        lambda request: (_ for _ in ()).throw(
            botocore.exceptions.EndpointConnectionError(endpoint_url=request.url)
        ),
    ],
    ids=["server-error", "refused", "connection-error"],
)
def test_any_other_answer_is_asked_again_through_the_api_call(
    s3_client: S3Client, failure: Callable[[Any], Any]
) -> None:
    """A failed direct read changes nothing: GetObject answers, with its retries and errors."""
    s3_client.put_object(Bucket=BUCKET, Key="k.wav", Body=AUDIO, ContentType="audio/wav")
    answer_presigned(s3_client, failure)
    calls = api_calls(s3_client)
    found = S3Storage(BUCKET, client=s3_client).head_and_read("k.wav", length=4)
    assert found is not None
    assert (found[0].size, found[1]) == (len(AUDIO), b"RIFF")
    assert calls == ["GetObject"]


def test_an_outage_is_still_unavailable(s3_client: S3Client) -> None:
    """When GetObject fails too, the error is the API call's: STORAGE_UNAVAILABLE."""
    answer_presigned(s3_client, lambda _request: response(503, b""))

    def outage(**_: Any) -> Any:
        raise botocore.exceptions.EndpointConnectionError(endpoint_url="http://s3.test/")

    s3_client.meta.events.register_first("before-send.s3.GetObject", outage)
    with pytest.raises(StorageUnavailableError):
        S3Storage(BUCKET, client=s3_client).head_and_read("k.wav", length=4)


def test_a_server_ignoring_the_range(s3_client: S3Client) -> None:
    """A 200 with the whole object: its Content-Length is the size; only ``length`` bytes kept."""
    answer_presigned(
        s3_client,
        lambda _request: response(
            200, AUDIO, **{"Content-Length": str(len(AUDIO)), "Content-Type": "audio/wav"}
        ),
    )
    calls = api_calls(s3_client)
    found = S3Storage(BUCKET, client=s3_client).head_and_read("k.wav", length=4)
    assert calls == []
    assert found is not None
    assert (found[0].size, found[0].content_type, found[1]) == (len(AUDIO), "audio/wav", b"RIFF")


def test_a_bad_date_is_asked_again_through_the_api_call(s3_client: S3Client) -> None:
    """A header the direct read cannot parse is not guessed at: GetObject answers."""
    s3_client.put_object(Bucket=BUCKET, Key="k.wav", Body=AUDIO)
    answer_presigned(
        s3_client,
        lambda _request: response(
            206, b"RIFF", **{"Content-Range": "bytes 0-3/9", "Last-Modified": "soon"}
        ),
    )
    calls = api_calls(s3_client)
    found = S3Storage(BUCKET, client=s3_client).head_and_read("k.wav", length=4)
    assert calls == ["GetObject"]
    assert found is not None
    assert found[0].size == len(AUDIO)


def test_a_client_without_an_http_session_uses_the_api_call(
    s3_client: S3Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the client's HTTP session (a private botocore attribute), reads are API calls."""
    s3_client.put_object(Bucket=BUCKET, Key="k.wav", Body=AUDIO)
    monkeypatch.setattr(s3_client._endpoint, "http_session", None)  # type: ignore[attr-defined]
    assert DirectReads(s3_client, BUCKET).head_and_read("k.wav", 4) is None
    calls = api_calls(s3_client)
    found = S3Storage(BUCKET, client=s3_client).head_and_read("k.wav", length=4)
    assert calls == ["GetObject"]
    assert found is not None


def test_a_date_in_minus_zero_form_is_utc(s3_client: S3Client) -> None:
    """``-0000`` (UTC by RFC 5322) is read as UTC, as botocore reads it, not as a naive time."""
    answer_presigned(
        s3_client,
        lambda _request: response(
            206,
            b"RIFF",
            **{"Content-Range": "bytes 0-3/9", "Last-Modified": "Wed, 21 Oct 2015 07:28:00 -0000"},
        ),
    )
    found = S3Storage(BUCKET, client=s3_client).head_and_read("k.wav", length=4)
    assert found is not None
    assert found[0].last_modified == dt.datetime(2015, 10, 21, 7, 28, tzinfo=dt.UTC)


class _CountingS3(http.server.BaseHTTPRequestHandler):
    """Answers every GET with S3's 404 ``NoSuchKey``, on keep-alive connections it counts."""

    protocol_version = "HTTP/1.1"
    connections = 0
    requests: ClassVar[list[bool]] = []  # per request: was it presigned (a direct read)?

    def setup(self) -> None:
        type(self).connections += 1
        super().setup()

    def log_message(self, *_: Any) -> None:
        pass

    def do_GET(self) -> None:
        type(self).requests.append("X-Amz-Signature=" in self.path)
        body = b"<?xml version='1.0'?><Error><Code>NoSuchKey</Code><Message>gone</Message></Error>"
        self.send_response(404)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_an_error_answer_leaves_its_connection_to_the_api_call() -> None:
    """A 404's short body is read to its end: the API call asked next reuses the connection."""
    counting: type[_CountingS3] = type("CountingS3", (_CountingS3,), {"requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), counting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=botocore.config.Config(
                signature_version="s3v4", s3={"addressing_style": "path"}
            ),
        )
        storage = S3Storage(BUCKET, client=client)
        for _ in range(3):
            assert storage.head_and_read("absent.wav", length=16) is None
        assert counting.requests == [True, False] * 3  # each direct read, then GetObject
        assert counting.connections == 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
