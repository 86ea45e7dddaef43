"""LocalStorage on disk: which keys can share a root, and stores of the earlier layout."""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from pathlib import Path

import pytest

from helppet_recordings.errors import StorageError
from helppet_recordings.storage.local import LocalPartReceiver, LocalStorage
from tests.support.local_forms import (
    encode_form,
    error_code,
    files_under,
    get_download,
    make_storage,
    make_ticket,
    read_stream,
    receive,
    store_bytes,
)

BODY = b"RIFF" + bytes(range(200))


def _post(storage: LocalStorage, key: str, body: bytes = BODY) -> tuple[int, str]:
    """POST ``body`` to ``key`` through the receiver; return the status and any error code."""
    content_type, encoded = encode_form(make_ticket(storage, key=key).fields.items(), body)
    answer = receive(storage, content_type, [encoded])
    return answer.status, error_code(answer) if answer.body else ""


def _files_of(*keys: str) -> list[str]:
    """What the current layout holds for ``keys``: each data file and its sidecar."""
    return sorted([f"objects/{key}" for key in keys] + [f"sidecars/{key}" for key in keys])


# ---------------------------------------------------------------- keys that cannot coexist


@pytest.mark.parametrize(("first", "second"), [("x/a", "x/a/b"), ("x/a/b", "x/a")])
def test_a_key_that_would_be_a_file_and_a_directory_is_refused(
    tmp_path: Path, first: str, second: str
) -> None:
    """A POST of ``x/a/b`` beside ``x/a`` (or the reverse) is 409 KeyConflict; nothing moves."""
    storage = make_storage(tmp_path)
    store_bytes(storage, first, b"first object")
    before = storage.head(first)

    assert _post(storage, second) == (409, "KeyConflict")

    assert storage.head(second) is None
    assert storage.head(first) == before
    assert storage.read_range(first, offset=0, length=100) == b"first object"
    assert files_under(storage.root) == _files_of(first)


def test_a_multipart_completion_onto_a_conflicting_key_keeps_the_upload(tmp_path: Path) -> None:
    """Completing ``x/a/b`` beside ``x/a``: StorageError KeyConflict, the upload kept, no file."""
    storage = make_storage(tmp_path)
    store_bytes(storage, "x/a", b"first object")
    upload_id = storage.create_multipart_upload(key="x/a/b", content_type="audio/mp4")
    url = urllib.parse.urlsplit(
        storage.sign_upload_part(
            key="x/a/b", upload_id=upload_id, part_number=1, size=len(BODY), expires_in=60
        )
    )
    query = dict(urllib.parse.parse_qsl(url.query))
    answer = LocalPartReceiver(storage).receive("x/a/b", query, str(len(BODY)), [BODY])
    etag = answer.headers["ETag"].strip('"')

    with pytest.raises(StorageError) as refused:
        storage.complete_multipart_upload(key="x/a/b", upload_id=upload_id, parts=[(1, etag)])

    assert refused.value.details["storage_error"] == "KeyConflict"
    assert "x/a" not in refused.value.message
    assert [p.etag for p in storage.list_parts(key="x/a/b", upload_id=upload_id)] == [etag]
    assert storage.read_range("x/a", offset=0, length=100) == b"first object"
    assert list((storage.root / ".incoming").iterdir()) == []
    storage.abort_multipart_upload(key="x/a/b", upload_id=upload_id)
    assert files_under(storage.root) == _files_of("x/a")


def test_a_promote_onto_a_conflicting_key_leaves_the_source(tmp_path: Path) -> None:
    """Promoting onto ``x/a/b`` beside ``x/a``: StorageError KeyConflict, the source unmoved."""
    storage = make_storage(tmp_path)
    store_bytes(storage, "x/a", b"first object")
    store_bytes(storage, "staging/b", BODY)
    source = storage.head("staging/b")
    assert source is not None

    with pytest.raises(StorageError) as refused:
        storage.promote("staging/b", "x/a/b", expected=source)

    assert refused.value.details["storage_error"] == "KeyConflict"
    assert storage.head("staging/b") == source
    assert storage.head("x/a/b") is None
    assert files_under(storage.root) == _files_of("staging/b", "x/a")


def test_deleting_a_key_that_names_a_directory_changes_nothing(tmp_path: Path) -> None:
    """``delete("x/a")`` while ``x/a/b`` is stored is no error and leaves ``x/a/b`` alone."""
    storage = make_storage(tmp_path)
    store_bytes(storage, "x/a/b")
    storage.delete("x/a")
    assert storage.head("x/a/b") is not None
    assert files_under(storage.root) == _files_of("x/a/b")


def test_an_empty_directory_left_in_a_keys_place_is_no_conflict(tmp_path: Path) -> None:
    """An empty directory where the key's file goes (a crash's debris) gives way to the upload."""
    storage = make_storage(tmp_path)
    (storage.root / "objects" / "x" / "a").mkdir(parents=True)
    (storage.root / "sidecars" / "x" / "a").mkdir(parents=True)
    assert _post(storage, "x/a") == (204, "")
    assert storage.read_range("x/a", offset=0, length=len(BODY)) == BODY


# ------------------------------------------------------------- stores of the earlier layout


def _legacy_object(root: Path, key: str, body: bytes = BODY) -> None:
    """Store ``body`` at ``key`` as the earlier layout did (``meta/<key>.json`` its sidecar)."""
    data = root / "objects" / key
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_bytes(body)
    status = data.stat()
    meta = root / "meta" / f"{key}.json"
    meta.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "key": key,
        "content_type": "audio/wav",
        "size": len(body),
        "md5": hashlib.md5(body).hexdigest(),  # noqa: S324 - the ETag
        "sha256": hashlib.sha256(body).hexdigest(),
        "stored_at": "2025-01-02T03:04:05+00:00",
        "inode": status.st_ino,
        "device": status.st_dev,
        "mtime_ns": status.st_mtime_ns,
    }
    meta.write_text(json.dumps(document, sort_keys=True), encoding="utf-8")


def test_objects_of_the_earlier_layout_are_read(tmp_path: Path) -> None:
    """HEAD, ranged reads, listing and downloads find an object with a ``meta/<key>.json``."""
    _legacy_object(tmp_path, "r/u/old.wav")
    storage = make_storage(tmp_path)

    stored = storage.head("r/u/old.wav")
    assert stored is not None
    assert (stored.size, stored.content_type) == (len(BODY), "audio/wav")
    assert stored.etag == hashlib.md5(BODY).hexdigest()  # noqa: S324
    assert stored.sha256 == hashlib.sha256(BODY).hexdigest()
    assert storage.read_range("r/u/old.wav", offset=4, length=8) == BODY[4:12]
    assert [obj.key for obj in storage.iter_objects("r/")] == ["r/u/old.wav"]
    url = storage.create_download_url(
        key="r/u/old.wav", expires_in=60, content_type="audio/wav", filename="old.wav"
    )
    assert read_stream(get_download(storage, url)) == BODY


def test_a_new_store_has_no_earlier_layout_directory(tmp_path: Path) -> None:
    """A fresh root gets ``objects/``, ``sidecars/`` and ``.incoming/`` only."""
    make_storage(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"objects", "sidecars", ".incoming"}


def test_overwriting_an_earlier_layout_object_replaces_its_sidecar(tmp_path: Path) -> None:
    """An upload onto a key of the earlier layout leaves one object and no stale sidecar."""
    _legacy_object(tmp_path, "r/u/old.wav")
    storage = make_storage(tmp_path)
    assert _post(storage, "r/u/old.wav", b"new bytes") == (204, "")
    assert storage.read_range("r/u/old.wav", offset=0, length=100) == b"new bytes"
    assert files_under(storage.root) == _files_of("r/u/old.wav")
    assert list((storage.root / "meta").iterdir()) == []


def test_deleting_an_earlier_layout_object_removes_both_files(tmp_path: Path) -> None:
    """Delete removes the data file and ``meta/<key>.json``, and prunes their directories."""
    _legacy_object(tmp_path, "r/u/old.wav")
    storage = make_storage(tmp_path)
    storage.delete("r/u/old.wav")
    assert storage.head("r/u/old.wav") is None
    assert files_under(storage.root) == []
    assert list((storage.root / "meta").iterdir()) == []


def test_promoting_an_earlier_layout_object_moves_it(tmp_path: Path) -> None:
    """An object of the earlier layout is promoted like any other; its old sidecar goes."""
    _legacy_object(tmp_path, "staging/old.wav")
    storage = make_storage(tmp_path)
    source = storage.head("staging/old.wav")
    assert source is not None

    moved = storage.promote("staging/old.wav", "final/old.wav", expected=source)

    assert moved is not None
    assert (moved.etag, moved.sha256) == (source.etag, source.sha256)
    assert storage.head("staging/old.wav") is None
    assert files_under(storage.root) == _files_of("final/old.wav")


@pytest.mark.parametrize(("old", "new"), [("x/a", "x/a.json/b"), ("x/a.json/b", "x/a")])
def test_keys_that_collided_in_the_earlier_layout_now_coexist(
    tmp_path: Path, old: str, new: str
) -> None:
    """``x/a`` and ``x/a.json/b`` shared ``meta/x/a.json``; one of each layout now coexist."""
    _legacy_object(tmp_path, old, b"old layout")
    storage = make_storage(tmp_path)
    assert _post(storage, new, b"new layout") == (204, "")
    assert storage.read_range(old, offset=0, length=100) == b"old layout"
    assert storage.read_range(new, offset=0, length=100) == b"new layout"
    assert [obj.key for obj in storage.iter_objects("x/")] == sorted([old, new])
