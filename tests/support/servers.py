"""What the test-server harnesses share: the address, free ports, logs, stopping on exit."""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

HOST = "127.0.0.1"
"""The only address test servers bind to."""

LOG_TAIL_LINES = 40
"""How many trailing log lines a start-up failure quotes."""


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct TCP ports that were free on 127.0.0.1 a moment ago.

    All sockets stay bound until every port is chosen, so no port repeats.
    A port can still be taken by another process before the server binds it.
    """
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((HOST, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last ``lines`` lines of a log file (empty if there is none)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class StopsOnExit:
    """A context manager that calls ``self.stop()`` on the way out (it does not start)."""

    def stop(self) -> None:
        """Stop the server; subclasses implement it."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
