"""Backends that wrap real ones and fail or count on demand (hand-written, not mocks)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from helppet_recordings.errors import (
    RepositoryUnavailableError,
    StorageError,
    StorageUnavailableError,
)


class _Wrapper:
    """Forwards every call to ``inner``; fails the methods named in ``failing``; counts calls."""

    error_factory: Callable[[], Exception]

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.failing: set[str] = set()
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls[name] += 1
            if name in self.failing:
                raise self.error_factory()
            return target(*args, **kwargs)

        return call


class FaultyStorage(_Wrapper):
    """A storage whose named methods raise STORAGE_UNAVAILABLE, as an outage would."""

    @staticmethod
    def error_factory() -> Exception:
        """The error an unreachable S3 produces after translation."""
        return StorageUnavailableError("injected outage", retry_after=3)

    @property
    def bucket(self) -> str:
        """The wrapped storage's bucket."""
        return str(self._inner.bucket)


class RefusingStorage(FaultyStorage):
    """A storage whose named methods are refused (403 AccessDenied), as a missing permission is."""

    @staticmethod
    def error_factory() -> Exception:
        """The error S3 refusing the role produces after translation."""
        return StorageError("Storage refused the request", storage_error="AccessDenied")


class FaultyRepository(_Wrapper):
    """A repository whose named methods raise DATABASE_UNAVAILABLE, as a lost connection would."""

    @staticmethod
    def error_factory() -> Exception:
        """The error an unreachable database produces after translation."""
        return RepositoryUnavailableError("injected outage", retry_after=2)
