"""LocalStorage after a process killed mid-commit: the key's earlier object is read again.

The commit or promote runs in a child process whose store ends the process
(``os._exit``, no clean-up) just before one of its moves, as a kill would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.local_forms import make_storage, store_bytes

KEY = "recordings/u/ctx/a.wav"
SOURCE = "recordings/staging/b.wav"
EARLIER = b"verified earlier"
BODY = b"RIFF" + b"\x02" * 60
KILLED = 71

_CHILD = textwrap.dedent(
    """
    import datetime as dt, hashlib, os, sys
    from pathlib import Path
    from helppet_recordings.storage.local.keys import Layout
    from helppet_recordings.storage.local.objects import ObjectStore
    from helppet_recordings.storage.local.sidecars import sidecar
    from helppet_recordings.storage.local.storage import LocalStorage

    root, operation, killed_before = Path(sys.argv[1]), sys.argv[2], sys.argv[3]

    class KilledStore(ObjectStore):
        def place(self, source: Path, target: Path) -> None:
            if target.is_relative_to(root / killed_before):
                os._exit({killed})
            super().place(source, target)

    store = KilledStore(Layout(root), fsync=True)
    if operation == "commit":
        body = {body!r}
        temp = root / ".incoming" / "upload.part"
        temp.write_bytes(body)
        data_path, meta_path = store.layout.paths({key!r})
        meta = sidecar(
            key={key!r},
            content_type="audio/wav",
            size=len(body),
            md5=hashlib.md5(body).hexdigest(),
            sha256=hashlib.sha256(body).hexdigest(),
            status=os.stat(temp),
            stored_at=dt.datetime.now(dt.UTC),
        )
        store.commit(temp, data_path, meta_path, meta)
    else:
        storage = LocalStorage(root, "http://127.0.0.1:9", "unit-test-secret-0123456789")
        source = storage.head({source!r})
        assert source is not None
        store.promote({source!r}, {key!r}, expected=source)
    sys.exit(0)
    """
).format(killed=KILLED, body=BODY, key=KEY, source=SOURCE)


@pytest.mark.parametrize("operation", ["commit", "promote"])
@pytest.mark.parametrize("killed_before", ["sidecars", "objects"])
def test_a_commit_killed_between_its_moves_leaves_the_keys_object_readable(
    tmp_path: Path, operation: str, killed_before: str
) -> None:
    """Killed with the earlier sidecar set aside: a LocalStorage opened next reads the object."""
    storage = make_storage(tmp_path, fsync=False)
    store_bytes(storage, KEY, EARLIER)
    before = storage.head(KEY)
    assert before is not None
    if operation == "promote":
        store_bytes(storage, SOURCE, BODY)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path), operation, killed_before],
        env=env,
        capture_output=True,
        check=False,
        timeout=60,
    )

    assert child.returncode == KILLED, child.stderr.decode()
    assert storage.head(KEY) is None  # the kill left the key's sidecar aside
    reopened = make_storage(tmp_path, fsync=False)
    assert reopened.head(KEY) == before
    opened = reopened.open_object(KEY)
    assert opened is not None
    with opened[0] as handle:
        assert handle.read() == EARLIER
    assert opened[1] == before
    assert reopened.read_range(KEY, offset=0, length=64) == EARLIER
    assert [found.key for found in reopened.iter_objects("recordings/u/")] == [KEY]
    if operation == "promote":
        assert reopened.read_range(SOURCE, offset=0, length=64) == BODY
