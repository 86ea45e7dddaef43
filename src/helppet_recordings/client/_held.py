"""Whether a part storage holds is this file's part: its ETag against the MD5 of the file's bytes.

Storage lists the parts it holds for an upload, but not whose bytes they
are: a file rewritten since an interrupted upload, or a state file naming
another unfinished upload, leads the client to parts of another content.
Completing over them would assemble a mix. So a held part counts only once
the client knows it holds this file's bytes: the ETag storage lists for it
(``uploaded_parts[].etag``) equals the MD5 of the file's bytes for that part
(a part's ETag on S3 without SSE-KMS or SSE-C, on LocalStorage and on
InMemoryStorage), or the ETag storage answered when this run sent the part.
Any other held part (no ETag, an ETag that is no MD5, another ETag) is sent
again: a part PUT replaces the part.

The MD5 is taken over the bytes read from the file as they would be sent
(:func:`~._files.read_range`, checking the file's identity), once per part
and run; a part this run sent is confirmed from storage's answer, unread.
"""

from __future__ import annotations

import hashlib
import re
import threading
from typing import Final

from helppet_recordings.client._files import read_range
from helppet_recordings.client._job import UploadJob

__all__ = ["PartLedger", "normalized_etag"]

_MD5_HEX: Final = re.compile(r"[0-9a-f]{32}")


def normalized_etag(etag: str | None) -> str | None:
    """Return ``etag`` without its quotes, in lower case; None for none or an empty one."""
    if etag is None:
        return None
    value = etag.strip().strip('"').strip().lower()
    return value or None


class PartLedger:
    """What this run knows of its own parts' ETags; confirms held parts against them.

    Safe to use from the sending threads.
    """

    def __init__(self, job: UploadJob) -> None:
        self._job = job
        self._lock = threading.Lock()
        self._own: dict[int, set[str]] = {}
        self._hashed: set[int] = set()

    def sent(self, part_number: int, etag: str | None) -> None:
        """Remember the ETag storage answered for this run's PUT of ``part_number``."""
        value = normalized_etag(etag)
        if value is not None:
            with self._lock:
                self._own.setdefault(part_number, set()).add(value)

    def confirms(
        self,
        part_number: int,
        etag: str | None,
        *,
        offset: int,
        size: int,
        abort: threading.Event | None = None,
    ) -> bool:
        """Whether the held part with ``etag`` holds the file's ``size`` bytes from ``offset``.

        Reads and hashes the file's bytes of the part the first time they are
        needed (``FILE_CHANGED`` if the file changed; ``Aborted`` on abort).
        """
        value = normalized_etag(etag)
        if value is None:
            return False
        with self._lock:
            if value in self._own.get(part_number, ()):
                return True
            if part_number in self._hashed or not _MD5_HEX.fullmatch(value):
                return False
        digest = self._md5(offset, size, abort)
        with self._lock:
            self._own.setdefault(part_number, set()).add(digest)
            self._hashed.add(part_number)
        return value == digest

    def _md5(self, offset: int, size: int, abort: threading.Event | None) -> str:
        job = self._job
        digest = hashlib.md5()  # noqa: S324 - compared with storage's part ETag, not security
        for chunk in read_range(job.path, offset, size, identity=job.identity, abort=abort):
            digest.update(chunk)
        return digest.hexdigest()
