"""S3Storage mechanics on in-process S3 (moto), and botocore errors translated."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config
from botocore.response import StreamingBody
from botocore.stub import Stubber

from helppet_recordings import S3Storage, StorageError, StorageUnavailableError
from helppet_recordings.ports import RecordingStorage
from helppet_recordings.testing.storage_contract import (
    PinnedReadsContract,
    PromoteContract,
    PutObject,
    StorageContract,
)
from tests.support.moto_s3 import BUCKET, moto_bucket, s3v4_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@pytest.fixture
def s3_client() -> Iterator[S3Client]:
    """An in-process S3 with the recordings bucket."""
    with moto_bucket() as client:
        yield client


class TestS3StorageOnMoto(StorageContract, PromoteContract, PinnedReadsContract):
    @pytest.fixture
    def storage(self, s3_client: S3Client) -> RecordingStorage:
        """S3Storage over moto, which ignores copy conditions."""
        return S3Storage(BUCKET, client=s3_client, copy_source_if_match=False)

    @pytest.fixture
    def put_object(self, s3_client: S3Client) -> PutObject:
        """Store an object as a finished POST upload would (moto cannot enforce the policy)."""

        def put(key: str, body: bytes, content_type: str) -> None:
            s3_client.put_object(
                Bucket=BUCKET,
                Key=key,
                Body=body,
                ContentType=content_type,
                ServerSideEncryption="AES256",
            )

        return put


def _policy(fields: dict[str, str]) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.b64decode(fields["policy"]))
    return decoded


def test_policy_pins_bucket_key_type_encryption_size_and_expiry(s3_client: S3Client) -> None:
    """The signed policy holds exactly the conditions the contract lists."""
    storage = S3Storage(BUCKET, client=s3_client)
    before = dt.datetime.now(dt.UTC)
    ticket = storage.create_upload(
        key="recordings/u/c/a.m4a", content_type="audio/m4a", max_size=1234, expires_in=900
    )
    policy = _policy(dict(ticket.fields))
    conditions = policy["conditions"]
    assert {"bucket": BUCKET} in conditions
    assert {"key": "recordings/u/c/a.m4a"} in conditions
    assert {"Content-Type": "audio/m4a"} in conditions
    assert {"x-amz-server-side-encryption": "AES256"} in conditions
    assert ["content-length-range", 1, 1234] in conditions
    assert not any(isinstance(c, list) and c[0] == "starts-with" for c in conditions)
    expiration = dt.datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert dt.timedelta(seconds=895) <= expiration - before <= dt.timedelta(seconds=905)
    assert ticket.fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    assert ticket.fields["x-amz-server-side-encryption"] == "AES256"
    assert {"x-amz-credential", "x-amz-date", "x-amz-signature"} <= set(ticket.fields)


def test_aws_urls_are_virtual_hosted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an endpoint the upload URL is the bucket's virtual-hosted AWS address."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    storage = S3Storage(BUCKET, region_name="us-east-1")
    ticket = storage.create_upload(key="k.m4a", content_type="audio/mp4", max_size=9, expires_in=60)
    assert ticket.url == f"https://{BUCKET}.s3.amazonaws.com/"
    assert storage.client.meta.config.signature_version == "s3v4"  # type: ignore[attr-defined]


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"])
def test_endpoint_from_environment_uses_path_style(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """An endpoint from the standard environment switches to path-style addressing."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    storage = S3Storage(BUCKET)
    ticket = storage.create_upload(key="k.m4a", content_type="audio/mp4", max_size=9, expires_in=60)
    assert ticket.url == f"http://127.0.0.1:9/{BUCKET}"
    url = storage.create_download_url(
        key="k.m4a", expires_in=60, content_type="audio/mp4", filename="k.m4a"
    )
    assert url.startswith(f"http://127.0.0.1:9/{BUCKET}/k.m4a?")
    assert "X-Amz-Signature=" in url


def test_sigv2_client_is_refused() -> None:
    """A client that would presign with SigV2 is refused with a clear message."""
    sigv2 = boto3.client("s3", region_name="us-east-1", config=Config(signature_version="s3"))
    with pytest.raises(ValueError, match="s3v4"):
        S3Storage(BUCKET, client=sigv2)


def test_client_without_an_explicit_signature_version_is_refused() -> None:
    """boto3's default client says ``s3v4`` yet presigns POSTs with SigV2: refused.

    The same client with ``Config(signature_version="s3v4")`` is accepted and
    its tickets carry SigV4 fields.
    """
    default = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="AKID", aws_secret_access_key="secret"
    )
    assert default.meta.config.signature_version == "s3v4"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="s3v4"):
        S3Storage(BUCKET, client=default)
    explicit = boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="AKID",
        aws_secret_access_key="secret",
        config=Config(signature_version="s3v4"),
    )
    ticket = S3Storage(BUCKET, client=explicit).create_upload(
        key="k.m4a", content_type="audio/mp4", max_size=9, expires_in=60
    )
    assert ticket.fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"


def test_download_url_carries_type_and_disposition(s3_client: S3Client) -> None:
    """The presigned GET overrides Content-Type and names the download (RFC 6266)."""
    storage = S3Storage(BUCKET, client=s3_client)
    url = storage.create_download_url(
        key="recordings/a.m4a", expires_in=120, content_type="audio/mp4", filename='Zoë "B".m4a'
    )
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["response-content-type"] == ["audio/mp4"]
    (disposition,) = query["response-content-disposition"]
    assert disposition.startswith('attachment; filename="Zo_ _B_.m4a"; ')
    assert disposition.endswith("filename*=UTF-8''Zo%C3%AB%20%22B%22.m4a")
    assert query["response-cache-control"] == ["private, no-store"]
    assert query["X-Amz-Expires"] == ["120"]


# --- botocore errors translated at the boundary ---------------------------------------


@pytest.fixture
def stubbed() -> Iterator[tuple[S3Storage, Stubber]]:
    """S3Storage over a client whose answers the test scripts (as API calls: no direct reads)."""
    client = s3v4_client()
    with Stubber(client) as stubber:
        yield S3Storage(BUCKET, client=client, direct_reads=False), stubber


@pytest.mark.parametrize("code", ["404", "NoSuchKey", "NotFound"])
def test_head_not_found_is_none(stubbed: tuple[S3Storage, Stubber], code: str) -> None:
    """Every spelling of not-found means no object."""
    storage, stubber = stubbed
    stubber.add_client_error("head_object", service_error_code=code, http_status_code=404)
    assert storage.head("k") is None


# --- head_and_read: one ranged GET ------------------------------------------------------


def _get(body: bytes, **headers: Any) -> dict[str, Any]:
    return {
        "Body": StreamingBody(io.BytesIO(body), len(body)),
        "ContentLength": len(body),
        "ContentType": "audio/wav",
        "ETag": '"0123456789abcdef0123456789abcdef"',
        "ServerSideEncryption": "AES256",
        **headers,
    }


def test_head_and_read_takes_the_size_from_content_range(
    stubbed: tuple[S3Storage, Stubber],
) -> None:
    """The size is the total of ``Content-Range``, not the length of the part read."""
    storage, stubber = stubbed
    stubber.add_response(
        "get_object",
        _get(b"RIFF", ContentRange="bytes 0-3/52000"),
        {"Bucket": BUCKET, "Key": "k", "Range": "bytes=0-3"},
    )
    found = storage.head_and_read("k", length=4)
    assert found is not None
    stored, first = found
    assert first == b"RIFF"
    assert (stored.key, stored.size, stored.content_type, stored.md5) == (
        "k",
        52000,
        "audio/wav",
        "0123456789abcdef0123456789abcdef",
    )
    assert (stored.server_side_encryption, stored.sha256, stored.crc64nvme) == (
        "AES256",
        None,
        None,
    )


def test_head_and_read_of_a_server_ignoring_the_range(stubbed: tuple[S3Storage, Stubber]) -> None:
    """A 200 with the whole object: its Content-Length is the size; only ``length`` bytes kept."""
    storage, stubber = stubbed
    stubber.add_response("get_object", _get(b"RIFF....WAVE"))
    found = storage.head_and_read("k", length=4)
    assert found is not None
    assert (found[0].size, found[1]) == (12, b"RIFF")


@pytest.mark.parametrize("code", ["NoSuchKey", "404"])
def test_head_and_read_of_a_missing_object_is_none(
    stubbed: tuple[S3Storage, Stubber], code: str
) -> None:
    """Not found is None, as for head."""
    storage, stubber = stubbed
    stubber.add_client_error("get_object", service_error_code=code, http_status_code=404)
    assert storage.head_and_read("k", length=4) is None


def test_head_and_read_of_an_empty_object_heads_it(stubbed: tuple[S3Storage, Stubber]) -> None:
    """An empty object has no byte 0 (416 InvalidRange): HEAD reports it, with no bytes."""
    storage, stubber = stubbed
    stubber.add_client_error("get_object", service_error_code="InvalidRange", http_status_code=416)
    stubber.add_response("head_object", {"ContentLength": 0, "ContentType": "audio/wav"})
    found = storage.head_and_read("k", length=4)
    assert found is not None
    assert (found[0].size, found[1]) == (0, b"")


def test_head_and_read_outage_is_unavailable(stubbed: tuple[S3Storage, Stubber]) -> None:
    """A 503 is STORAGE_UNAVAILABLE, as for every other call."""
    storage, stubber = stubbed
    stubber.add_client_error("get_object", service_error_code="SlowDown", http_status_code=503)
    with pytest.raises(StorageUnavailableError):
        storage.head_and_read("k", length=4)


def test_head_and_read_needs_a_length(stubbed: tuple[S3Storage, Stubber]) -> None:
    """A length under 1 is a programming error, refused before any request."""
    storage, _ = stubbed
    with pytest.raises(ValueError, match="length"):
        storage.head_and_read("k", length=0)


# --- read_pinned: ranged GETs with If-Match ---------------------------------------------

_ETAG = "0123456789abcdef0123456789abcdef"


def test_a_pinned_read_sends_the_etag_as_if_match(stubbed: tuple[S3Storage, Stubber]) -> None:
    """The GET names the range and the verified ETag (quoted, as S3 writes ETags)."""
    storage, stubber = stubbed
    stubber.add_response(
        "get_object",
        _get(b"RIFF"),
        {"Bucket": BUCKET, "Key": "k", "Range": "bytes=8-11", "IfMatch": f'"{_ETAG}"'},
    )
    assert storage.read_pinned("k", etag=_ETAG, offset=8, length=4) == b"RIFF"
    stubber.assert_no_pending_responses()


def test_a_server_ignoring_if_match_cannot_hand_over_another_object(
    stubbed: tuple[S3Storage, Stubber],
) -> None:
    """An answer whose own ETag is not the one asked for is None: its bytes are not returned."""
    storage, stubber = stubbed
    stubber.add_response("get_object", _get(b"EVIL", ETag='"fedcba9876543210fedcba9876543210"'))
    assert storage.read_pinned("k", etag=_ETAG, offset=0, length=4) is None


@pytest.mark.parametrize(("code", "status"), [("PreconditionFailed", 412), ("NoSuchKey", 404)])
def test_a_pinned_read_of_another_or_no_object_is_none(
    stubbed: tuple[S3Storage, Stubber], code: str, status: int
) -> None:
    """412 (the object has another ETag) and 404 are None, not errors."""
    storage, stubber = stubbed
    stubber.add_client_error("get_object", service_error_code=code, http_status_code=status)
    assert storage.read_pinned("k", etag=_ETAG, offset=0, length=4) is None


def test_a_pinned_read_outage_is_unavailable(stubbed: tuple[S3Storage, Stubber]) -> None:
    """A 503 is STORAGE_UNAVAILABLE, as for every other call."""
    storage, stubber = stubbed
    stubber.add_client_error("get_object", service_error_code="SlowDown", http_status_code=503)
    with pytest.raises(StorageUnavailableError):
        storage.read_pinned("k", etag=_ETAG, offset=0, length=4)


def test_the_built_client_pools_forty_connections_unless_told() -> None:
    """The pool holds 40 connections (a uvicorn worker's threads; botocore: 10), or as told."""
    default = S3Storage(BUCKET, region_name="us-east-1")
    sized = S3Storage(BUCKET, region_name="us-east-1", max_pool_connections=64)
    assert getattr(default.client.meta.config, "max_pool_connections", None) == 40
    assert getattr(sized.client.meta.config, "max_pool_connections", None) == 64


@pytest.mark.parametrize(
    ("code", "status"),
    [("SlowDown", 503), ("ServiceUnavailable", 503), ("InternalError", 500), ("Weird", 502)],
)
def test_throttling_and_server_errors_are_retryable(
    stubbed: tuple[S3Storage, Stubber], code: str, status: int
) -> None:
    """Throttling and 5xx answers are STORAGE_UNAVAILABLE with a retry_after."""
    storage, stubber = stubbed
    stubber.add_client_error("head_object", service_error_code=code, http_status_code=status)
    with pytest.raises(StorageUnavailableError) as info:
        storage.head("k")
    assert info.value.error_code == "STORAGE_UNAVAILABLE"
    assert info.value.http_status == 503
    assert info.value.retry_after > 0
    assert isinstance(info.value.__cause__, botocore.exceptions.ClientError)


def test_retry_after_header_is_honoured(stubbed: tuple[S3Storage, Stubber]) -> None:
    """A Retry-After from S3 is passed on to the caller."""
    storage, stubber = stubbed
    stubber.add_client_error(
        "delete_object",
        service_error_code="SlowDown",
        http_status_code=503,
        response_meta={"HTTPHeaders": {"retry-after": "17"}},
    )
    with pytest.raises(StorageUnavailableError) as info:
        storage.delete("k")
    assert info.value.details["retry_after"] == 17


def test_access_denied_is_a_storage_error(stubbed: tuple[S3Storage, Stubber]) -> None:
    """A refusal that retrying cannot fix is STORAGE_ERROR, not unavailable."""
    storage, stubber = stubbed
    stubber.add_client_error("head_object", service_error_code="AccessDenied", http_status_code=403)
    with pytest.raises(StorageError) as info:
        storage.head("k")
    assert not isinstance(info.value, StorageUnavailableError)
    assert info.value.details["storage_error"] == "AccessDenied"


def test_unreachable_endpoint_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed port is STORAGE_UNAVAILABLE, chained to botocore's connection error."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    storage = S3Storage(
        BUCKET, endpoint_url="http://127.0.0.1:9", max_attempts=1, connect_timeout=1
    )
    for call in (
        lambda: storage.head("k"),
        lambda: storage.delete("k"),
        lambda: list(storage.iter_objects("r/")),
    ):
        with pytest.raises(StorageUnavailableError) as info:
            call()
        assert isinstance(info.value.__cause__, botocore.exceptions.EndpointConnectionError)


def test_missing_credentials_is_a_storage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Presigning without credentials fails with a clear STORAGE_ERROR."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    storage = S3Storage(BUCKET, region_name="us-east-1")
    with pytest.raises(StorageError, match="NoCredentialsError"):
        storage.create_upload(key="k", content_type="audio/mp4", max_size=1, expires_in=60)


# --- the cached POST signer ---------------------------------------------------------------


def _client_for(region: str, endpoint: str | None, token: str | None = None) -> S3Client:
    style: Literal["path", "virtual"] = "path" if endpoint else "virtual"
    return boto3.client(
        "s3",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        aws_session_token=token,
        config=Config(signature_version="s3v4", s3={"addressing_style": style}),
    )


def _comparable(post: Any) -> tuple[str, set[str], list[Any]]:
    fields = dict(post["fields"])
    return post["url"], set(fields), _policy(fields)["conditions"]


@pytest.mark.parametrize(
    ("region", "endpoint", "token"),
    [
        ("us-east-1", None, None),
        ("eu-central-1", None, None),
        ("us-east-1", "http://127.0.0.1:8333", None),
        ("us-west-2", None, "FwoGZXIvYXdzEXAMPLETOKEN"),
    ],
)
def test_cached_signer_matches_boto3(region: str, endpoint: str | None, token: str | None) -> None:
    """The fast path gives the same URL, fields and policy as generate_presigned_post."""
    client = _client_for(region, endpoint, token)
    storage = S3Storage(BUCKET, client=client)
    key = "recordings/u/appointment-x/20261124_093015_0123456789abcdef.m4a"
    ticket = storage.create_upload(key=key, content_type="audio/mp4", max_size=99, expires_in=300)
    reference = client.generate_presigned_post(
        Bucket=BUCKET,
        Key=key,
        Fields={"Content-Type": "audio/mp4", "x-amz-server-side-encryption": "AES256"},
        Conditions=[
            {"Content-Type": "audio/mp4"},
            {"x-amz-server-side-encryption": "AES256"},
            ["content-length-range", 1, 99],
        ],
        ExpiresIn=300,
    )
    assert _comparable({"url": ticket.url, "fields": ticket.fields}) == _comparable(reference)
    assert ticket.fields["x-amz-credential"].split("/")[2] == region
    assert ("x-amz-security-token" in ticket.fields) is (token is not None)
    assert storage._post_signer.cached


def test_signer_falls_back_to_boto3_when_internals_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    """If botocore's internals are not as expected, tickets come from the public API."""
    client = _client_for("us-east-1", None)
    real = client._resolve_endpoint_ruleset  # type: ignore[attr-defined]

    def changed_once(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(client, "_resolve_endpoint_ruleset", real)
        raise TypeError("internals changed")

    monkeypatch.setattr(client, "_resolve_endpoint_ruleset", changed_once)
    storage = S3Storage(BUCKET, client=client)
    assert not storage._post_signer.cached
    ticket = storage.create_upload(key="k.m4a", content_type="audio/mp4", max_size=9, expires_in=60)
    assert ticket.url == f"https://{BUCKET}.s3.amazonaws.com/"
    assert {"key": "k.m4a"} in _policy(dict(ticket.fields))["conditions"]


def test_cached_signer_uses_fresh_credentials(s3_client: S3Client) -> None:
    """Each ticket is signed at the moment it is made: two tickets differ only in time fields."""
    storage = S3Storage(BUCKET, client=s3_client)
    first = storage.create_upload(key="a.m4a", content_type="audio/mp4", max_size=9, expires_in=60)
    second = storage.create_upload(key="b.m4a", content_type="audio/mp4", max_size=9, expires_in=60)
    assert first.fields["key"] == "a.m4a"
    assert second.fields["key"] == "b.m4a"
    assert {"key": "a.m4a"} not in _policy(dict(second.fields))["conditions"]


@pytest.mark.parametrize("blank", ["", "   ", "\n"])
def test_a_blank_endpoint_variable_counts_as_unset(
    monkeypatch: pytest.MonkeyPatch, blank: str
) -> None:
    """A blank endpoint variable is unset, as for every variable: AWS, virtual-hosted.

    botocore, left to read the variable itself, takes whitespace for an
    endpoint and refuses it (``Invalid endpoint``).
    """
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", blank)
    monkeypatch.setenv("AWS_ENDPOINT_URL", blank)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    storage = S3Storage(BUCKET, region_name="us-east-1")
    ticket = storage.create_upload(key="k.m4a", content_type="audio/mp4", max_size=9, expires_in=60)
    assert ticket.url == f"https://{BUCKET}.s3.amazonaws.com/"


def test_an_endpoint_variable_is_read_stripped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret file's trailing newline, or a blank S3-specific variable, leave the endpoint."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "  ")
    monkeypatch.setenv("AWS_ENDPOINT_URL", " http://127.0.0.1:9\n")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    storage = S3Storage(BUCKET)
    ticket = storage.create_upload(key="k.m4a", content_type="audio/mp4", max_size=9, expires_in=60)
    assert ticket.url == f"http://127.0.0.1:9/{BUCKET}"


def test_an_empty_endpoint_variable_leaves_the_profiles_endpoint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``AWS_ENDPOINT_URL_S3=`` is unset: the profile's ``endpoint_url`` still applies.

    A compose file's ``${X:-}`` writes such a variable; boto3 alone ignores it too.
    """
    config = tmp_path / "config"
    config.write_text(
        "[profile clinic]\nregion = eu-west-1\nendpoint_url = http://127.0.0.1:8333\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "clinic")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    storage = S3Storage(BUCKET)
    assert storage.client.meta.endpoint_url == "http://127.0.0.1:8333"
