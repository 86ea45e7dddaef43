"""The multi-worker launcher: its listening socket gives every connection TCP_NODELAY."""

from __future__ import annotations

import asyncio
import socket

from examples.fastapi_app.serve import NoDelayConfig


class _Capture(asyncio.Protocol):
    """Records TCP_NODELAY of the accepted connection's socket."""

    nodelay: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Read the option asyncio left on the connection, then close it."""
        sock = transport.get_extra_info("socket")
        _Capture.nodelay = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        transport.close()


async def _accepted_nodelay(sock: socket.socket) -> int | None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Capture, sock=sock)
    host, port = sock.getsockname()[:2]
    _reader, writer = await asyncio.open_connection(host, port)
    for _ in range(100):
        if _Capture.nodelay is not None:
            break
        await asyncio.sleep(0.01)
    writer.close()
    server.close()
    await server.wait_closed()
    return _Capture.nodelay


def test_launcher_socket_is_tcp_and_connections_get_nodelay() -> None:
    """NoDelayConfig binds a socket that says IPPROTO_TCP, so asyncio sets TCP_NODELAY."""
    config = NoDelayConfig("examples.fastapi_app.main:app", host="127.0.0.1", port=0)
    sock = config.bind_socket()
    assert sock.family == socket.AF_INET
    assert sock.proto == socket.IPPROTO_TCP
    assert sock.get_inheritable()
    assert asyncio.run(_accepted_nodelay(sock)) == 1
