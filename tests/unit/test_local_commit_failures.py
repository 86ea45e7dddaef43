"""LocalStorage commit when a move fails: the object the key held stays whole."""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
from pathlib import Path

import pytest

from helppet_recordings.storage.local.keys import Layout
from helppet_recordings.storage.local.objects import ObjectStore
from helppet_recordings.storage.local.sidecars import sidecar
from tests.support.local_forms import KEY, files_under, make_storage, store_bytes

EARLIER = b"the object the key held"
NEWER = b"RIFF" + b"\x02" * 60


class _RefusedMove(ObjectStore):
    """The store of a root whose disk refuses one kind of move with ENOSPC (not a mock).

    ``refused`` is ``"objects"`` (the data's move) or ``"sidecars"`` (the
    sidecar's); every other move is made.
    """

    def __init__(self, root: Path, refused: str) -> None:
        super().__init__(Layout(root), fsync=False)
        self._refused = root / refused

    def place(self, source: Path, target: Path) -> None:
        """Raise the ENOSPC rename(2) raises on a full disk for the refused move; else move."""
        if target.is_relative_to(self._refused):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(source), None, str(target))
        super().place(source, target)


def _staged(store: ObjectStore, body: bytes) -> tuple[Path, dict[str, object]]:
    """A flushed upload of ``body`` in staging, and the sidecar that describes it."""
    temp = store.layout.staging / "upload.part"
    temp.write_bytes(body)
    meta = sidecar(
        key=KEY,
        content_type="audio/wav",
        size=len(body),
        md5=hashlib.md5(body).hexdigest(),  # noqa: S324 - the ETag is MD5
        sha256=hashlib.sha256(body).hexdigest(),
        status=temp.stat(),
        stored_at=dt.datetime.now(dt.UTC),
    )
    return temp, meta


@pytest.mark.parametrize("refused", ["objects", "sidecars"])
def test_a_move_the_disk_refuses_keeps_the_keys_object(tmp_path: Path, refused: str) -> None:
    """The OSError is raised; the key keeps its object, the upload stays where it was."""
    storage = make_storage(tmp_path, fsync=False)
    store_bytes(storage, KEY, EARLIER)
    before = storage.head(KEY)
    store = _RefusedMove(tmp_path, refused)
    temp, meta = _staged(store, NEWER)

    with pytest.raises(OSError, match="No space left"):
        store.commit(temp, *store.layout.paths(KEY), meta)

    assert storage.head(KEY) == before
    assert storage.read_range(KEY, offset=0, length=100) == EARLIER
    assert temp.read_bytes() == NEWER
    assert files_under(tmp_path) == [".incoming/upload.part", f"objects/{KEY}", f"sidecars/{KEY}"]
