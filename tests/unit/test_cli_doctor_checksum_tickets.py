"""doctor's ``s3.checksum_tickets`` against answers real servers seldom give.

A small HTTP server on 127.0.0.1 plays the storage server: it answers the
probe's POST as each test says and records every request, so odd answers
(403, 5xx, another 400, a failing delete) and the probe's own form can be
checked. What SeaweedFS and moto really answer is tested in
tests/e2e/test_cli_s3.py.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import threading
import types
from collections.abc import Iterator
from typing import TYPE_CHECKING

import attrs
import boto3
import botocore.awsrequest
import pytest
from botocore.config import Config

from helppet_recordings import S3Storage
from helppet_recordings.cli.doctor.checksum_tickets import (
    PINNED_BODY,
    SENT_BODY,
    _check_checksum_tickets,
    _http_session,
)
from helppet_recordings.cli.findings import Finding, Status
from helppet_recordings.environment import DeploymentSettings
from tests.support.servers import HOST, free_ports

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = "clinic-audio"
PROBE_PREFIX = "recordings/staging/.doctor/checksum-probe-"


def _error(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()


@attrs.define
class FakeStorageServer:
    """What the server answers to a POST and a DELETE, and what it was sent."""

    url: str = ""
    post_status: int = 204
    post_body: bytes = b""
    delete_status: int = 204
    requests: list[tuple[str, str, bytes]] = attrs.Factory(list)

    def paths(self, method: str) -> list[str]:
        """The paths of the requests sent with ``method``."""
        return [path for sent, path, _ in self.requests if sent == method]


@pytest.fixture
def fake() -> Iterator[FakeStorageServer]:
    """The small storage server, on a free port of 127.0.0.1, for one test."""
    state = FakeStorageServer()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, status: int, body: bytes) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state.requests.append((self.command, self.path, self.rfile.read(length)))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self._answer(state.post_status, state.post_body)

        def do_DELETE(self) -> None:
            self._answer(state.delete_status, b"")

        def do_GET(self) -> None:
            self._answer(200, b"hello")

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            """Keep the test output clean."""

    server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
    state.url = f"http://{HOST}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def client_for(endpoint: str) -> S3Client:
    """A SigV4 client for the endpoint that gives up after one attempt."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="doctor-key",
        aws_secret_access_key="doctor-secret",
        region_name="us-east-1",
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=2,
            read_timeout=5,
            retries={"mode": "standard", "max_attempts": 1},
        ),
    )


def check(endpoint: str, *, tickets: bool = True) -> Finding:
    """Run the check with storage on ``endpoint`` and checksum tickets on or off."""
    environment = DeploymentSettings.from_env(
        {
            "HELPPET_STORAGE": "s3",
            "S3_BUCKET_NAME": BUCKET,
            "HELPPET_S3_CHECKSUM_TICKETS": str(tickets),
        }
    )
    storage = S3Storage(BUCKET, client=client_for(endpoint), checksum_tickets=tickets)
    return _check_checksum_tickets(storage, environment)


def test_the_probe_pins_one_body_and_sends_another_under_staging(
    fake: FakeStorageServer,
) -> None:
    """The form pins PINNED_BODY's SHA-256, carries SENT_BODY last, for a staging probe key."""
    fake.post_status, fake.post_body = 400, _error("BadDigest", "no")
    first, second = check(fake.url), check(fake.url)
    assert first.status is second.status is Status.OK
    (form, other) = [body for method, _, body in fake.requests if method == "POST"]
    pinned = base64.b64encode(hashlib.sha256(PINNED_BODY).digest())
    assert pinned in form
    assert b"SHA256" in form
    assert SENT_BODY in form
    assert PINNED_BODY not in form
    assert form.index(b'name="file"') > form.index(b'name="policy"')
    keys = [
        line
        for body in (form, other)
        for line in body.split(b"\r\n")
        if PROBE_PREFIX.encode() in line
    ]
    assert len(set(keys)) == 2  # a fresh key each time
    assert fake.paths("DELETE") == []  # a refused body left nothing to delete


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, _error("BadDigest", "The SHA256 you specified did not match"), Status.OK),
        (400, _error("XAmzContentChecksumMismatch", "checksum mismatch"), Status.OK),
        (400, _error("InvalidArgument", "x-amz-checksum-algorithm not supported"), Status.WARN),
        (403, _error("AccessDenied", "Invalid according to Policy"), Status.WARN),
        (503, b"upstream down\nsecond line", Status.WARN),
        (301, b"", Status.WARN),
        (200, b"", Status.FAIL),
    ],
)
def test_each_answer_has_its_status(
    fake: FakeStorageServer, status: int, body: bytes, expected: Status
) -> None:
    """Only a digest mismatch passes, a stored body fails; the rest is "could not check"."""
    fake.post_status, fake.post_body = status, body
    finding = check(fake.url)
    assert finding.status is expected, finding
    assert finding.check == "s3.checksum_tickets"
    if expected is Status.OK:
        assert fake.paths("DELETE") == []
        return
    (deleted,) = fake.paths("DELETE")
    assert deleted.startswith(f"/{BUCKET}/{PROBE_PREFIX}")
    assert finding.fix is not None
    assert "HELPPET_S3_CHECKSUM_TICKETS=0" in finding.fix
    if expected is Status.WARN:
        assert finding.message.startswith(f"could not check: the server answered {status} ")


def test_the_answer_is_quoted_by_its_first_line_or_its_error(fake: FakeStorageServer) -> None:
    """An XML error gives its code and message; text gives its first line only."""
    fake.post_status, fake.post_body = 503, b"\nupstream down\nsecond line"
    text = check(fake.url)
    fake.post_status, fake.post_body = 403, _error("AccessDenied", "Invalid according to Policy")
    xml = check(fake.url)
    assert text.message == "could not check: the server answered 503 upstream down"
    assert xml.message == (
        "could not check: the server answered 403 AccessDenied: Invalid according to Policy"
    )


def test_with_tickets_off_a_stored_body_warns_and_unchecked_needs_no_fix(
    fake: FakeStorageServer,
) -> None:
    """Tickets off: a stored body is a warning that they must stay off; an odd answer says so."""
    fake.post_status = 204
    stored = check(fake.url, tickets=False)
    fake.post_status = 500
    unchecked = check(fake.url, tickets=False)
    assert stored.status is Status.WARN
    assert "must stay off with this server" in stored.message
    assert unchecked.status is Status.WARN
    assert unchecked.message.startswith(
        "could not check (checksum tickets are off: HELPPET_S3_CHECKSUM_TICKETS): "
    )
    assert unchecked.fix is None
    assert len(fake.paths("DELETE")) == 2


def test_a_probe_that_cannot_be_deleted_is_named(fake: FakeStorageServer) -> None:
    """The server stored the probe and refuses to delete it: the key is in the message."""
    fake.post_status, fake.delete_status = 204, 403
    finding = check(fake.url)
    assert finding.status is Status.FAIL
    (deleted,) = fake.paths("DELETE")
    key = deleted.removeprefix(f"/{BUCKET}/")
    assert f"; the probe object {key} could not be deleted (S3 refused the request (403))" in (
        finding.message
    )


def test_an_unreachable_server_is_a_warning_not_a_traceback() -> None:
    """Nothing listens: "could not check", naming the POST's URL; the delete failed too."""
    (port,) = free_ports(1)
    endpoint = f"http://{HOST}:{port}"
    finding = check(endpoint)
    assert finding.status is Status.WARN
    assert finding.message.startswith(
        f"could not check: the POST to {endpoint}/{BUCKET} failed: Could not connect"
    )
    assert "could not be deleted (S3 could not be reached; retry later)" in finding.message


def test_without_the_client_s_session_a_new_one_is_used(fake: FakeStorageServer) -> None:
    """A client that exposes no HTTP session of its own still gets one that sends."""
    client = client_for(fake.url)
    session = _http_session(types.SimpleNamespace(meta=client.meta), fake.url)  # type: ignore[arg-type]
    assert session is not getattr(client, "_endpoint").http_session  # noqa: B009
    request = botocore.awsrequest.AWSRequest(method="GET", url=fake.url + "/")
    response = session.send(request.prepare())
    assert (response.status_code, response.content) == (200, b"hello")
    assert _http_session(client, fake.url) is getattr(client, "_endpoint").http_session  # noqa: B009
