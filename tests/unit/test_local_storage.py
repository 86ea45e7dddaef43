"""LocalStorage: the storage contract over HTTP, construction, atomic commits, listing."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helppet_recordings.errors import StorageUnavailableError
from helppet_recordings.ports import RecordingStorage
from helppet_recordings.storage.local import (
    LocalStorage,
)
from helppet_recordings.storage.local.keys import Layout
from helppet_recordings.storage.local.objects import ObjectStore
from helppet_recordings.testing.checksum_contract import ChecksumPinningContract
from helppet_recordings.testing.storage_contract import (
    AUDIO,
    HttpStorageContract,
    PinnedReadsContract,
    PromoteContract,
    PutObject,
)
from tests.support.asgi_server import ServerThread
from tests.support.local_asgi import LocalStorageApp
from tests.support.local_forms import (
    KEY,
    SECRET,
    encode_form,
    files_under,
    make_storage,
    make_ticket,
    receive,
    split_chunks,
    store_bytes,
)


@pytest.fixture(scope="module")
def http_app() -> Iterator[tuple[LocalStorageApp, str]]:
    """A bare ASGI app around the receiver, served by uvicorn on 127.0.0.1."""
    app = LocalStorageApp()
    with ServerThread(app) as server:
        yield app, server.base_url


class _FullDisk(ObjectStore):
    """The store of a root whose disk is full: every move fails (hand-written, not a mock).

    The store is what ``LocalStorage.promote`` delegates to, over the same
    root. (``test_local_write_limit`` runs a promote under a real file size
    limit; this one fails the renames themselves.)
    """

    def __init__(self, root: Path) -> None:
        super().__init__(Layout(root), fsync=False)

    def place(self, source: Path, target: Path) -> None:
        """Raise the ENOSPC rename(2) raises on a full disk, naming both paths as it does."""
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(source), None, str(target))


class TestLocalStorage(
    HttpStorageContract, PromoteContract, PinnedReadsContract, ChecksumPinningContract
):
    signature_field = "signature"

    @pytest.fixture
    def storage(
        self, tmp_path: Path, http_app: tuple[LocalStorageApp, str]
    ) -> Iterator[RecordingStorage]:
        """A fresh LocalStorage in tmp_path, served over HTTP by the module's server."""
        app, base_url = http_app
        app.storage = LocalStorage(tmp_path / "store", base_url, SECRET)
        yield app.storage
        app.storage = None

    @pytest.fixture
    def put_object(self, storage: RecordingStorage) -> PutObject:
        """Store bytes through the receiver, as a finished upload would."""
        assert isinstance(storage, LocalStorage)

        def put(key: str, body: bytes, content_type: str) -> None:
            ticket = storage.create_upload(
                key=key, content_type=content_type, max_size=len(body), expires_in=60
            )
            content, encoded = encode_form(ticket.fields.items(), body)
            response = receive(storage, content, [encoded])
            assert response.status == 204, response.body

        return put

    def test_a_move_the_disk_refuses_leaves_the_object_where_it_was(
        self, storage: RecordingStorage, put_object: PutObject
    ) -> None:
        """A full disk during promote: STORAGE_UNAVAILABLE, the source intact, a retry moves it."""
        assert isinstance(storage, LocalStorage)
        put_object("recordings/staging/a.wav", b"RIFF" + b"\x01" * 60, "audio/wav")
        source = storage.head("recordings/staging/a.wav")
        assert source is not None
        with pytest.raises(StorageUnavailableError) as caught:
            _FullDisk(storage.root).promote(
                "recordings/staging/a.wav", "recordings/a.wav", expected=source
            )
        assert str(storage.root) not in str(caught.value.to_dict())
        assert storage.head("recordings/staging/a.wav") == source
        assert storage.head("recordings/a.wav") is None
        moved = storage.promote("recordings/staging/a.wav", "recordings/a.wav", expected=source)
        assert moved is not None
        assert moved.etag == source.etag

    def test_head_after_http_upload_reports_sidecar(self, storage: RecordingStorage) -> None:
        """An HTTP upload writes the bytes and a sidecar with MD5 and SHA-256."""
        assert isinstance(storage, LocalStorage)
        ticket = self.ticket(storage, "sidecar.m4a")
        response = self.post(ticket, AUDIO)
        assert response.status_code == 204
        assert response.headers["etag"] == f'"{hashlib.md5(AUDIO).hexdigest()}"'  # noqa: S324
        data = storage.root / "objects" / ticket.key
        meta = json.loads((storage.root / "sidecars" / ticket.key).read_text())
        assert data.read_bytes() == AUDIO
        assert meta["sha256"] == hashlib.sha256(AUDIO).hexdigest()
        assert (meta["content_type"], meta["size"]) == ("audio/mp4", len(AUDIO))

    def test_head_request_of_download_url_sends_headers_only(
        self, storage: RecordingStorage
    ) -> None:
        """HEAD of a download URL answers the length and type without a body."""
        ticket = self.ticket(storage, "headreq.m4a")
        assert self.post(ticket, AUDIO).is_success
        url = storage.create_download_url(
            key=ticket.key, expires_in=60, content_type="audio/mp4", filename="a.m4a"
        )
        response = httpx.head(url, timeout=10)
        assert response.status_code == 200
        assert response.headers["content-length"] == str(len(AUDIO))
        assert response.content == b""

    def test_range_request_over_http(self, storage: RecordingStorage) -> None:
        """A player's Range request gets 206 and exactly those bytes."""
        ticket = self.ticket(storage, "range.m4a")
        assert self.post(ticket, AUDIO).is_success
        url = storage.create_download_url(
            key=ticket.key, expires_in=60, content_type="audio/mp4", filename="a.m4a"
        )
        response = httpx.get(url, headers={"Range": "bytes=10-19"}, timeout=10)
        assert response.status_code == 206
        assert response.content == AUDIO[10:20]
        assert response.headers["content-range"] == f"bytes 10-19/{len(AUDIO)}"

    def test_path_traversal_in_download_url_is_refused(
        self, storage: RecordingStorage, tmp_path: Path
    ) -> None:
        """Dot segments and encoded slashes in a download path never read outside the root."""
        secret_file = tmp_path / "outside.txt"
        secret_file.write_bytes(b"top secret")
        ticket = self.ticket(storage, "trav.m4a")
        assert self.post(ticket, AUDIO).is_success
        url = storage.create_download_url(
            key=ticket.key, expires_in=60, content_type="audio/mp4", filename="a.m4a"
        )
        base, query = url.split("?", 1)
        prefix = base.split("/download/", 1)[0]
        for path in (
            "../../outside.txt",
            "..%2F..%2F..%2Foutside.txt",
            "%2e%2e/%2e%2e/outside.txt",
        ):
            response = httpx.get(f"{prefix}/download/{path}?{query}", timeout=10)
            assert response.status_code in {403, 404}
            assert b"top secret" not in response.content

    def test_oversize_stream_is_cut_off_early(self, storage: RecordingStorage) -> None:
        """A 40 MB upload against a 64 KiB limit is refused without reading all of it."""
        ticket = self.ticket(storage, "huge.m4a")
        content_type, head = encode_form(ticket.fields.items(), b"")
        prefix = head[: head.index(b"audio/mp4\r\n\r\n") + len(b"audio/mp4\r\n\r\n")]
        sent = 0

        def body() -> Iterator[bytes]:
            nonlocal sent
            yield prefix
            for _ in range(40 * 16):
                sent += 64 * 1024
                yield b"a" * (64 * 1024)

        started = time.monotonic()
        try:
            response = httpx.post(
                ticket.url, content=body(), headers={"Content-Type": content_type}, timeout=30
            )
        except httpx.TransportError:
            pass  # the server may close before the client finishes sending; S3 does too
        else:
            assert response.status_code == 400
            assert b"EntityTooLarge" in response.content
        assert time.monotonic() - started < 20
        assert storage.head(ticket.key) is None
        assert isinstance(storage, LocalStorage)
        assert files_under(storage.root) == []


# ----------------------------------------------------------------------- construction


@pytest.mark.parametrize("secret", [None, "", "short", b"0123456789abcde", 12345])
def test_secret_must_be_long_enough(tmp_path: Path, secret: object) -> None:
    """A missing, short or non-text secret is refused."""
    with pytest.raises(ValueError, match="secret"):
        LocalStorage(tmp_path, secret=secret)  # type: ignore[arg-type]


def test_bytes_secret_and_defaults(tmp_path: Path) -> None:
    """A 16-byte secret works; the default base URL and bucket are the documented ones."""
    storage = LocalStorage(tmp_path, secret=b"0123456789abcdef")
    assert storage.bucket == "local"
    assert storage.upload_url == "http://127.0.0.1:8000/local-storage/upload"
    assert storage.object_url(KEY) == f"local://local/{KEY}"
    assert {p.name for p in tmp_path.iterdir()} == {"objects", "sidecars", ".incoming"}


def _root_this_long(base: Path, length: int) -> Path:
    """A directory under ``base`` whose path is ``length`` to ``length + 99`` characters long."""
    root = base
    while len(str(root)) < length:
        root /= "d" * 99
    return root


def test_a_disk_error_is_logged_without_the_paths_it_names(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The receiver logs an OS error's type and errno: its message names the key's path.

    The root is so deep that the key's path passes PATH_MAX while the staging
    directory's paths do not: the upload streams in, and the rename into place
    fails with ENAMETOOLONG, naming both paths.
    """
    key = "recordings/5f0c6c1e-0a7e-4b8e-9d5e-0c2b7b7f1a01/unassigned/" + "x" * 200 + ".wav"
    path_max = os.pathconf(tmp_path, "PC_PATH_MAX")
    storage = make_storage(_root_this_long(tmp_path, path_max - len(f"/objects/{key}")))
    assert len(str(storage.root / ".incoming" / ("f" * 64))) < path_max
    ticket = storage.create_upload(key=key, content_type="audio/wav", max_size=64, expires_in=60)
    content, encoded = encode_form(ticket.fields.items(), b"RIFF" + b"\x00" * 40)
    with caplog.at_level(logging.ERROR, logger="helppet_recordings"):
        response = receive(storage, content, [encoded])
    assert response.status == 500
    [record] = [r for r in caplog.records if r.name.startswith("helppet_recordings")]
    assert f"OSError (errno {errno.ENAMETOOLONG})" in record.getMessage()
    assert "5f0c6c1e" not in record.getMessage()
    assert record.exc_info is None
    assert files_under(storage.root) == []


def test_stale_staging_files_are_purged(tmp_path: Path) -> None:
    """Temporary files a crashed process left for over a day are removed at start-up."""
    make_storage(tmp_path)
    old = tmp_path / ".incoming" / "dead.part"
    young = tmp_path / ".incoming" / "live.part"
    old.write_bytes(b"x")
    young.write_bytes(b"y")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    make_storage(tmp_path)
    assert not old.exists()
    assert young.exists()


# ------------------------------------------------------------------ atomicity, memory


def test_partial_upload_is_invisible_until_complete(tmp_path: Path) -> None:
    """While the file streams in, the key holds nothing and only a staging file exists."""
    storage = make_storage(tmp_path)
    content_type, body = encode_form(
        make_ticket(storage, max_size=9999).fields.items(), b"z" * 5000
    )
    seen: list[tuple[bool, list[str]]] = []

    def body_chunks() -> Iterator[bytes]:
        for chunk in split_chunks(body, 1000):
            yield chunk
            seen.append((storage.head(KEY) is None, files_under(storage.root)))

    assert receive(storage, content_type, body_chunks()).status == 204
    assert seen[2][0]
    assert len(seen[2][1]) == 1
    assert seen[2][1][0].startswith(".incoming/")
    assert files_under(storage.root) == [f"objects/{KEY}", f"sidecars/{KEY}"]


def test_overwrite_replaces_object_and_sidecar_together(tmp_path: Path) -> None:
    """A second upload to the same key replaces the bytes and the metadata as a unit."""
    storage = make_storage(tmp_path)
    fields = make_ticket(storage).fields.items()
    for payload in (b"first version", b"second, longer version"):
        content_type, body = encode_form(fields, payload)
        assert receive(storage, content_type, [body]).status == 204
    stored = storage.head(KEY)
    assert stored is not None
    assert stored.etag == hashlib.md5(b"second, longer version").hexdigest()  # noqa: S324


def test_data_without_matching_sidecar_is_not_an_object(tmp_path: Path) -> None:
    """Bytes whose sidecar is missing or stale (a crash mid-commit) are reported absent."""
    storage = make_storage(tmp_path)
    content_type, body = encode_form(make_ticket(storage).fields.items(), b"payload")
    assert receive(storage, content_type, [body]).status == 204
    (storage.root / "objects" / KEY).write_bytes(b"tampered payload")
    assert storage.head(KEY) is None
    assert list(storage.iter_objects("recordings/")) == []
    (storage.root / "sidecars" / KEY).unlink()
    assert storage.head(KEY) is None


def test_delete_prunes_empty_directories(tmp_path: Path) -> None:
    """Deleting the last object under a prefix leaves no empty directories behind."""
    storage = make_storage(tmp_path)
    content_type, body = encode_form(make_ticket(storage).fields.items(), b"payload")
    assert receive(storage, content_type, [body]).status == 204
    storage.delete(KEY)
    assert list((storage.root / "objects").iterdir()) == []
    assert list((storage.root / "sidecars").iterdir()) == []


_COMMITTER = """
import sys
from pathlib import Path

from tests.support.local_forms import encode_form, make_storage, make_ticket, receive

storage = make_storage(Path(sys.argv[1]), fsync=False)
ticket = make_ticket(storage, max_size=100_000)
for line in sys.stdin:
    body = f"{sys.argv[2]}{line.strip()}".encode() * 997
    content_type, encoded = encode_form(ticket.fields.items(), body)
    print(receive(storage, content_type, [encoded]).status, flush=True)
"""


def test_commits_from_two_processes_take_turns(tmp_path: Path) -> None:
    """Two processes committing one key at once, 100 times: always one whole object."""
    root = tmp_path / "shared"
    storage = make_storage(root)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _COMMITTER, str(root), tag],
            cwd=Path(__file__).resolve().parents[2],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    try:
        for number in range(100):
            for process in processes:
                assert process.stdin is not None
                process.stdin.write(f"{number}\n")
                process.stdin.flush()
            for process in processes:
                assert process.stdout is not None
                assert process.stdout.readline().strip() == "204"
            stored = storage.head(KEY)
            assert stored is not None, f"round {number}: no object"
            data = storage.read_range(KEY, offset=0, length=stored.size + 1)
            assert data is not None
            assert data in {f"{tag}{number}".encode() * 997 for tag in "ab"}
            assert (len(data), hashlib.md5(data).hexdigest()) == (stored.size, stored.etag)  # noqa: S324
    finally:
        for process in processes:
            process.communicate(timeout=30)  # closes stdin: the committer ends


# --------------------------------------------------------------------------- listing


def test_iter_objects_is_in_code_point_key_order(tmp_path: Path) -> None:
    """Listing follows string order even where directories and files interleave."""
    storage = make_storage(tmp_path)
    keys = ["a0", "a/x", "a.b", "a-c", "a/b/c", "a/b0", "b", "a/é", "a/z", "A"]
    for key in keys:
        store_bytes(storage, key)
    assert [obj.key for obj in storage.iter_objects("")] == sorted(keys)
    assert [obj.key for obj in storage.iter_objects("a/b")] == ["a/b/c", "a/b0"]
    assert [obj.key for obj in storage.iter_objects("a/")] == sorted(
        k for k in keys if k.startswith("a/")
    )
    assert list(storage.iter_objects("nothing/")) == []
    assert list(storage.iter_objects("../")) == []


def test_head_reports_the_sha256(tmp_path: Path) -> None:
    """HEAD gives the body's SHA-256 and its MD5 both as the ETag and as ``md5``."""
    storage = make_storage(tmp_path)
    store_bytes(storage, KEY, AUDIO)
    stored = storage.head(KEY)
    assert stored is not None
    assert stored.sha256 == hashlib.sha256(AUDIO).hexdigest()
    assert stored.md5 == hashlib.md5(AUDIO).hexdigest()  # noqa: S324
    listed = next(storage.iter_objects("recordings/"))
    assert (listed.sha256, listed.etag) == (stored.sha256, stored.etag)
