"""``s3.checksum_tickets``: the server must refuse a POST whose body has another SHA-256.

Tickets that pin the file's SHA-256 name the recording's final key; that is
safe only because storage refuses a body with another digest (AWS S3 and
SeaweedFS answer ``400 BadDigest``). A server that ignores the checksum
fields would let a replayed ticket overwrite verified audio. The check signs
a ticket for a fresh probe key under the staging prefix (where no recording
lives and the lifecycle rule expires leftovers), pins the SHA-256 of one body
and POSTs another, then deletes whatever the server may have stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import TYPE_CHECKING, Any, Final

from helppet_recordings.cli.doctor._common import (
    _MESSAGE_LIMIT,
    DOCTOR_S3_OPTIONS,
    _finding,
    _first_line,
)
from helppet_recordings.cli.findings import Finding, Status
from helppet_recordings.errors import RecordingError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from helppet_recordings.environment import DeploymentSettings
    from helppet_recordings.storage.s3 import S3Storage

CHECK: Final = "s3.checksum_tickets"
PROBE_DIRECTORY: Final = ".doctor/"
"""Where, under the staging prefix, the probe object is written (never a recording's key)."""

PINNED_BODY: Final = b"helppet-recordings doctor: the body the ticket pins\n"
SENT_BODY: Final = b"helppet-recordings doctor: not the pinned body\n"
_CONTENT_TYPE: Final = "application/octet-stream"
_EXPIRES_IN: Final = 120

DIGEST_MISMATCH_CODES: Final = frozenset(
    {"BadDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch"}
)
"""S3 error codes meaning the body's checksum is not the one declared.

``BadDigest`` from AWS S3 and SeaweedFS, ``XAmzContentChecksumMismatch`` from MinIO.
"""

_MISMATCH_WORDS: Final = re.compile(r"(digest|checksum|sha256).*mismatch|bad.*digest", re.I)
_XML_CODE: Final = re.compile(rb"<Code>\s*([^<]{1,100}?)\s*</Code>")
_XML_MESSAGE: Final = re.compile(rb"<Message>\s*([^<]{0,300}?)\s*</Message>")

_TURN_OFF: Final = "set HELPPET_S3_CHECKSUM_TICKETS=0 (S3Storage(checksum_tickets=False))"
_UNCHECKED_FIX: Final = (
    "run doctor again once the POST gets through; until the server is known to refuse a "
    "body whose SHA-256 differs from the ticket's, " + _TURN_OFF
)


def probe_key(environment: DeploymentSettings) -> str:
    """Return a fresh probe key: ``<S3_RECORDINGS_PREFIX>staging/.doctor/checksum-probe-<hex>``."""
    staging = environment.recording.s3_staging_prefix
    return f"{staging}{PROBE_DIRECTORY}checksum-probe-{secrets.token_hex(8)}"


def _check_checksum_tickets(storage: S3Storage, environment: DeploymentSettings) -> Finding:
    """POST a body the ticket's SHA-256 does not match; the server must refuse it."""
    import botocore.awsrequest  # noqa: PLC0415
    import botocore.exceptions  # noqa: PLC0415
    import urllib3  # noqa: PLC0415 - botocore's HTTP stack; encodes the form

    pinning = storage.pins_checksums
    key = probe_key(environment)
    try:
        ticket = storage.create_upload(
            key=key,
            content_type=_CONTENT_TYPE,
            max_size=max(len(PINNED_BODY), len(SENT_BODY)),
            expires_in=_EXPIRES_IN,
            sha256=hashlib.sha256(PINNED_BODY).hexdigest(),
        )
    except RecordingError as exc:
        return _unchecked(f"the probe ticket could not be signed: {exc.message}", pinning=pinning)
    fields: list[tuple[str, Any]] = list(ticket.fields.items())
    fields.append(("file", ("probe", SENT_BODY, _CONTENT_TYPE)))  # S3 wants the file last
    body, content_type = urllib3.encode_multipart_formdata(fields)
    request = botocore.awsrequest.AWSRequest(
        method="POST", url=ticket.url, data=body, headers={"Content-Type": content_type}
    )
    try:
        response = _http_session(storage.client, ticket.url).send(request.prepare())
    except botocore.exceptions.BotoCoreError as exc:
        note = _delete_probe(storage, key)  # the body may have landed before the error
        return _unchecked(
            f"the POST to {ticket.url} failed: {_first_line(exc)}{note}", pinning=pinning
        )
    status = int(response.status_code)
    content: bytes = response.content or b""
    code = _xml_text(_XML_CODE, content)
    if 400 <= status < 500 and _says_digest_mismatch(code):
        return _refused(status, code, pinning=pinning)
    note = _delete_probe(storage, key)
    if 200 <= status < 300:
        return _stored(status, note, pinning=pinning)
    return _unchecked(
        f"the server answered {status} {_answer(code, content)}{note}", pinning=pinning
    )


def _refused(status: int, code: str, *, pinning: bool) -> Finding:
    message = (
        f"the server refuses a body whose SHA-256 differs from the ticket's ({status} {code}); "
    )
    if pinning:
        return _finding(CHECK, Status.OK, message + "pinned tickets may name the final key")
    return _finding(
        CHECK,
        Status.OK,
        message + "checksum tickets are off (HELPPET_S3_CHECKSUM_TICKETS), so every upload "
        "goes through a staging key; they may be turned on",
    )


def _stored(status: int, note: str, *, pinning: bool) -> Finding:
    found = (
        f"the server stored a body whose SHA-256 differs from the ticket's ({status}): it "
        "ignores the checksum fields of a POST"
    )
    if pinning:
        return _finding(
            CHECK,
            Status.FAIL,
            f"{found}, so a replayed ticket could overwrite verified audio{note}",
            _TURN_OFF,
        )
    return _finding(
        CHECK,
        Status.WARN,
        f"{found}; checksum tickets are off (HELPPET_S3_CHECKSUM_TICKETS) and must stay "
        f"off with this server{note}",
        "keep HELPPET_S3_CHECKSUM_TICKETS=0 (S3Storage(checksum_tickets=False))",
    )


def _unchecked(reason: str, *, pinning: bool) -> Finding:
    state = "" if pinning else " (checksum tickets are off: HELPPET_S3_CHECKSUM_TICKETS)"
    return _finding(
        CHECK,
        Status.WARN,
        f"could not check{state}: {reason}",
        _UNCHECKED_FIX if pinning else None,
    )


def _says_digest_mismatch(code: str) -> bool:
    return code in DIGEST_MISMATCH_CODES or bool(_MISMATCH_WORDS.search(code))


def _xml_text(pattern: re.Pattern[bytes], content: bytes) -> str:
    found = pattern.search(content)
    return found.group(1).decode("utf-8", "replace") if found else ""


def _answer(code: str, content: bytes) -> str:
    """Return the gist of the answer: its S3 error code and message, else its first line."""
    if code:
        message = _xml_text(_XML_MESSAGE, content)
        return f"{code}: {message}" if message else code
    lines = [line.strip() for line in content.decode("utf-8", "replace").splitlines()]
    first = next((line for line in lines if line), "")
    return first[:_MESSAGE_LIMIT] if first else "with no body"


def _delete_probe(storage: S3Storage, key: str) -> str:
    """Delete the probe object (absent is fine); return a note for the message if that failed."""
    try:
        storage.delete(key)
    except RecordingError as exc:
        return f"; the probe object {key} could not be deleted ({exc.message}): delete it"
    return ""


def _http_session(client: S3Client, url: str) -> Any:
    """Return the client's own HTTP session (its TLS, proxy and timeout settings), else a new one.

    ``send`` takes a prepared ``AWSRequest`` and raises only botocore's errors.
    """
    import botocore.httpsession  # noqa: PLC0415
    import botocore.session  # noqa: PLC0415
    import botocore.utils  # noqa: PLC0415

    from helppet_recordings.storage.s3._direct import client_http_session  # noqa: PLC0415

    session = client_http_session(client)
    if session is not None:
        return session
    bundle = botocore.session.get_session().get_config_variable("ca_bundle")
    # botocore takes (connect, read) as its clients do; its stubs say an int.
    timeout: Any = (DOCTOR_S3_OPTIONS["connect_timeout"], DOCTOR_S3_OPTIONS["read_timeout"])
    return botocore.httpsession.URLLib3Session(
        verify=bundle or True,
        proxies=getattr(client.meta.config, "proxies", None)
        or botocore.utils.get_environ_proxies(url),
        timeout=timeout,
    )
