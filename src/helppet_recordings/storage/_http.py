"""HTTP details shared by storage backends."""

from __future__ import annotations

import urllib.parse
from typing import Final

__all__ = ["DOWNLOAD_CACHE_CONTROL", "content_disposition"]

DOWNLOAD_CACHE_CONTROL: Final = "private, no-store"
"""What a download answer says about caching: clinic audio is kept by no cache."""


def content_disposition(filename: str) -> str:
    """Return an ``attachment`` Content-Disposition naming ``filename`` (RFC 6266).

    The plain ``filename`` parameter carries an ASCII fallback with quotes and
    backslashes removed; ``filename*`` carries the exact name, UTF-8 and
    percent-encoded, for clients that understand it.
    """
    fallback = "".join(ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\' else "_" for ch in filename)
    encoded = urllib.parse.quote(filename, safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
