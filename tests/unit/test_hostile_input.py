"""Hostile input: every malformed value gets a clear 4xx RecordingError and changes nothing."""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helppet_recordings import (
    RecordingError,
    RecordingService,
    RecordingStatus,
    SqlAlchemyRepository,
    ValidationError,
)
from tests.support.uploads import upload_key
from tests.unit.conftest import Harness

USER = uuid.UUID("5f0c6c1e-0a7e-4b8e-9d5e-0c2b7b7f1a01")
GOOD_INITIATE = {"filename": "visit.m4a", "content_type": "audio/mp4"}
M4A_16 = b"\x00\x00\x00\x10ftypM4A \x00\x00\x00\x00"  # 16 bytes that begin an MP4 file

HUGE = "A" * 10_000
WEIRD_STRINGS = [
    "",
    " ",
    "\x00",
    "\n",
    "../../../etc/passwd",
    "..\\..\\windows\\system32",
    "/absolute/path.m4a",
    "a/b.m4a",
    "x\u202egpj.m4a",
    "\ufeffbom.m4a",
    "zero\u200bwidth.m4a",
    "\ud800.m4a",
    "\u2028.m4a",
    "con\x7f.m4a",
    "<script>alert(1)</script>",
    HUGE,
    HUGE + ".m4a",
    "😀" * 300,
]
WRONG_TYPES: list[Any] = [None, 0, -1, 1.5, True, [], {}, ["a"], {"a": 1}]
BAD_NUMBERS: list[Any] = [
    -1,
    -1e-9,
    float("nan"),
    float("inf"),
    float("-inf"),
    10**30,
    -(10**30),
    2**63,
    "1",
    "NaN",
    True,
    None,
    [],
]
BAD_UUIDS: list[Any] = [
    "",
    "not-a-uuid",
    "0",
    str(uuid.UUID(int=0)),
    "123e4567-e89b-12d3-a456-42661417400",
    "123e4567-e89b-12d3-a456-4266141740000",
    "{" * 40,
    HUGE,
    1,
    [],
]


def _deep(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {}
    root = node
    for _ in range(levels):
        node["n"] = {}
        node = node["n"]
    return root


BAD_METADATA: list[Any] = [
    "string",
    ["list"],
    1,
    {"big": HUGE},
    {"n": float("nan")},
    {"n": float("inf")},
    _deep(9),
    _deep(5000),
    {"a": "\ud800"},
    {"\udfff": 1},
    {"a": ["x\ud800y"]},
    {str(i): i for i in range(1000)},
]


def initiate_cases() -> list[dict[str, Any]]:
    """Initiate bodies that must each be refused."""
    cases: list[dict[str, Any]] = []
    cases += [{**GOOD_INITIATE, "filename": s} for s in WEIRD_STRINGS]
    cases += [{**GOOD_INITIATE, "filename": v} for v in WRONG_TYPES]
    cases += [
        {**GOOD_INITIATE, "content_type": s}
        for s in [*WEIRD_STRINGS, "text/html", "audio/*", "AUDIO/MP4X"]
    ]
    cases += [{**GOOD_INITIATE, "content_type": v} for v in WRONG_TYPES]
    cases += [{**GOOD_INITIATE, "appointment_id": v} for v in BAD_UUIDS]
    cases += [{**GOOD_INITIATE, "visit_id": v} for v in BAD_UUIDS]
    cases += [{**GOOD_INITIATE, "recording_type": v} for v in ["", "VISIT_AUDIO", HUGE, 1, None]]
    cases += [
        {**GOOD_INITIATE, "estimated_duration_seconds": v} for v in BAD_NUMBERS if v is not None
    ]
    cases += [{**GOOD_INITIATE, "idempotency_key": v} for v in ["", " ", HUGE, "a/b", "\x00", 1]]
    cases += [{**GOOD_INITIATE, "content_md5": v} for v in ["", "zz", HUGE, "0" * 31, 1]]
    cases += [{k: v for k, v in GOOD_INITIATE.items() if k != field} for field in GOOD_INITIATE]
    return cases


def complete_cases() -> list[dict[str, Any]]:
    """Complete bodies that must each be refused."""
    cases: list[dict[str, Any]] = [{}]
    cases += [{"file_size_bytes": v} for v in BAD_NUMBERS]
    cases += [{"file_size_bytes": 16, "duration_seconds": v} for v in BAD_NUMBERS if v is not None]
    cases += [{"file_size_bytes": 16, "recording_metadata": v} for v in BAD_METADATA]
    cases += [{"file_size_bytes": 16, "content_sha256": v} for v in ["", "x" * 64, HUGE]]
    return cases


INITIATE_CASES = initiate_cases()
COMPLETE_CASES = complete_cases()


def _state(h: Harness) -> list[Any]:
    return h.repository.list_by_key(prefix="", after=None, limit=10_000)


def _refused(exc: RecordingError) -> None:
    assert 400 <= exc.http_status < 500
    body = exc.to_dict()
    assert set(body) == {"message", "error_code", "details"}
    json.dumps(body)  # the error body is always serializable
    assert HUGE not in json.dumps(body)


def test_hostile_initiates_are_refused(harness: Harness) -> None:
    """Every hostile initiate body is a 4xx RecordingError and creates nothing."""
    for body in INITIATE_CASES:
        with pytest.raises(RecordingError) as info:
            harness.service.initiate_upload(USER, body)
        _refused(info.value)
    assert _state(harness) == []
    assert len(INITIATE_CASES) > 100


def test_hostile_completes_are_refused(harness: Harness) -> None:
    """Every hostile complete body is a 4xx RecordingError and changes nothing."""
    ticket = harness.service.initiate_upload(USER, GOOD_INITIATE)
    harness.put(upload_key(ticket), M4A_16)
    before = _state(harness)
    for body in COMPLETE_CASES:
        with pytest.raises(RecordingError) as info:
            harness.service.complete_upload(USER, ticket.recording_id, body)
        _refused(info.value)
    assert _state(harness) == before
    assert len(COMPLETE_CASES) > 35


@pytest.mark.parametrize(
    ("field", "value"),
    [("text", "a\x00b"), ("text", "a\ud800"), ("service", "w\x00"), ("error", "boom\udc00")],
)
def test_text_no_database_can_store_is_refused(harness: Harness, field: str, value: str) -> None:
    """NUL and unpaired surrogates in worker-supplied text are VALIDATION_ERROR, not a crash."""
    ticket = harness.service.initiate_upload(USER, GOOD_INITIATE)
    harness.put(upload_key(ticket), M4A_16)
    harness.service.complete_upload(USER, ticket.recording_id, {"file_size_bytes": 16})
    harness.service.start_processing(ticket.recording_id)
    rid = ticket.recording_id
    kwargs: dict[str, Any] = {"text": "ok", field: value}

    def call() -> object:
        if field == "error":
            return harness.service.mark_failed(rid, error=value)
        return harness.service.record_transcript(rid, **kwargs)

    with pytest.raises(ValidationError) as info:
        call()
    _refused(info.value)
    assert (
        harness.service.get_recording(USER, ticket.recording_id).status
        is RecordingStatus.PROCESSING
    )


def test_undecodable_metadata_is_refused_on_sql(harness: Harness) -> None:
    """A lone surrogate in metadata is a 422, never a driver encoding crash."""
    repository = SqlAlchemyRepository.from_url("sqlite://")
    repository.create_schema()
    service = RecordingService(harness.storage, repository, harness.service.settings)
    ticket = service.initiate_upload(USER, GOOD_INITIATE)
    harness.put(upload_key(ticket), M4A_16)
    with pytest.raises(ValidationError):
        service.complete_upload(
            USER,
            ticket.recording_id,
            {"file_size_bytes": 16, "recording_metadata": {"k": "\ud800"}},
        )
    metadata = {"k": "Zoë 🐶", "nul": "a\x00b"}  # JSON escapes NUL: every database stores it
    done = service.complete_upload(
        USER, ticket.recording_id, {"file_size_bytes": 16, "recording_metadata": metadata}
    )
    assert done.recording_metadata == metadata
    assert service.get_recording(USER, ticket.recording_id).recording_metadata == metadata
    repository.close()


@pytest.mark.parametrize(
    "filename",
    ["%2e%2e%2f.m4a", "'; DROP TABLE recordings; --", "Robert'); DROP TABLE x;--.m4a", "Zoë.m4a"],
)
def test_odd_but_harmless_filenames_are_kept_verbatim(harness: Harness, filename: str) -> None:
    """Text that is only dangerous if misused is stored as given and never reaches the key."""
    ticket = harness.service.initiate_upload(USER, {**GOOD_INITIATE, "filename": filename})
    assert harness.service.get_recording(USER, ticket.recording_id).original_filename == filename
    assert filename not in ticket.s3_key
    assert "%" not in ticket.s3_key
    assert "'" not in ticket.s3_key


def test_hostile_ids_and_arguments_are_refused(harness: Harness) -> None:
    """Malformed ids, paging and filters are 4xx for every operation that takes them."""
    ticket = harness.service.initiate_upload(USER, GOOD_INITIATE)
    before = _state(harness)
    calls = 0
    for bad in BAD_UUIDS:
        for call in (
            lambda v: harness.service.get_recording(USER, v),
            lambda v: harness.service.get_download_url(USER, v),
            lambda v: harness.service.delete_recording(USER, v),
            lambda v: harness.service.renew_upload(USER, v),
            lambda v: harness.service.complete_upload(USER, v, {"file_size_bytes": 1}),
            lambda v: harness.service.get_recording(v, ticket.recording_id),
            lambda v: harness.service.list_recordings(USER, appointment_id=v),
            harness.service.start_processing,
            lambda v: harness.service.mark_failed(v, error="x"),
        ):
            with pytest.raises(RecordingError) as info:
                call(bad)
            _refused(info.value)
            calls += 1
    paging = [{"limit": v} for v in [0, -1, 10**9, 1.5, "10", None, True]]
    paging += [{"offset": v} for v in [-1, 2**31, 10**30, 1.5, "0", None]]
    for kwargs in paging:
        with pytest.raises(RecordingError):
            harness.service.list_recordings(USER, **kwargs)  # type: ignore[arg-type]
        calls += 1
    for status in ["", "UPLOADED", "deleted", HUGE, 3]:
        with pytest.raises(RecordingError):
            harness.service.list_recordings(USER, status=status)  # type: ignore[arg-type]
        calls += 1
    assert _state(harness) == before
    assert calls > 90


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=300)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
initiate_bodies = st.fixed_dictionaries(
    {},
    optional={
        "filename": st.text(max_size=300) | json_values,
        "content_type": st.sampled_from(["audio/mp4", "audio/m4a", "Audio/WAV; x=y"])
        | st.text(max_size=50)
        | json_values,
        "appointment_id": st.uuids().map(str) | json_values,
        "visit_id": st.uuids().map(str) | json_values,
        "recording_type": st.sampled_from(["visit_audio", "dictation"]) | json_values,
        "estimated_duration_seconds": st.floats() | json_values,
        "idempotency_key": st.text(max_size=130) | json_values,
        "content_md5": st.text(max_size=40) | json_values,
    },
)
complete_bodies = st.fixed_dictionaries(
    {},
    optional={
        "file_size_bytes": st.integers(min_value=-5, max_value=2**40) | json_values,
        "duration_seconds": st.floats() | json_values,
        "recording_metadata": json_values,
        "content_md5": st.text(max_size=40) | json_values,
    },
)


@settings(
    max_examples=400,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=initiate_bodies)
def test_fuzzed_initiates_never_escape_as_other_errors(
    harness: Harness, body: dict[str, Any]
) -> None:
    """Whatever the body, initiate succeeds or raises a 4xx RecordingError; rows match outcomes."""
    before = len(_state(harness))
    try:
        response = harness.service.initiate_upload(USER, body)
    except RecordingError as exc:
        _refused(exc)
        assert len(_state(harness)) == before
    else:
        row = harness.repository.get(response.recording_id)
        assert row is not None
        assert row.status is RecordingStatus.UPLOADING


@settings(
    max_examples=400,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=complete_bodies)
def test_fuzzed_completes_never_escape_as_other_errors(
    harness: Harness, body: dict[str, Any]
) -> None:
    """Whatever the body, complete answers with a RecordingError or a verified upload."""
    ticket = harness.service.initiate_upload(USER, GOOD_INITIATE)
    harness.put(upload_key(ticket), M4A_16)
    try:
        done = harness.service.complete_upload(USER, ticket.recording_id, body)
    except RecordingError as exc:
        _refused(exc)
        assert (
            harness.service.get_recording(USER, ticket.recording_id).status
            is RecordingStatus.UPLOADING
        )
    else:
        assert done.file_size_bytes == 16
        size = body.get("file_size_bytes")
        assert size == 16
        assert not isinstance(size, bool)
        assert not (
            isinstance(body.get("duration_seconds"), float) and math.isnan(body["duration_seconds"])
        )
