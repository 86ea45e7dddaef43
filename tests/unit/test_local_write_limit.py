"""LocalStorage on a disk that takes only part of a write: nothing half-written is committed.

Each test runs LocalStorage in a child process under a real file size limit
(``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored): a write that crosses the limit
takes only the bytes up to it, and the next one fails with ``EFBIG``, as a
write does on a disk that is nearly full.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.local_forms import KEY, files_under

_PRELUDE = """
import json
import resource
import signal
import sys
import urllib.parse
from pathlib import Path

from helppet_recordings.errors import RecordingError
from helppet_recordings.storage.local import LocalPartReceiver
from tests.support.local_forms import KEY, encode_form, make_storage, make_ticket, receive
from tests.support.local_forms import store_bytes

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead
root = Path(sys.argv[1])
storage = make_storage(root, fsync=False)


def limit(size):
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))


def unlimited():
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def error(call):
    try:
        return {"returned": repr(call())}
    except RecordingError as exc:
        return {"error": exc.error_code, "details": exc.details, "message": exc.message}
    finally:
        unlimited()


def sidecar_size(key):
    return (root / "sidecars" / key).stat().st_size
"""


def _run(root: Path, script: str) -> dict[str, Any]:
    """Run ``script`` after the prelude in a child process on ``root``; return what it printed."""
    done = subprocess.run(
        [sys.executable, "-c", _PRELUDE + script, str(root)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def _md5(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()  # noqa: S324 - the ETag is MD5


def test_an_upload_whose_sidecar_the_disk_cuts_short_is_refused(tmp_path: Path) -> None:
    """The data fits, its sidecar does not: 500, and the key keeps the object it held."""
    result = _run(
        tmp_path,
        """
store_bytes(storage, KEY, b"first")
assert sidecar_size(KEY) > 200
content_type, encoded = encode_form(make_ticket(storage).fields.items(), b"second" * 10)
limit(150)
status = receive(storage, content_type, [encoded]).status
unlimited()
stored = storage.head(KEY)
print(json.dumps({"status": status, "etag": stored and stored.etag}))
""",
    )
    assert result == {"status": 500, "etag": _md5(b"first")}
    assert files_under(tmp_path) == [f"objects/{KEY}", f"sidecars/{KEY}"]


def test_a_promote_whose_sidecar_the_disk_cuts_short_keeps_the_source(tmp_path: Path) -> None:
    """The target's sidecar (a longer key) crosses the limit: STORAGE_UNAVAILABLE, source kept."""
    target = "recordings/" + "t" * 100 + "/a.wav"
    result = _run(
        tmp_path,
        f"""
store_bytes(storage, "s/a.wav", b"RIFF" + b"\\1" * 60)
source = storage.head("s/a.wav")
limit(sidecar_size("s/a.wav"))
outcome = error(lambda: storage.promote("s/a.wav", {target!r}, expected=source))
outcome["source"] = storage.head("s/a.wav") == source
outcome["target"] = storage.head({target!r}) is not None
print(json.dumps(outcome))
""",
    )
    assert result["error"] == "STORAGE_UNAVAILABLE", result
    assert (result["source"], result["target"]) == (True, False)
    assert files_under(tmp_path) == ["objects/s/a.wav", "sidecars/s/a.wav"]


def test_a_multipart_upload_whose_record_the_disk_cuts_short_is_not_started(
    tmp_path: Path,
) -> None:
    """``upload.json`` crosses the limit: StorageError, and no upload is left half-made."""
    result = _run(
        tmp_path,
        """
limit(20)
outcome = error(lambda: storage.create_multipart_upload(key=KEY, content_type="audio/mp4"))
outcome["uploads"] = len(storage.list_multipart_uploads(prefix=""))
print(json.dumps(outcome))
""",
    )
    assert result["error"] == "STORAGE_ERROR", result
    assert result["details"]["storage_error"] == "InternalError"
    assert result["uploads"] == 0
    assert files_under(tmp_path) == []


def test_a_completion_whose_data_the_disk_cuts_short_keeps_the_object_and_parts(
    tmp_path: Path,
) -> None:
    """The assembled file crosses the limit: StorageError, the key's object and the parts kept."""
    result = _run(
        tmp_path,
        """
store_bytes(storage, KEY, b"first")
upload_id = storage.create_multipart_upload(key=KEY, content_type="audio/mp4")
url = storage.sign_upload_part(
    key=KEY, upload_id=upload_id, part_number=1, size=1000, expires_in=60
)
query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
answer = LocalPartReceiver(storage).receive(KEY, query, "1000", [b"p" * 1000])
assert answer.status == 200, answer.body
etag = answer.headers["ETag"].strip('"')
limit(500)
outcome = error(
    lambda: storage.complete_multipart_upload(key=KEY, upload_id=upload_id, parts=[(1, etag)])
)
stored = storage.head(KEY)
outcome["etag"] = stored and stored.etag
outcome["parts"] = len(storage.list_parts(key=KEY, upload_id=upload_id))
print(json.dumps(outcome))
""",
    )
    assert result["error"] == "STORAGE_ERROR", result
    assert result["details"]["storage_error"] == "InternalError"
    assert (result["etag"], result["parts"]) == (_md5(b"first"), 1)


def test_a_promote_the_disk_refuses_every_write_of_puts_the_source_back(tmp_path: Path) -> None:
    """No file may grow past 100 bytes: STORAGE_UNAVAILABLE, the source whole, a retry moves it."""
    result = _run(
        tmp_path,
        """
store_bytes(storage, "recordings/staging/a.wav", b"RIFF" + b"\\1" * 60)
source = storage.head("recordings/staging/a.wav")
assert sidecar_size("recordings/staging/a.wav") > 100
limit(100)
outcome = error(
    lambda: storage.promote("recordings/staging/a.wav", "recordings/a.wav", expected=source)
)
outcome["source"] = storage.head("recordings/staging/a.wav") == source
outcome["target"] = storage.head("recordings/a.wav") is not None
outcome["files"] = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
moved = storage.promote("recordings/staging/a.wav", "recordings/a.wav", expected=source)
outcome["retried"] = moved is not None and moved.etag == source.etag
print(json.dumps(outcome))
""",
    )
    assert result["error"] == "STORAGE_UNAVAILABLE", result
    assert (result["source"], result["target"]) == (True, False)
    assert result["files"] == [
        "objects/recordings/staging/a.wav",
        "sidecars/recordings/staging/a.wav",
    ]
    assert result["retried"] is True
    assert files_under(tmp_path) == ["objects/recordings/a.wav", "sidecars/recordings/a.wav"]
