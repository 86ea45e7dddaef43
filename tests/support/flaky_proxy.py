"""A loopback TCP proxy that drops connections and answers 503 at random, and counts bytes.

It listens on 127.0.0.1 (the port is known as soon as the object exists, so
servers can be told to name it in the URLs they sign) and forwards each
connection to ``target``. With faults on, each new connection is, at random:

- refused with ``503 Service Unavailable`` (``Retry-After: 0``) after the
  request's first bytes arrived, then closed;
- dropped: closed after up to a few kilobytes of the request were read;
- cut: forwarded, but closed after a random number of bytes went upstream
  (a connection lost in the middle of a body);
- or forwarded untouched.

``bytes_up`` counts the bytes forwarded to the target (what the server
received); ``throttle`` slows forwarding to that many bytes per second per
connection. Everything runs in daemon threads and stops with :meth:`stop`.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections import Counter
from types import TracebackType
from typing import Self

HOST = "127.0.0.1"
CHUNK = 64 * 1024

_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 0\r\n"
    b"Connection: close\r\n\r\n"
)


class FlakyProxy:
    """Forwards 127.0.0.1:``port`` to ``target``, breaking connections at the given rates."""

    def __init__(
        self,
        target: tuple[str, int] | None = None,
        *,
        refuse_rate: float = 0.0,
        drop_rate: float = 0.0,
        cut_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.target = target
        self.refuse_rate = refuse_rate
        self.drop_rate = drop_rate
        self.cut_rate = cut_rate
        self.throttle: int | None = None
        self.faults = Counter[str]()
        self._bytes_up = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((HOST, 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{HOST}:{self.port}"

    @property
    def bytes_up(self) -> int:
        """Bytes forwarded to the target so far."""
        with self._lock:
            return self._bytes_up

    def wait_quiet(self, quiet: float, timeout: float) -> None:
        """Wait until no byte has been forwarded upstream for ``quiet`` seconds.

        A client killed mid-request leaves bytes in the proxy's socket buffers,
        which are still forwarded (a part sent whole lands after its sender
        died). Idle keep-alive connections, which never end, do not count.
        """
        deadline = time.monotonic() + timeout
        seen, since = self.bytes_up, time.monotonic()
        while time.monotonic() - since < quiet:
            if time.monotonic() > deadline:
                msg = f"the proxy was still forwarding after {timeout} s"
                raise TimeoutError(msg)
            time.sleep(0.05)
            if self.bytes_up != seen:
                seen, since = self.bytes_up, time.monotonic()

    def set_faults(self, *, refuse: float = 0.0, drop: float = 0.0, cut: float = 0.0) -> None:
        """Change the fault rates for connections accepted from now on."""
        with self._lock:
            self.refuse_rate, self.drop_rate, self.cut_rate = refuse, drop, cut

    def start(self) -> Self:
        """Start accepting connections."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting and close every open connection."""
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            _close(sock)
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals

    def _accept(self) -> None:
        self._listener.settimeout(0.1)  # wakes up to notice stop()
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _fate(self) -> tuple[str, int]:
        with self._lock:
            roll = self._random.random()
            limit = self._random.randint(1, 4 * 1024 * 1024)
            if roll < self.refuse_rate:
                fate = "refuse"
            elif roll < self.refuse_rate + self.drop_rate:
                fate = "drop"
            elif roll < self.refuse_rate + self.drop_rate + self.cut_rate:
                fate = "cut"
            else:
                fate = "forward"
            self.faults[fate] += 1
        return fate, limit

    def _serve(self, client: socket.socket) -> None:
        self._track(client)
        fate, limit = self._fate()
        try:
            if fate in {"refuse", "drop"}:
                client.settimeout(5)
                with contextlib.suppress(OSError):
                    client.recv(CHUNK)
                    if fate == "refuse":
                        client.sendall(_REFUSAL)
                return
            assert self.target is not None
            upstream = socket.create_connection(self.target)
            self._track(upstream)
            down = threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True)
            down.start()
            self._pump(client, upstream, limit if fate == "cut" else None, count=True)
            down.join(timeout=60)
            _close(upstream)
        finally:
            _close(client)

    def _pump(
        self, source: socket.socket, sink: socket.socket, limit: int | None, *, count: bool = False
    ) -> None:
        forwarded = 0
        try:
            while True:
                data = source.recv(CHUNK)
                if not data:
                    break
                if limit is not None and forwarded + len(data) > limit:
                    data = data[: max(0, limit - forwarded)]
                    self._send(sink, data, count=count)
                    break
                self._send(sink, data, count=count)
                forwarded += len(data)
        except OSError:
            pass
        finally:
            # Closing both ends makes the other direction's pump end too.
            _close(source)
            _close(sink)

    def _send(self, sink: socket.socket, data: bytes, *, count: bool) -> None:
        if not data:
            return
        throttle = self.throttle
        if throttle:
            time.sleep(len(data) / throttle)
        sink.sendall(data)
        if count:
            with self._lock:
                self._bytes_up += len(data)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
