"""LocalStorage promote when the move fails: the source is put back, or the error says it is not."""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helppet_recordings.errors import StorageError, StorageUnavailableError
from helppet_recordings.storage.local.keys import Layout
from helppet_recordings.storage.local.objects import ObjectStore
from tests.support.local_forms import files_under, make_storage, store_bytes

SOURCE = "recordings/staging/a.wav"
TARGET = "recordings/a.wav"
BODY = b"RIFF" + b"\x01" * 60


class _FailingCommit(ObjectStore):
    """The store of a root whose commit fails with ENOSPC after ``meanwhile`` ran (not a mock).

    ``meanwhile`` stands for what another process does on the root while the
    promote's commit runs. The store is what ``LocalStorage.promote``
    delegates to, over the same root.
    """

    def __init__(self, root: Path, meanwhile: Callable[[], None]) -> None:
        super().__init__(Layout(root), fsync=False)
        self._meanwhile = meanwhile

    def commit(
        self, temp_path: Path, data_path: Path, meta_path: Path, meta: dict[str, Any]
    ) -> None:
        """Run ``meanwhile``, then raise the ENOSPC rename(2) raises on a full disk."""
        self._meanwhile()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(temp_path), None, str(data_path))


def _md5(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()  # noqa: S324 - the ETag is MD5


def test_a_source_uploaded_again_during_a_failed_promote_keeps_the_newer_object(
    tmp_path: Path,
) -> None:
    """The newer upload at the source stays whole; the object that failed to move is dropped."""
    storage = make_storage(tmp_path, fsync=False)
    store_bytes(storage, SOURCE, BODY)
    source = storage.head(SOURCE)
    assert source is not None
    store = _FailingCommit(tmp_path, lambda: store_bytes(storage, SOURCE, b"newer"))
    with pytest.raises(StorageUnavailableError):
        store.promote(SOURCE, TARGET, expected=source)
    newer = storage.head(SOURCE)
    assert newer is not None
    assert newer.etag == _md5(b"newer")
    assert storage.head(TARGET) is None
    assert files_under(tmp_path) == [f"objects/{SOURCE}", f"sidecars/{SOURCE}"]


def test_a_source_that_cannot_be_put_back_is_reported_as_such(tmp_path: Path) -> None:
    """The source's directory became a file: StorageError that says so, never "nothing changed"."""
    storage = make_storage(tmp_path, fsync=False)
    store_bytes(storage, SOURCE, BODY)
    source = storage.head(SOURCE)
    assert source is not None
    directory = tmp_path / "objects" / "recordings" / "staging"

    def block_the_source() -> None:
        directory.rmdir()  # empty: its one file is being promoted
        directory.write_bytes(b"")

    with pytest.raises(StorageError) as caught:
        _FailingCommit(tmp_path, block_the_source).promote(SOURCE, TARGET, expected=source)
    assert not isinstance(caught.value, StorageUnavailableError)
    assert caught.value.details["storage_error"] == "InternalError"
    assert "neither key" in caught.value.message
    assert "nothing changed" not in caught.value.message
    assert str(tmp_path) not in str(caught.value.to_dict())
    assert storage.head(SOURCE) is None
    assert storage.head(TARGET) is None
