"""plan_parts: every plan S3 would accept, for every size from 1 byte to the largest upload."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from helppet_recordings.multipart import (
    MAX_PART_SIZE,
    MAX_PARTS,
    MIB,
    MIN_PART_SIZE,
    PREFERRED_PART_SIZE,
    PartPlan,
    plan_parts,
)

LARGEST = MAX_PARTS * MAX_PART_SIZE


def assert_valid(plan: PartPlan, size: int, *, min_part_size: int, max_parts: int) -> None:
    """Fail unless ``plan`` cuts ``size`` bytes into parts S3 accepts, contiguous and numbered."""
    parts = plan.parts
    assert 1 <= len(parts) <= max_parts
    assert [part.part_number for part in parts] == list(range(1, len(parts) + 1))
    assert sum(part.size for part in parts) == size == plan.size
    offset = 0
    for part in parts:
        assert part.offset == offset
        offset += part.size
    assert all(part.size == plan.part_size for part in parts[:-1])
    assert 1 <= parts[-1].size <= plan.part_size <= MAX_PART_SIZE
    if len(parts) > 1:
        assert plan.part_size >= min_part_size
    else:
        assert plan.part_size == size


@given(st.integers(min_value=1, max_value=LARGEST))
@example(1)
@example(MIN_PART_SIZE - 1)
@example(PREFERRED_PART_SIZE)
@example(PREFERRED_PART_SIZE + 1)
@example(MAX_PARTS * PREFERRED_PART_SIZE)
@example(MAX_PARTS * PREFERRED_PART_SIZE + 1)
@example(LARGEST - 1)
@example(LARGEST)
def test_every_size_gets_a_valid_plan(size: int) -> None:
    """Any size from 1 byte to 10,000 x 5 GiB is planned into parts S3 accepts."""
    plan = plan_parts(size)
    assert_valid(plan, size, min_part_size=MIN_PART_SIZE, max_parts=MAX_PARTS)


@given(
    size=st.integers(min_value=1, max_value=10 * MIB),
    min_part_size=st.integers(min_value=1, max_value=2 * MIB),
    max_parts=st.integers(min_value=1, max_value=50),
    preferred=st.integers(min_value=1, max_value=MIB),
)
def test_plans_with_other_limits_are_valid(
    size: int, min_part_size: int, max_parts: int, preferred: int
) -> None:
    """Smaller limits (as a test server needs) still give valid plans within them."""
    plan = plan_parts(
        size, min_part_size=min_part_size, max_parts=max_parts, preferred_part_size=preferred
    )
    assert_valid(plan, size, min_part_size=min_part_size, max_parts=max_parts)


def test_preferred_part_size_is_used_when_it_fits() -> None:
    """A 20 MiB upload is two 8 MiB parts and a 4 MiB last part."""
    plan = plan_parts(20 * MIB)
    assert plan.part_size == 8 * MIB
    assert [part.size for part in plan.parts] == [8 * MIB, 8 * MIB, 4 * MIB]
    assert plan.part(3).offset == 16 * MIB


def test_large_upload_raises_the_part_size_to_whole_mebibytes() -> None:
    """Beyond 10,000 x 8 MiB the part size grows, in whole MiB, to stay within 10,000 parts."""
    plan = plan_parts(MAX_PARTS * PREFERRED_PART_SIZE + 1)
    assert plan.part_size == 9 * MIB
    assert len(plan.parts) <= MAX_PARTS


def test_small_upload_is_one_part_of_its_own_size() -> None:
    """An upload below 5 MiB is one part whose size is the upload's."""
    plan = plan_parts(1000)
    assert plan.part_size == 1000
    assert plan.parts == ((1, 0, 1000),)


@pytest.mark.parametrize("size", [0, -1, LARGEST + 1])
def test_impossible_sizes_are_refused(size: int) -> None:
    """Empty uploads and uploads over 10,000 x 5 GiB raise ValueError."""
    with pytest.raises(ValueError, match="upload"):
        plan_parts(size)


@pytest.mark.parametrize(
    "limits",
    [{"min_part_size": 0}, {"max_parts": 0}, {"preferred_part_size": 0}],
)
def test_limits_below_one_are_refused(limits: dict[str, int]) -> None:
    """A limit of 0 raises ValueError."""
    with pytest.raises(ValueError, match="at least 1"):
        plan_parts(100, **limits)


def test_part_outside_the_plan_is_a_key_error() -> None:
    """part(0) and part(n + 1) raise KeyError."""
    plan = plan_parts(20 * MIB)
    with pytest.raises(KeyError):
        plan.part(0)
    with pytest.raises(KeyError):
        plan.part(4)
