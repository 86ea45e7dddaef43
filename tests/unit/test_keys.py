"""Key naming: properties that hold for every input."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helppet_recordings.keys import UNASSIGNED_CONTEXT, build_key, normalize_prefix, parse_key
from helppet_recordings.policy import AUDIO_TYPES

prefix_segments = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,12}", fullmatch=True).filter(
    lambda s: ".." not in s
)
prefixes = st.lists(prefix_segments, max_size=3).map(
    lambda parts: "/".join(parts) + "/" if parts else ""
)
times = st.datetimes(
    min_value=dt.datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
    max_value=dt.datetime(2200, 1, 1),  # noqa: DTZ001
    timezones=st.sampled_from(
        [
            dt.UTC,
            dt.timezone(dt.timedelta(hours=-8)),
            dt.timezone(dt.timedelta(hours=5, minutes=30)),
        ]
    ),
)
extensions = st.sampled_from([a.extension for a in AUDIO_TYPES])
optional_ids = st.none() | st.uuids()


@given(prefixes, st.uuids(), optional_ids, optional_ids, extensions, times)
def test_keys_are_safe_and_round_trip(
    prefix: str,
    user: uuid.UUID,
    appointment: uuid.UUID | None,
    visit: uuid.UUID | None,
    extension: str,
    created: dt.datetime,
) -> None:
    """A key starts with the user's prefix, never holds '..', and parses back to its parts."""
    key = build_key(
        prefix=prefix,
        user_id=user,
        appointment_id=appointment,
        visit_id=visit,
        extension=extension,
        created_at=created,
    )
    assert key.startswith(f"{prefix}{user}/")
    assert ".." not in key
    assert "//" not in key
    assert not key.startswith("/")
    parts = parse_key(key, prefix=prefix)
    assert parts is not None
    assert parts.user_id == user
    assert parts.appointment_id == appointment
    assert parts.visit_id == (visit if appointment is None else None)
    assert parts.extension == extension
    assert parts.created_at == created.astimezone(dt.UTC).replace(microsecond=0)
    if appointment is None and visit is None:
        assert f"/{UNASSIGNED_CONTEXT}/" in key


@given(st.text(min_size=1, max_size=60), st.uuids(), times)
def test_filenames_never_reach_the_key(
    filename: str, user: uuid.UUID, created: dt.datetime
) -> None:
    """Whatever the client called its file, the key is built only from ids, time and randomness."""
    key = build_key(prefix="recordings/", user_id=user, extension="m4a", created_at=created)
    tail = key.rsplit("/", 1)[-1]
    assert tail.endswith(".m4a")
    stem = tail.removesuffix(".m4a")
    assert len(stem) == len("20261124_093015_") + 16
    if len(filename) >= 4 and filename not in key:
        assert filename not in tail


def test_keys_are_unique_within_one_second() -> None:
    """10,000 keys for the same user, context and second are all distinct."""
    now = dt.datetime.now(dt.UTC)
    user = uuid.uuid4()
    keys = {
        build_key(prefix="r/", user_id=user, extension="m4a", created_at=now) for _ in range(10_000)
    }
    assert len(keys) == 10_000


def test_context_prefers_appointment_then_visit() -> None:
    """The context segment is the appointment, else the visit, else 'unassigned'."""
    now = dt.datetime(2024, 12, 19, 14, 30, 22, tzinfo=dt.UTC)
    user, appointment, visit = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    both = build_key(
        prefix="recordings/",
        user_id=user,
        appointment_id=appointment,
        visit_id=visit,
        extension="m4a",
        created_at=now,
        token="abc123abc123abc1",
    )
    assert (
        both == f"recordings/{user}/appointment-{appointment}/20241219_143022_abc123abc123abc1.m4a"
    )
    only_visit = build_key(
        prefix="recordings/", user_id=user, visit_id=visit, extension="m4a", created_at=now
    )
    assert f"/visit-{visit}/" in only_visit


@pytest.mark.parametrize(
    ("prefix", "normalized"),
    [
        ("recordings/", "recordings/"),
        ("recordings", "recordings/"),
        ("/a/b/", "a/b/"),
        ("", ""),
        ("/", ""),
    ],
)
def test_prefix_normalization(prefix: str, normalized: str) -> None:
    """Prefixes are stored as 'a/b/' or ''."""
    assert normalize_prefix(prefix) == normalized


@pytest.mark.parametrize(
    "prefix", ["../x/", "a/../b", "a//b", "a/./b", "x../", "a b/", "a\\b/", "ü/"]
)
def test_unsafe_prefixes_are_refused(prefix: str) -> None:
    """A prefix that could escape or confuse the key space is refused."""
    with pytest.raises(ValueError, match="unsafe"):
        normalize_prefix(prefix)


def test_naive_times_are_refused() -> None:
    """Key timestamps are UTC; a naive time is a programming error."""
    naive = dt.datetime(2026, 1, 1)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="timezone"):
        build_key(prefix="", user_id=uuid.uuid4(), extension="m4a", created_at=naive)


@pytest.mark.parametrize(
    "key",
    [
        "other/x",
        "recordings/not-a-uuid/unassigned/20260101_000000_0123456789abcdef.m4a",
        "recordings/",
    ],
)
def test_foreign_keys_do_not_parse(key: str) -> None:
    """Keys the package did not make are recognised as such."""
    assert parse_key(key, prefix="recordings/") is None
