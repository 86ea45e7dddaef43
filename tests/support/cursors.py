"""Listing cursors as a client might edit them."""

from __future__ import annotations

import base64
import json

__all__ = ["cursor_moved_to"]


def cursor_moved_to(cursor: str, created_at: str) -> str:
    """``cursor`` with its position's time replaced (a client editing its own cursor)."""
    payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    payload["t"] = created_at
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
