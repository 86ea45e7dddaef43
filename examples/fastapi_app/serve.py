"""Serve the example app with several worker processes, with ``TCP_NODELAY`` on every connection.

``uvicorn --workers N`` binds the listening socket itself without naming the
protocol (``proto`` 0); accepted connections inherit that, and asyncio turns
``TCP_NODELAY`` on only for sockets that say ``IPPROTO_TCP``. Nagle's
algorithm then holds each response's body until the client acknowledges its
headers, which a Linux client delays by about 40 ms: every keep-alive request
after the first takes that long (uvicorn issue #3149; ``docs/deployment.md``
has the measurement). One worker (``--workers 1``) is not affected.

This launcher runs uvicorn's own multi-process supervisor on a listening
socket that says ``IPPROTO_TCP``::

    python -m examples.fastapi_app.serve --host 0.0.0.0 --port 8000 --workers 4

Configuration comes from the environment, as for ``uvicorn examples.fastapi_app.main:app``.
"""

from __future__ import annotations

import argparse
import inspect
import socket
from collections.abc import Sequence

import uvicorn
from uvicorn.supervisors import Multiprocess

__all__ = ["NoDelayConfig", "main"]

APP = "examples.fastapi_app.main:app"


class NoDelayConfig(uvicorn.Config):
    """A uvicorn configuration whose TCP listening socket says ``IPPROTO_TCP``."""

    def bind_socket(self) -> socket.socket:
        """Bind as uvicorn does, then mark the socket as TCP so connections get ``TCP_NODELAY``."""
        sock = super().bind_socket()
        if sock.family in {socket.AF_INET, socket.AF_INET6} and sock.proto != socket.IPPROTO_TCP:
            # The same file descriptor, as a socket object that reports its protocol.
            sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
            sock.set_inheritable(True)
        return sock


def main(argv: Sequence[str] | None = None) -> None:
    """Serve :data:`APP` on ``--host``/``--port`` with ``--workers`` processes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--no-access-log", dest="access_log", action="store_false")
    args = parser.parse_args(argv)
    config = NoDelayConfig(
        APP,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=args.access_log,
    )
    sock = config.bind_socket()
    if config.workers <= 1:
        uvicorn.Server(config).run(sockets=[sock])
        return
    if "target" in inspect.signature(Multiprocess).parameters:  # older uvicorn
        supervisor = Multiprocess(config, target=uvicorn.Server(config).run, sockets=[sock])  # type: ignore[call-arg]
    else:
        supervisor = Multiprocess(config, sockets=[sock])
    supervisor.run()


if __name__ == "__main__":
    main()
