"""Fuzz the FastAPI example against its own OpenAPI schema with schemathesis (issue 5).

Every operation the schema documents is fuzzed in process (schemathesis's ASGI
transport, no server, no network) with positive and negative cases from its
examples, coverage and fuzzing phases:

- with a valid bearer token, half the time with the path's ``recording_id``
  swapped for a real recording seeded for that case: the caller's, in every
  state (uploading with and without its audio stored, past its upload
  deadline, uploaded, processing, transcribed, failed before and after the
  upload, soft-deleted), or another user's;
- with no token or a bad one, where every answer must be 401.

On every response: no 5xx, a documented status, a body and content type that
conform to the schema, and an error body of exactly ``{message, error_code,
details}``; with a valid token also schemathesis's other checks but two
(see ``EXCLUDED_CHECKS``). The module's teardown prints how many requests
reached the app.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import enum
import hashlib
import json
import urllib.parse
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import jwt
import pytest
import schemathesis
from examples.fastapi_app.auth import mint_token
from examples.fastapi_app.main import create_app
from hypothesis import HealthCheck, settings
from schemathesis import Case, CheckContext, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.exceptions import StarletteDeprecationWarning
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helppet_recordings import InMemoryRepository, RecordingService, RecordingSettings, policy
from helppet_recordings.storage.local import LocalStorage

with warnings.catch_warnings():
    # Starlette prefers httpx2 for its test client; the project's tests use httpx, which works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

SECRET: Final = "schemathesis-test-secret-" + "0123456789abcdef" * 3
MAX_FILE_SIZE: Final = 64 * 1024
MAX_EXAMPLES: Final = 150
"""Fuzzing-phase cases per operation and test; the examples and coverage phases add theirs."""
SLOW_MACHINES: Final = [HealthCheck.too_slow]
"""CI shares two cores with real servers (and coverage); slow generation is not a failure."""

BASE: Final = "/api/v1/recordings"
USER: Final = uuid.UUID("6f1c2a57-0d4e-4c55-9a53-0b1f0f6f3c01")
STRANGER: Final = uuid.UUID("0a8f5e1d-7c2b-4e3a-8d9f-2b6c4d5e6f70")
APPOINTMENT: Final = uuid.UUID("123e4567-e89b-12d3-a456-426614174000")
ERROR_KEYS: Final = {"message", "error_code", "details"}
AUDIO_PAIRS: Final = [
    (content_type, extension)
    for audio in policy.AUDIO_TYPES
    for content_type in (audio.mime_type, *audio.aliases)
    for extension in audio.extensions
]
"""Content types and filename extensions initiate accepts together."""

FuzzCase = Case[Any]
Check = Callable[[CheckContext, Response, FuzzCase], bool | None]


class Seed(enum.Enum):
    """The states of the real recordings that fuzzed ``recording_id`` values name."""

    UPLOADING = "uploading, nothing stored yet"
    UPLOADING_STORED = "uploading, its audio already in storage"
    UPLOADING_EXPIRED = "uploading, upload deadline passed without audio"
    UPLOADED = "uploaded"
    PROCESSING = "processing"
    TRANSCRIBED = "transcribed"
    FAILED = "failed before any audio arrived"
    FAILED_AFTER_UPLOAD = "failed while processing"
    DELETED = "soft-deleted"
    STRANGERS = "another user's, uploaded"


def _authorize(_user: uuid.UUID, appointment: uuid.UUID | None, _visit: uuid.UUID | None) -> bool:
    """Refuse a quarter of the appointments, so initiate also answers 403 PERMISSION_DENIED."""
    return appointment is None or appointment.int % 4 != 3


class _Clock:
    """The service's clock: real time, moved back a day while seeding an overdue upload."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


class _CountingApp:
    """ASGI middleware counting the HTTP requests that reach the app, by response status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.statuses: collections.Counter[int] = collections.Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.statuses[int(message["status"])] += 1
            await send(message)

        await self.app(scope, receive, counting_send)


class Backend:
    """The app under test on in-memory rows and LocalStorage, and real recordings to aim at."""

    def __init__(self, root: Path) -> None:
        # fsync off: hundreds of tiny seeded uploads, and durability is not under test here.
        self.storage = LocalStorage(
            root, "http://testserver/local-storage", "local-secret-0123456789", fsync=False
        )
        self.clock = _Clock()
        self.service = RecordingService(
            storage=self.storage,
            repository=InMemoryRepository(),
            settings=RecordingSettings(max_file_size=MAX_FILE_SIZE),
            authorize_context=_authorize,
            clock=self.clock,
        )
        self.app = _CountingApp(
            create_app(self.service, jwt_secret=SECRET, local_storage=self.storage)
        )
        self.cases: collections.Counter[str] = collections.Counter()
        self.seeded: collections.Counter[Seed] = collections.Counter()

    def seed(self, state: Seed, size: int) -> uuid.UUID:
        """Create a recording in ``state``, with ``size`` bytes of audio once it has audio."""
        self.seeded[state] += 1
        owner = STRANGER if state is Seed.STRANGERS else USER
        if state is Seed.UPLOADING_EXPIRED:
            self.clock.offset = -dt.timedelta(days=1)
        try:
            ticket = self.service.initiate_upload(
                owner,
                {
                    "appointment_id": APPOINTMENT,
                    "filename": "visit.wav",
                    "content_type": "audio/wav",
                },
            )
        finally:
            self.clock.offset = dt.timedelta()
        rid = ticket.recording_id
        if state is Seed.FAILED:
            self.service.mark_failed(rid, error="the phone gave up")
        if state in {Seed.UPLOADING, Seed.UPLOADING_EXPIRED, Seed.FAILED}:
            return rid
        self._store(ticket.upload_fields, size)
        if state is Seed.UPLOADING_STORED:
            return rid
        self.service.complete_upload(owner, rid, {"file_size_bytes": size})
        if state in {Seed.PROCESSING, Seed.TRANSCRIBED, Seed.FAILED_AFTER_UPLOAD}:
            self.service.start_processing(rid)
        if state is Seed.TRANSCRIBED:
            self.service.record_transcript(rid, text="Max is doing well.", language="en")
        elif state is Seed.FAILED_AFTER_UPLOAD:
            self.service.mark_failed(rid, error="transcription failed")
        elif state is Seed.DELETED:
            self.service.delete_recording(owner, rid)
        return rid

    def _store(self, fields: Mapping[str, str], size: int) -> None:
        """Put ``size`` bytes where the ticket says, as the upload route would."""
        policy = self.storage.verify_upload({name.lower(): value for name, value in fields.items()})
        with self.storage.stage(policy) as staged:
            # a WAV header, then silence: the completion checks the container
            staged.write((b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * size)[:size])
            staged.commit()


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Backend:
    """The app every fuzz case goes to (one per module: state accumulates, as in production)."""
    return Backend(tmp_path_factory.mktemp("schemathesis-storage"))


@pytest.fixture(scope="module", autouse=True)
def report_requests(backend: Backend, request: pytest.FixtureRequest) -> Iterator[None]:
    """Print how many requests the fuzzing made once the module is done; none may be a 5xx."""
    yield
    statuses = backend.app.statuses
    lines = [
        (
            f"schemathesis: {statuses.total()} requests to the FastAPI example "
            f"({len(backend.cases)} operation runs: each operation with and without a valid token)"
        ),
        "  by status: " + ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items())),
        "  by operation: " + ", ".join(f"{op}: {n}" for op, n in sorted(backend.cases.items())),
        "  real recording ids: "
        + ", ".join(f"{s.name.lower()}: {n}" for s, n in backend.seeded.items()),
    ]
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None:
        # Past output capturing, as `capsys.disabled()` does: the figure is wanted on green runs.
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            reporter.write_line("")
            for line in lines:
                reporter.write_line(line)
    assert not [code for code in statuses if code >= 500], statuses
    if backend.seeded:
        assert set(backend.seeded) == set(Seed), backend.seeded  # every state was aimed at


# The schema the example serves at /openapi.json (test_the_fuzzed_schema_is_the_served_one),
# taken from an unconfigured app, which connects nowhere; each call is sent to `backend.app`.
schema = schemathesis.openapi.from_dict(
    create_app().openapi(),
    config=schemathesis.Config.from_dict(
        {
            "generation": {
                # The tests send the Authorization header themselves, good or bad on purpose.
                "with-security-parameters": False,
                # Unknown query parameters are ignored, as by most HTTP APIs (the contract agrees).
                "allow-extra-parameters": False,
            }
        }
    ),
)


# ------------------------------------------------------------------------------ checks


def error_body_shape(_ctx: CheckContext, response: Response, _case: FuzzCase) -> bool | None:
    """Every error answers exactly ``{message, error_code, details}`` with their types."""
    if response.status_code < 400:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"the error body is not JSON: {response.content[:200]!r}") from None
    assert isinstance(body, dict), f"the error body is not an object: {body!r}"
    assert set(body) == ERROR_KEYS, f"error body keys {sorted(body)}, not {sorted(ERROR_KEYS)}"
    assert isinstance(body["message"], str) and body["message"], body
    assert isinstance(body["error_code"], str) and body["error_code"].isupper(), body
    assert isinstance(body["details"], dict), body
    return True


CHECKS: Final[list[Check]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    error_body_shape,
]
"""What every response must pass, with or without a token."""

EXCLUDED_CHECKS: Final[list[Check]] = [
    # Wants 2xx for every schema-valid request, but the schema cannot express the rules the
    # package checks in code (filename characters, checksum formats, sizes up to 2**63 - 1,
    # which FastAPI writes into the schema as the float 2**63); those answer 422
    # VALIDATION_ERROR, in the contract's shape, which error_body_shape checks.
    positive_data_acceptance,
    # Re-sends the request without credentials in a session of its own, which misses the app
    # passed per call and goes to the network; test_fuzz_without_a_valid_token covers this.
    ignored_auth,
]


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _names_another_resource(case: FuzzCase) -> bool:
    """Whether the fuzzed ``recording_id`` changes which route the URL names, or none.

    Clients drop ``.`` and ``..`` segments (RFC 3986) and a ``/`` adds one, so
    ``GET /api/v1/recordings/.`` is a request for the list, not for a recording.
    A path that decodes to an ASCII control character names no route at all
    (``ControlCharacterPathMiddleware``).
    """
    fuzzed = (case.path_parameters or {}).get("recording_id")
    if not isinstance(fuzzed, str):
        return False
    control = any(ord(c) < 0x20 or ord(c) == 0x7F for c in urllib.parse.unquote(fuzzed))
    return fuzzed in {".", ".."} or "/" in fuzzed or control


def _fingerprint(*values: object) -> int:
    """A stable number from generated values, for choices a replayed case makes again."""
    text = repr(values).encode("utf-8", "backslashreplace")
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


def _aim_at_a_real_recording(case: FuzzCase, backend: Backend) -> int | None:
    """Half the time, swap a well-formed ``recording_id`` for a real recording's.

    The state is picked from the fuzzed id; returns the stored audio's size, if any.
    """
    path_parameters = case.path_parameters or {}
    fuzzed = path_parameters.get("recording_id")
    if not _is_uuid(fuzzed):
        return None
    pick = _fingerprint(fuzzed)
    states = list(Seed)
    if pick % (2 * len(states)) >= len(states):
        return None
    size = pick // len(states) % 4 + 12  # a bare WAV header and up to 3 bytes more: small,
    # so complete sometimes declares it exactly
    path_parameters["recording_id"] = str(backend.seed(states[pick % len(states)], size))
    return size


def _make_plausible(case: FuzzCase, stored_size: int | None) -> None:
    """Half the time, turn a schema-valid body into one the service accepts too.

    The schema cannot say which content types go with which filenames, what a
    checksum looks like or how big the stored file is, so random schema-valid
    bodies almost all stop at 415 or 422; these reach authorization (403),
    idempotency, storage checks and the status transitions.
    """
    body = case.body
    meta = case.meta
    if not isinstance(body, dict) or meta is None:
        return
    pick = _fingerprint(body)
    if meta.generation.mode is not GenerationMode.POSITIVE or pick % 2:
        return
    body.pop("content_md5", None)
    body.pop("content_sha256", None)
    if case.operation.path.endswith("/upload/initiate"):
        body["content_type"], extension = AUDIO_PAIRS[pick // 2 % len(AUDIO_PAIRS)]
        body["filename"] = f"visit.{extension}"
    elif stored_size is not None:
        body["file_size_bytes"] = stored_size


def _bad_credentials() -> list[str | None]:
    """``Authorization`` values that name no user: absent, malformed, forged, expired, ..."""
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims = {"sub": str(USER), "exp": now + 86_400}

    def signed(key: str = SECRET, algorithm: str = "HS256", **changes: Any) -> str:
        return "Bearer " + jwt.encode({**claims, **changes}, key, algorithm=algorithm)

    return [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer not-a-jwt",
        "Bearer " + "A" * 9000,
        "Basic " + mint_token(SECRET, USER),
        signed(key="some-other-secret-0123456789abcdef"),
        signed(exp=now - 600),
        signed(sub="nobody"),
        signed(sub=str(uuid.UUID(int=0))),
        signed(algorithm="HS512"),
        signed(key="", algorithm="none"),
        "Bearer " + jwt.encode({"sub": str(USER)}, SECRET, algorithm="HS256"),  # no expiry
        "Bearer " + mint_token(SECRET, USER)[:-2],  # cut short
    ]


BAD_CREDENTIALS: Final = _bad_credentials()


# ------------------------------------------------------------------------------- fuzzing
# No `schema.given(...)`: it would turn off schemathesis's coverage phase (boundary values,
# missing and malformed parameters). Choices beyond the case are made from its values.


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=SLOW_MACHINES)
def test_fuzz_with_a_valid_token(case: FuzzCase, backend: Backend) -> None:
    """Whatever a signed-in caller sends: no 5xx, documented statuses, schema-shaped bodies."""
    if _names_another_resource(case):
        return
    stored_size = _aim_at_a_real_recording(case, backend)
    _make_plausible(case, stored_size)
    case.call_and_validate(
        headers={"Authorization": f"Bearer {mint_token(SECRET, USER)}"},
        additional_checks=[error_body_shape],
        excluded_checks=EXCLUDED_CHECKS,
        app=backend.app,
    )
    backend.cases[case.operation.label] += 1


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=SLOW_MACHINES)
def test_fuzz_without_a_valid_token(case: FuzzCase, backend: Backend) -> None:
    """Whatever else is wrong with a request, no usable token is 401 UNAUTHORIZED first."""
    if _names_another_resource(case):
        return  # routing comes first: such a path may name no route (404)
    pick = _fingerprint(case.path_parameters, case.query, case.body)
    credentials = BAD_CREDENTIALS[pick % len(BAD_CREDENTIALS)]
    headers = None if credentials is None else {"Authorization": credentials}
    response = case.call(headers=headers, app=backend.app)
    backend.cases[f"{case.operation.label} (no valid token)"] += 1
    case.validate_response(response, checks=CHECKS, headers=headers)
    if case.method.upper() != case.operation.method.upper():
        # The coverage phase also tries methods the path does not serve: routing answers
        # first, with no more than the public schema says.
        assert (response.status_code, response.json()["error_code"]) == (
            405,
            "METHOD_NOT_ALLOWED",
        ), response.text
        return
    assert response.status_code == 401, (response.status_code, response.text)
    assert response.json()["error_code"] == "UNAUTHORIZED"
    assert response.headers["www-authenticate"] == ["Bearer"]


def test_the_fuzzed_schema_is_the_served_one(backend: Backend) -> None:
    """The schema fuzzed above is what the app under test serves at /openapi.json."""
    with TestClient(backend.app.app) as client:  # past the counter: not a fuzz request
        assert client.get("/openapi.json").json() == schema.raw_schema


# ----------------------------------------------- what the fuzzing found, pinned down


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """A client of a fresh app, apart from the fuzzed one (its requests are not counted)."""
    with TestClient(Backend(tmp_path).app) as test_client:
        yield test_client


BODY_ROUTES: Final = [
    f"{BASE}/upload/initiate",
    f"{BASE}/upload/complete/{uuid.uuid4()}",
    f"{BASE}/upload/complete/not-a-uuid",
]
UNREADABLE_BODIES: Final = {
    "broken-json": b"{not json",
    "not-utf8": b"\xff\xfe\xfd",
    "not-utf8-either": b"X\xc3\x28",
    "nested-too-deep": b"[" * 50_000,  # deeper than the JSON parser recurses
    "wrong-types": b'{"filename": 5, "file_size_bytes": -1}',
}
NOT_JSON_AT_ALL: Final = ["not-utf8", "not-utf8-either", "nested-too-deep"]


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize("body", UNREADABLE_BODIES)
def test_no_token_is_401_before_the_body_is_read(client: TestClient, path: str, body: str) -> None:
    """FastAPI parses the body before dependencies run: a malformed one used to answer 422."""
    response = client.post(
        path, content=UNREADABLE_BODIES[body], headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401, response.text
    assert response.json() == {
        "message": "Authentication required: send 'Authorization: Bearer <token>'",
        "error_code": "UNAUTHORIZED",
        "details": {},
    }


@pytest.mark.parametrize("body", NOT_JSON_AT_ALL)
def test_a_body_that_is_not_json_at_all_is_a_validation_error(
    client: TestClient, body: str
) -> None:
    """Bodies FastAPI could not decode used to answer an undocumented 400 BAD_REQUEST."""
    response = client.post(
        f"{BASE}/upload/initiate",
        content=UNREADABLE_BODIES[body],
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {mint_token(SECRET, USER)}",
        },
    )
    assert response.status_code == 422, response.text
    assert response.json()["error_code"] == "VALIDATION_ERROR"
    assert response.json()["details"]["errors"] == [
        {
            "field": "",
            "location": "body",
            "message": "The body could not be read as JSON",
            "type": "json_invalid",
        }
    ]
