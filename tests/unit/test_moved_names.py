"""Names moved to a module of their own stay importable from the module they were in."""

from __future__ import annotations

import importlib

import pytest

# (former module, module the names live in now, the names)
MOVED = [
    (
        "helppet_recordings.audio.probe",
        "helppet_recordings.audio._limits",
        ("MAX_CHANNELS", "MAX_FRAME_SECONDS", "MAX_SAMPLE_RATE", "MIN_SAMPLE_RATE"),
    ),
    (
        "helppet_recordings.ports",
        "helppet_recordings.storage_capabilities",
        ("ChecksumPinning", "EncryptionChecking", "HeadAndRead", "PinnedReads"),
    ),
]


@pytest.mark.parametrize(("former", "now", "names"), MOVED, ids=[row[0] for row in MOVED])
def test_a_moved_name_is_still_exported_where_it_was(
    former: str, now: str, names: tuple[str, ...]
) -> None:
    """Each moved public name is the same object in both modules and in the former's __all__."""
    old, new = importlib.import_module(former), importlib.import_module(now)
    for name in names:
        assert getattr(old, name) is getattr(new, name), name
        assert name in old.__all__, name
