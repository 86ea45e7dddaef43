"""Access logs without query strings: signed URLs carry their signatures there."""

from __future__ import annotations

import logging
from typing import Final

__all__ = ["ACCESS_LOGGER", "QueryStringFilter", "hide_query_strings"]

ACCESS_LOGGER: Final = "uvicorn.access"
"""The logger uvicorn writes one line per request to."""

_PATH_ARGUMENT: Final = 2
"""uvicorn logs ``(client, method, path with query, http version, status)``."""


class QueryStringFilter(logging.Filter):
    """Cut the query string off the request path in uvicorn's access log lines.

    LocalStorage's download and upload URLs (and any presigned URL a proxy
    passes through) carry an expiry and a signature in the query; whoever can
    read the log could otherwise replay them until they expire. The path is
    kept, so the log still says which route was called.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's path argument; never drop the record."""
        args = record.args
        if isinstance(args, tuple) and len(args) > _PATH_ARGUMENT:
            path = args[_PATH_ARGUMENT]
            if isinstance(path, str) and "?" in path:
                record.args = (
                    *args[:_PATH_ARGUMENT],
                    path.partition("?")[0],
                    *args[_PATH_ARGUMENT + 1 :],
                )
        return True


def hide_query_strings(logger: str | logging.Logger = ACCESS_LOGGER) -> None:
    """Install :class:`QueryStringFilter` on ``logger`` (uvicorn's access log), once."""
    target = logging.getLogger(logger) if isinstance(logger, str) else logger
    if not any(isinstance(existing, QueryStringFilter) for existing in target.filters):
        target.addFilter(QueryStringFilter())
