"""Transcribers by name, imported on first use (each needs its own extra)."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any, Final

from helppet_recordings.errors import ValidationError
from helppet_recordings.transcription.base import Transcriber

__all__ = [
    "BUILTIN_TRANSCRIBERS",
    "available_transcribers",
    "get_transcriber",
    "register_transcriber",
]

BUILTIN_TRANSCRIBERS: Final = {
    "local": "helppet_recordings.transcription.local:LocalTranscriber",
    "openai": "helppet_recordings.transcription.openai:OpenAITranscriber",
    "aws": "helppet_recordings.transcription.aws:AwsTranscribeTranscriber",
}
"""The bundled transcribers: name -> ``module:Class``.

Their extras: ``local-transcriber``, ``openai``, ``aws``.
"""

_registry: dict[str, str | Callable[..., Transcriber]] = dict(BUILTIN_TRANSCRIBERS)
_lock = threading.Lock()


def register_transcriber(name: str, target: str | Callable[..., Transcriber]) -> None:
    """Make ``get_transcriber(name)`` build ``target``: a callable or a ``module:attribute`` path.

    A path is imported only when first used, so registering costs nothing.
    Registering an existing name replaces it.
    """
    if not name:
        raise ValidationError.for_field("name", "must not be empty")
    with _lock:
        _registry[name] = target


def available_transcribers() -> list[str]:
    """Return the registered names, sorted."""
    with _lock:
        return sorted(_registry)


def get_transcriber(name: str, **options: Any) -> Transcriber:
    """Build the transcriber registered as ``name`` with ``options``.

    ``local``, ``openai`` and ``aws`` are bundled. Raises
    ``MissingDependencyError`` (naming the extra to install) when the
    transcriber's library is missing, and ``VALIDATION_ERROR`` for an unknown
    name.
    """
    with _lock:
        target = _registry.get(name)
    if target is None:
        raise ValidationError.for_field(
            "transcriber", f"must be one of {', '.join(available_transcribers())}"
        )
    if isinstance(target, str):
        module_name, _, attribute = target.partition(":")
        # A missing library raises MissingDependencyError from the module itself.
        factory = getattr(importlib.import_module(module_name), attribute)
        with _lock:
            if _registry.get(name) == target:
                _registry[name] = factory
    else:
        factory = target
    transcriber: Transcriber = factory(**options)
    return transcriber
