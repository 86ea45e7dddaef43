"""Server memory while 120 clients without a ticket stream garbage at LocalStorage's receiver.

uvicorn serves the bare ASGI adapter the tests use (``tests/support/local_asgi.py``)
around a ``LocalStorage`` in a temporary directory, in a subprocess, so its
memory can be read from ``/proc/<pid>/status``. Three loads, each on a fresh
server (so one load's freed but still resident memory cannot hide the next
one's growth), warmed up with four uploads and four garbage connections:

1. **baseline**: 120 clients at once, each POSTing a valid ticket and a
   256 KiB file (what the server holds for legitimate uploads);
2. **garbage**: 120 clients without a ticket, each opening a POST that
   declares 1 GiB of ``multipart/form-data`` and streaming random bytes as
   fast as it can; when the server answers or cuts it off it reconnects and
   starts again, until ``--seconds`` have passed;
3. **silent**: 120 clients without a ticket that send the request head and a
   few bytes, then nothing; the server is started with ``--timeout``-second
   receive timeouts, and the time until each is refused is measured.

Memory is the server's peak RSS growth during each load: ``VmHWM`` after it
minus ``VmRSS`` before it, with the high-water mark reset before the load
(``/proc/<pid>/clear_refs``); a sampler also records the highest ``VmRSS``
seen. The idle server's RSS is printed next to it, and the garbage growth is
compared with the baseline's. Target: garbage growth under 64 MiB.

    .venv/bin/python bench/bench_local_receiver.py [--clients 120] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_local_upload import proc_status_kib, reset_peak, stop_server  # noqa: E402

from helppet_recordings.storage.local import LocalStorage  # noqa: E402 - after the path is set

HOST = "127.0.0.1"
MiB = 1024 * 1024
SECRET = secrets.token_urlsafe(32)
GROWTH_TARGET_MIB = 64
BOUNDARY = "benchboundary"
UPLOAD_BYTES = 256 * 1024
GARBAGE = os.urandom(64 * 1024)

APP = """
import os

from helppet_recordings.storage.local import LocalStorage
from tests.support.local_asgi import LocalStorageApp

_timeout = float(os.environ["BENCH_TIMEOUT"])
app = LocalStorageApp(
    LocalStorage(
        os.environ["BENCH_ROOT"], os.environ["BENCH_BASE_URL"], os.environ["BENCH_SECRET"],
        fsync=False,
    ),
    idle_timeout=_timeout,
    fields_timeout=_timeout,
)
"""


# ---------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_server(workdir: Path, timeout: float) -> tuple[subprocess.Popen[bytes], int]:
    (workdir / "bench_receiver_app.py").write_text(APP)
    port = free_port()
    env = {
        **os.environ,
        "BENCH_ROOT": str(workdir / "store"),
        "BENCH_BASE_URL": f"http://{HOST}:{port}",
        "BENCH_SECRET": SECRET,
        "BENCH_TIMEOUT": str(timeout),
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench_receiver_app:app",
        "--app-dir",
        str(workdir),
        "--host",
        HOST,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        "--backlog",
        "1024",
    ]
    log = (workdir / "uvicorn.log").open("wb")
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return process, port
        except OSError:
            time.sleep(0.1)
    stop_server(process)
    tail = (workdir / "uvicorn.log").read_text(errors="replace")[-3000:]
    msg = f"the server did not start:\n{tail}"
    raise RuntimeError(msg)


class Sampler:
    """Reads the server's VmRSS every 20 ms in a thread; ``peak_kib`` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._stop = threading.Event()
        self.peak_kib = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, proc_status_kib(self._pid, "VmRSS"))
            self._stop.wait(0.02)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(pid: int, load: Any) -> dict[str, Any]:
    """Run ``load`` (a coroutine factory) and return the server's memory around it."""
    rss_before = proc_status_kib(pid, "VmRSS")
    reset = reset_peak(pid)
    with Sampler(pid) as sampler:
        started = time.perf_counter()
        outcome = asyncio.run(load())
        elapsed = time.perf_counter() - started
    hwm = proc_status_kib(pid, "VmHWM")
    return {
        "rss_before_mib": rss_before / 1024,
        "peak_growth_mib": (max(hwm, sampler.peak_kib) - rss_before) / 1024,
        "sampled_peak_growth_mib": (sampler.peak_kib - rss_before) / 1024,
        "peak_reset": reset,
        "seconds": elapsed,
        **outcome,
    }


# ---------------------------------------------------------------------------- clients


def request_head(port: int, length: int) -> bytes:
    return (
        f"POST /upload HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def upload_body(fields: Mapping[str, str], payload: bytes) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n".encode()
        + payload
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    return b"".join(parts)


def status_of(answer: bytes) -> int | None:
    if not answer.startswith(b"HTTP/1.1 "):
        return None
    return int(answer.split(b" ", 2)[1])


async def read_answer(reader: asyncio.StreamReader, timeout: float) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(4096), timeout)
    except (TimeoutError, ConnectionError, OSError):
        return b""


async def valid_uploads(port: int, bodies: list[bytes]) -> dict[str, Any]:
    """Every body POSTed at once on its own connection; returns the statuses seen."""

    async def one(body: bytes) -> int | None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(request_head(port, len(body)) + body)
            await writer.drain()
            return status_of(await read_answer(reader, 60))
        finally:
            writer.close()

    statuses = await asyncio.gather(*(one(body) for body in bodies))
    return {"statuses": {str(s): statuses.count(s) for s in set(statuses)}}


async def garbage_clients(port: int, clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` connections streaming random bytes until ``seconds`` pass, reconnecting."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    statuses: list[int | None] = []
    sent_per_connection: list[int] = []

    async def one() -> None:
        while loop.time() < deadline:
            try:
                reader, writer = await asyncio.open_connection(HOST, port)
            except OSError:
                await asyncio.sleep(0.01)
                continue
            sent = 0
            try:
                writer.write(request_head(port, 1 << 30))
                while loop.time() < deadline and not reader.at_eof():
                    writer.write(GARBAGE)
                    await asyncio.wait_for(writer.drain(), max(0.01, deadline - loop.time()))
                    sent += len(GARBAGE)
            except (TimeoutError, ConnectionError, OSError):
                pass
            statuses.append(status_of(await read_answer(reader, 0.5)))
            sent_per_connection.append(sent)
            writer.close()

    await asyncio.gather(*(one() for _ in range(clients)))
    refused = sum(1 for s in statuses if s == 400)
    return {
        "connections": len(statuses),
        "answered_400": refused,
        "cut_off_without_answer": sum(1 for s in statuses if s is None),
        "median_kib_sent_per_connection": statistics.median(sent_per_connection) / 1024,
    }


async def silent_clients(port: int, clients: int, limit: float) -> dict[str, Any]:
    """``clients`` connections that send the head and a few bytes, then wait for the answer."""
    loop = asyncio.get_running_loop()

    async def one() -> tuple[int | None, float]:
        reader, writer = await asyncio.open_connection(HOST, port)
        started = loop.time()
        try:
            writer.write(request_head(port, 1 << 20) + f"--{BOUNDARY}\r\n".encode())
            await writer.drain()
            answer = await read_answer(reader, limit)
            return status_of(answer), loop.time() - started
        finally:
            writer.close()

    results = await asyncio.gather(*(one() for _ in range(clients)))
    waits = [seconds for status, seconds in results if status == 400]
    return {
        "refused_400": len(waits),
        "max_wait_seconds": max(waits) if waits else None,
        "median_wait_seconds": statistics.median(waits) if waits else None,
    }


# ---------------------------------------------------------------------------- main


def bodies(store: Path, count: int) -> list[bytes]:
    """``count`` multipart bodies, each a fresh valid ticket and a random 256 KiB file."""
    signer = LocalStorage(store, f"http://{HOST}:9", SECRET, fsync=False)
    tickets = [
        signer.create_upload(
            key=f"bench/{secrets.token_hex(8)}.wav",
            content_type="audio/wav",
            max_size=UPLOAD_BYTES,
            expires_in=600,
        )
        for _ in range(count)
    ]
    return [upload_body(t.fields, os.urandom(UPLOAD_BYTES)) for t in tickets]


def run_load(workdir: Path, timeout: float, load: Any) -> dict[str, Any]:
    """Start a fresh server, warm it up, measure ``load(port, store)``, stop it."""
    workdir.mkdir()
    store = workdir / "store"
    process, port = start_server(workdir, timeout)
    try:
        # Warm-up: imports, the executor's threads, first allocations.
        asyncio.run(valid_uploads(port, bodies(store, 4)))
        asyncio.run(garbage_clients(port, 4, 0.5))
        time.sleep(0.5)
        idle_mib = proc_status_kib(process.pid, "VmRSS") / 1024
        prepared = load(port, store)
        result = measure(process.pid, prepared)
    finally:
        stop_server(process)
    objects = store / "objects" / "bench"
    result["idle_rss_mib"] = idle_mib
    result["objects_stored"] = len(list(objects.iterdir())) if objects.exists() else 0
    result["staging_files_left"] = len(list((store / ".incoming").glob("*.part")))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=120)
    parser.add_argument("--seconds", type=float, default=5.0, help="how long garbage streams")
    parser.add_argument(
        "--timeout", type=float, default=2.0, help="the server's idle and fields timeouts"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args()
    n = args.clients

    def valid(port: int, store: Path) -> Any:
        prepared = bodies(store, n)
        return lambda: valid_uploads(port, prepared)

    def garbage(port: int, _: Path) -> Any:
        return lambda: garbage_clients(port, n, args.seconds)

    def silent(port: int, _: Path) -> Any:
        return lambda: silent_clients(port, n, args.timeout + 30)

    with tempfile.TemporaryDirectory(prefix="bench-local-receiver-", dir=ROOT) as tmp:
        workdir = Path(tmp)
        results = {
            "clients": n,
            "baseline_valid_uploads": run_load(workdir / "valid", args.timeout, valid),
            "garbage_without_ticket": run_load(workdir / "garbage", args.timeout, garbage),
            "silent_without_ticket": run_load(workdir / "silent", args.timeout, silent),
        }
    baseline = results["baseline_valid_uploads"]
    attack = results["garbage_without_ticket"]
    quiet = results["silent_without_ticket"]
    ratio = attack["peak_growth_mib"] / max(baseline["peak_growth_mib"], 0.1)
    results["ratio_garbage_vs_valid_growth"] = ratio
    print(f"LocalStorage receiver, {n} concurrent clients; server RSS (a fresh server per load)")
    print(
        f"  baseline: {n} valid 256 KiB uploads     idle {baseline['idle_rss_mib']:5.1f} MiB, "
        f"peak growth {baseline['peak_growth_mib']:6.1f} MiB; statuses {baseline['statuses']}, "
        f"{baseline['objects_stored']} objects"
    )
    print(
        f"  {n} ticketless clients streaming garbage idle {attack['idle_rss_mib']:5.1f} MiB, "
        f"peak growth {attack['peak_growth_mib']:6.1f} MiB; over {args.seconds:.0f} s "
        f"{attack['connections']} connections, {attack['answered_400']} answered 400, "
        f"{attack['cut_off_without_answer']} cut off, median "
        f"{attack['median_kib_sent_per_connection']:.0f} KiB sent each (socket buffers included)"
    )
    wait = quiet["max_wait_seconds"]
    print(
        f"  {n} silent ticketless clients           idle {quiet['idle_rss_mib']:5.1f} MiB, "
        f"peak growth {quiet['peak_growth_mib']:6.1f} MiB; {quiet['refused_400']} refused 400, "
        f"the last after {float('nan') if wait is None else wait:.2f} s "
        f"(timeout {args.timeout:.1f} s)"
    )
    print(f"  ratio garbage growth / valid-upload growth  {ratio:.2f}")
    left = sum(r["staging_files_left"] for r in (baseline, attack, quiet))
    print(f"  staging files left behind: {left}")
    met = attack["peak_growth_mib"] < GROWTH_TARGET_MIB
    print(
        f"  target: garbage growth < {GROWTH_TARGET_MIB} MiB: {'met' if met else 'MISSED'}"
        f"{'' if attack['peak_reset'] else ' (peak not reset: includes start-up)'}"
    )
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
