"""Browser origins allowed to call the API and upload to the bucket (``HELPPET_CORS_ORIGINS``).

The one parser of allowed origins: :class:`~helppet_recordings.environment.DeploymentSettings`,
the FastAPI integration's CORS and ``helppet-recordings bucket-setup`` and
``doctor`` all see the origins it returns. An origin is written as browsers
send it in ``Origin``: ``scheme://host[:port]``, http or https, no path, no
user, no wildcard. Scheme and host are case-insensitive and browsers send them
lowercased (and leave a scheme's default port out), so an allowed origin is
kept lowercased, without a final ``/`` or a default port: that form is what the
API compares and what the bucket's CORS rule lists (S3 compares its
``AllowedOrigins`` as written).

Wildcards (``*``, ``https://*.example.org``) are refused: the API has no
wildcard matching, and a pattern would let in hosts nobody listed. List each
origin.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from typing import Final

__all__ = ["normalise_origin", "parse_cors_origins"]

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_HOST: Final = re.compile(r"[a-z0-9._-]+|[0-9a-f:.]+")
"""A host as browsers send it: a name (IDNs in their xn-- form), an IPv4 or an IPv6 address."""
_FORM: Final = (
    "write scheme://host[:port], http or https, no path and no wildcard "
    "(e.g. https://app.example.com)"
)


def normalise_origin(origin: str) -> str:
    """Return ``origin`` as origins are compared: stripped, lowercased, without a final ``/``.

    An origin's scheme and host are case-insensitive (and it has no path),
    so ``https://App.Example`` and ``https://app.example`` are one origin.
    Cheap enough for every request's ``Origin`` header.
    """
    return origin.strip().rstrip("/").lower()


def parse_cors_origins(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """Return the origins in ``value`` (``HELPPET_CORS_ORIGINS``'s comma-separated form or a list).

    Each is normalised (:func:`normalise_origin`, and a scheme's default port
    dropped: ``https://a.example:443`` is ``https://a.example``); duplicates
    and empty entries are dropped, so ``""`` is no origin at all. Raises
    ``ValueError`` naming the position of the first entry that is not an
    origin (never the entry itself: configuration errors quote no values).
    """
    if value is None:
        return ()
    entries = value.split(",") if isinstance(value, str) else list(value)
    origins: list[str] = []
    position = 0
    for entry in entries:
        origin = normalise_origin(entry)
        if not origin:
            continue
        position += 1
        canonical = _canonical(origin)
        if canonical is None:
            msg = f"origin {position} is not a browser origin: {_FORM}"
            raise ValueError(msg)
        if canonical not in origins:
            origins.append(canonical)
    return tuple(origins)


def _canonical(origin: str) -> str | None:
    """Return ``origin`` (normalised) as browsers serialise it, or None if it is no origin."""
    if "*" in origin:
        return None
    parts = urllib.parse.urlsplit(origin)
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        return None
    host = parts.hostname
    if (
        parts.scheme not in _DEFAULT_PORTS
        or host is None
        or not _HOST.fullmatch(host)
        or parts.username is not None
        or origin != f"{parts.scheme}://{parts.netloc}"  # a path, query, fragment, bare ':'
        or parts.netloc.endswith(":")
    ):
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[parts.scheme]:
        netloc += f":{port}"  # as browsers write it: 08080 is 8080
    return f"{parts.scheme}://{netloc}"
