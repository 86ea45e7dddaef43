"""Serving a signed download URL: the object's bytes (or one range of them), or the S3 error."""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

import attrs

from helppet_recordings.storage._http import DOWNLOAD_CACHE_CONTROL
from helppet_recordings.storage.local.refusal import LocalStorageRefusal
from helppet_recordings.storage.local.responses import FileChunks, LocalResponse, refused

if TYPE_CHECKING:
    from helppet_recordings.storage.local.storage import LocalStorage

__all__ = ["DOWNLOAD_CHUNK_SIZE", "serve_download"]

DOWNLOAD_CHUNK_SIZE: Final = 256 * 1024
"""Bytes read from disk per chunk of a download."""

_UNSATISFIABLE: Final = object()


def serve_download(
    storage: LocalStorage,
    key: str,
    query: Mapping[str, str],
    *,
    range_header: str | None = None,
    chunk_size: int = DOWNLOAD_CHUNK_SIZE,
) -> LocalResponse:
    """Answer a GET of a signed download URL: the object's bytes, or the S3 error.

    ``key`` is the URL path after ``/download/``, percent-decoded; ``query``
    its query parameters. Serves the signed content type and an attachment
    disposition naming the signed filename; honours a single ``bytes=`` range
    (206, or 416 when unsatisfiable). A tampered or expired URL answers 403,
    a missing object 404.
    """
    try:
        grant = storage.verify_download(key, query)
    except LocalStorageRefusal as refusal:
        return refused(refusal, body_left=False)
    opened = storage.open_object(grant.key)
    if opened is None:
        return refused(
            LocalStorageRefusal(404, "NoSuchKey", "The specified key does not exist."),
            body_left=False,
        )
    handle, info = opened
    headers = {
        "Content-Type": grant.content_type,
        "Content-Disposition": grant.content_disposition,
        "Accept-Ranges": "bytes",
        "Cache-Control": DOWNLOAD_CACHE_CONTROL,
        "X-Content-Type-Options": "nosniff",
    }
    if info.etag:
        headers["ETag"] = f'"{info.etag}"'
    if info.last_modified is not None:
        headers["Last-Modified"] = email.utils.format_datetime(
            info.last_modified.astimezone(dt.UTC), usegmt=True
        )
    wanted = _parse_range(range_header, info.size)
    if wanted is _UNSATISFIABLE:
        handle.close()
        range_refusal = LocalStorageRefusal(
            416, "InvalidRange", "The requested range is not satisfiable"
        )
        answer = refused(range_refusal, body_left=False)
        return attrs.evolve(
            answer, headers={**answer.headers, "Content-Range": f"bytes */{info.size}"}
        )
    status = 200
    start, length = 0, info.size
    if isinstance(wanted, tuple):
        start, end = wanted
        length = end - start + 1
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    headers["Content-Length"] = str(length)
    try:
        stream = FileChunks(handle, start=start, length=length, chunk_size=chunk_size)
    except BaseException:
        handle.close()
        raise
    return LocalResponse(status, headers, stream=stream)


def _parse_range(header: str | None, size: int) -> tuple[int, int] | object | None:
    """Return ``(first, last)`` of one ``bytes=`` range, ``_UNSATISFIABLE``, or None (whole).

    Other units, several ranges and malformed headers are ignored: the whole
    object is served (RFC 9110, section 14.2).
    """
    spec = _single_byte_range(header)
    if spec is None:
        return None
    first_text, last_text = spec
    if not first_text:
        suffix = int(last_text)
        first, last = max(0, size - suffix), size - 1
        satisfiable = suffix > 0 and size > 0
    else:
        first = int(first_text)
        last = min(int(last_text), size - 1) if last_text else size - 1
        satisfiable = first < size
    return (first, last) if satisfiable else _UNSATISFIABLE


def _single_byte_range(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    numbers_ok = all(
        not text or (text.isascii() and text.isdigit() and len(text) <= 19)
        for text in (first, last)
    )
    valid = (
        unit.strip().lower() == "bytes"
        and "," not in spec
        and dash == "-"
        and bool(first or last)
        and numbers_ok
        and (not first or not last or int(last) >= int(first))
    )
    return (first, last) if valid else None
