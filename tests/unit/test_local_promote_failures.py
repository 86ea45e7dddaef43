"""LocalStorage promote when a move fails: the source and the target keep what they held."""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from helppet_recordings.errors import StorageError, StorageUnavailableError
from helppet_recordings.storage.local.keys import Layout
from helppet_recordings.storage.local.objects import ObjectStore
from tests.support.local_forms import files_under, make_storage, store_bytes

SOURCE = "recordings/staging/a.wav"
TARGET = "recordings/u/ctx/a.wav"
BODY = b"RIFF" + b"\x01" * 60
EARLIER = b"verified earlier"


class _FailingMove(ObjectStore):
    """The store of a root whose disk refuses one of a promote's moves with ENOSPC (not a mock).

    ``refused`` is ``"objects"`` (the data's move) or ``"sidecars"`` (the
    target sidecar's); ``meanwhile`` stands for what another process does on
    the root just before. The store is what ``LocalStorage.promote``
    delegates to, over the same root.
    """

    def __init__(self, root: Path, refused: str, meanwhile: Callable[[], None]) -> None:
        super().__init__(Layout(root), fsync=False)
        self._refused = root / refused
        self._meanwhile = meanwhile

    def place(self, source: Path, target: Path) -> None:
        """Raise the ENOSPC rename(2) raises on a full disk for the refused move; else move."""
        if not target.is_relative_to(self._refused):
            super().place(source, target)
            return
        self._meanwhile()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(source), None, str(target))


def _md5(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()  # noqa: S324 - the ETag is MD5


@pytest.mark.parametrize("refused", ["objects", "sidecars"])
def test_a_move_the_disk_refuses_keeps_the_source_and_the_targets_object(
    tmp_path: Path, refused: str
) -> None:
    """STORAGE_UNAVAILABLE; the source and the object the target held stay whole; a retry moves."""
    storage = make_storage(tmp_path, fsync=False)
    store_bytes(storage, TARGET, EARLIER)
    before = storage.head(TARGET)
    store_bytes(storage, SOURCE, BODY)
    source = storage.head(SOURCE)
    assert source is not None
    store = _FailingMove(tmp_path, refused, lambda: None)

    with pytest.raises(StorageUnavailableError) as caught:
        store.promote(SOURCE, TARGET, expected=source)

    assert "nothing changed" in caught.value.message
    assert str(tmp_path) not in str(caught.value.to_dict())
    assert storage.head(SOURCE) == source
    assert storage.head(TARGET) == before
    assert storage.read_range(TARGET, offset=0, length=64) == EARLIER
    assert files_under(tmp_path) == sorted(
        f"{kind}/{key}" for kind in ("objects", "sidecars") for key in (SOURCE, TARGET)
    )
    moved = storage.promote(SOURCE, TARGET, expected=source)
    assert moved is not None
    assert moved.etag == _md5(BODY)


def test_a_sidecar_that_cannot_be_put_back_is_reported_and_the_source_kept(
    tmp_path: Path,
) -> None:
    """The target's sidecar directory became a file: StorageError saying so; the source whole."""
    storage = make_storage(tmp_path, fsync=False)
    store_bytes(storage, TARGET, EARLIER)
    store_bytes(storage, SOURCE, BODY)
    source = storage.head(SOURCE)
    assert source is not None
    directory = tmp_path / "sidecars" / "recordings" / "u" / "ctx"

    def block_the_targets_sidecar() -> None:
        (directory / "a.wav").unlink()  # the promote's own sidecar, just put in place
        directory.rmdir()
        directory.write_bytes(b"")

    with pytest.raises(StorageError) as caught:
        _FailingMove(tmp_path, "objects", block_the_targets_sidecar).promote(
            SOURCE, TARGET, expected=source
        )

    assert not isinstance(caught.value, StorageUnavailableError)
    assert caught.value.details["storage_error"] == "InternalError"
    assert "nor put back" in caught.value.message
    assert str(tmp_path) not in str(caught.value.to_dict())
    assert storage.head(SOURCE) == source
    assert storage.head(TARGET) is None
