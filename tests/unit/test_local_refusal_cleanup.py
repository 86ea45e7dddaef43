"""A refused upload's temporary file is closed and removed off the event loop, and nothing stays.

Removing a large, partly written file blocks for a long time (a GiB takes
0.1 to 0.4 s on ext4), so the receivers hand it to a worker thread. These
tests hold every such removal until the event loop has run a coroutine: if
the removal ran in the event loop, that coroutine could not run.
"""

from __future__ import annotations

import asyncio
import threading
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from helppet_recordings.storage.local import (
    LocalPartReceiver,
    LocalResponse,
    LocalStorage,
    LocalUploadReceiver,
)
from tests.support.local_forms import (
    MiB,
    assert_refused,
    encode_form,
    error_code,
    files_under,
    make_storage,
    make_ticket,
    streamed_body,
)

KEY = "recordings/u/ctx/a.m4a"


class _RemovalWatch:
    """Holds the removal of each matching file until the event loop has run; notes its thread."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, matches: Callable[[Path], bool]) -> None:
        self.threads: list[int] = []
        self.released: list[bool] = []
        self._loop_ran = threading.Event()
        real_unlink = Path.unlink

        def unlink(path: Path, missing_ok: bool = False) -> None:
            if matches(path):
                self.threads.append(threading.get_ident())
                # Set by a coroutine on the event loop: only if the loop is free meanwhile.
                self.released.append(self._loop_ran.wait(5))
            real_unlink(path, missing_ok=missing_ok)

        monkeypatch.setattr(Path, "unlink", unlink)

    def serve(self, request: Awaitable[LocalResponse]) -> tuple[LocalResponse, int]:
        """Run ``request`` in a fresh event loop; return its answer and the loop's thread."""

        async def run() -> LocalResponse:
            task = asyncio.ensure_future(request)
            while not self.threads and not task.done():
                await asyncio.sleep(0.001)
            self._loop_ran.set()
            return await task

        return asyncio.run(run()), threading.get_ident()


def _is_staged_upload(path: Path) -> bool:
    return path.parent.name == ".incoming" and path.name.endswith(".part")


@pytest.mark.parametrize("ending", ["too large", "client gone"])
def test_a_refused_post_is_removed_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ending: str
) -> None:
    """A POST refused mid-file: its file goes in a worker while the loop runs; nothing stays."""
    storage = make_storage(tmp_path, fsync=False)
    content_type, head = encode_form(make_ticket(storage, max_size=3 * MiB).fields.items(), b"")
    watch = _RemovalWatch(monkeypatch, _is_staged_upload)

    async def body() -> AsyncIterator[bytes]:
        for sent, chunk in enumerate(streamed_body((content_type, head), 8 * MiB)):
            if ending == "client gone" and sent == 20:
                raise ConnectionResetError
            yield chunk

    receiver = LocalUploadReceiver(storage, batch_size=256 * 1024)
    answer, loop_thread = watch.serve(receiver.receive_async(content_type, body()))

    code = "EntityTooLarge" if ending == "too large" else "IncompleteBody"
    assert_refused(storage, answer, 400, code)
    assert watch.released == [True]
    assert loop_thread not in watch.threads


def _signed_part(storage: LocalStorage, size: int) -> tuple[str, dict[str, str], str]:
    """Start an upload of ``KEY``; return part 1's key, query and upload directory name."""
    upload_id = storage.create_multipart_upload(key=KEY, content_type="audio/mp4")
    url = storage.sign_upload_part(
        key=KEY, upload_id=upload_id, part_number=1, size=size, expires_in=60
    )
    parts = urllib.parse.urlsplit(url)
    key = urllib.parse.unquote(parts.path.split("/part/", 1)[1])
    return key, dict(urllib.parse.parse_qsl(parts.query)), upload_id


@pytest.mark.parametrize("ending", ["too long", "client gone"])
def test_a_refused_part_is_removed_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ending: str
) -> None:
    """A part refused mid-body: its file goes in a worker while the loop runs; nothing stays."""
    storage = make_storage(tmp_path, fsync=False)
    size = 2 * MiB
    key, query, upload_id = _signed_part(storage, size)
    watch = _RemovalWatch(monkeypatch, lambda path: path.name.startswith(".tmp-"))

    async def body() -> AsyncIterator[bytes]:
        yield b"x" * MiB
        if ending == "client gone":
            raise ConnectionResetError
        yield b"x" * (size + 1 - MiB)

    receiver = LocalPartReceiver(storage, batch_size=256 * 1024)
    answer, loop_thread = watch.serve(receiver.receive_async(key, query, str(size), body()))

    assert (answer.status, error_code(answer)) == (400, "IncompleteBody")
    assert watch.released == [True]
    assert loop_thread not in watch.threads
    assert storage.list_parts(key=KEY, upload_id=upload_id) == []
    assert files_under(storage.root / ".multipart") == [f"{upload_id}/upload.json"]
