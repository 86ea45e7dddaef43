"""Checks of a transcriber's numeric options, made when it is built.

A wrong option is the deployment's mistake, not the recording's: it raises
``TranscriberConfigurationError`` naming the option (the worker keeps the
recording waiting), never a ``TypeError`` or ``ValueError`` after audio was
decoded or a paid request was sent.
"""

from __future__ import annotations

import math

from helppet_recordings.transcription.errors import TranscriberConfigurationError

__all__ = ["positive_seconds", "whole_number"]


def positive_seconds(value: object, parameter: str, *, zero: bool = False) -> float:
    """Return ``value`` as a float: a finite number of seconds above 0 (or 0, with ``zero``)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        msg = f"{parameter} must be a finite number of seconds"
        raise TranscriberConfigurationError(msg, parameter=parameter)
    if value < 0 or (value == 0 and not zero):
        msg = f"{parameter} must be {'at least' if zero else 'above'} 0 seconds"
        raise TranscriberConfigurationError(msg, parameter=parameter)
    return float(value)


def whole_number(value: object, parameter: str, *, minimum: int) -> int:
    """Return ``value``: an integer (not a boolean) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        msg = f"{parameter} must be an integer of at least {minimum}"
        raise TranscriberConfigurationError(msg, parameter=parameter)
    return value
