"""Upload 100 MiB through LocalStorage's receiver over loopback; compare with a disk copy.

The server is the FastAPI example (``uvicorn examples.fastapi_app.main:app``)
in a subprocess, on LocalStorage and SQLite in a temporary directory, so its
memory can be read from ``/proc/<pid>/status``. Each round:

1. initiates an upload through the API (a real signed ticket);
2. POSTs the file as multipart/form-data: the client streams it from disk
   with ``sendfile`` (so the client costs as little CPU as possible on this
   2-core machine) and the time runs from the first byte sent to the answer;
3. completes it through the API and checks the stored bytes' SHA-256.

The server's peak memory growth is ``VmHWM`` after the uploads minus ``VmRSS``
before them, with the high-water mark reset (``/proc/<pid>/clear_refs``) after
a warm-up upload. The baseline copies the same file on the same disk with
``shutil.copyfile``, plain and followed by ``fsync`` (the receiver fsyncs
before it acknowledges), interleaved with the uploads. For scale, the same
file is also POSTed to uvicorn running an app that only reads and discards the
body: the ceiling of any Python ASGI receiver on this machine. Headline: the
fastest round of each. Targets: memory growth < 32 MiB; upload throughput
>= 0.5x copy.

    .venv/bin/python bench/bench_local_upload.py [--rounds 3] [--size-mib 100]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from examples.fastapi_app.auth import mint_token  # noqa: E402 - after the path is set

MiB = 1024 * 1024
API = "/api/v1/recordings"
SECRET = secrets.token_urlsafe(48)
MEMORY_TARGET_MIB = 32
RATIO_TARGET = 0.5


# ---------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def uvicorn_command(app: str, port: int, http: str, *options: str) -> list[str]:
    """The command line that serves ``app`` on 127.0.0.1:``port`` quietly with parser ``http``."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        *options,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        "--http",
        http,
    ]


def start_server(workdir: Path, max_size: int, http: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "HELPPET_JWT_SECRET": SECRET,
        "HELPPET_STORAGE": "local",
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
        "HELPPET_LOCAL_STORAGE_DIR": str(workdir / "files"),
        "HELPPET_PUBLIC_BASE_URL": base_url,
        "HELPPET_MAX_FILE_SIZE": str(max_size),
    }
    log = (workdir / "uvicorn.log").open("wb")
    process = subprocess.Popen(
        uvicorn_command("examples.fastapi_app.main:app", port, http),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(f"{base_url}/openapi.json", timeout=1).status_code == 200:
                return process, base_url
        except httpx.TransportError:
            time.sleep(0.1)
    stop_server(process)
    tail = (workdir / "uvicorn.log").read_text(errors="replace")[-3000:]
    msg = f"the server did not start:\n{tail}"
    raise RuntimeError(msg)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def proc_status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    msg = f"{field} not in /proc/{pid}/status"
    raise RuntimeError(msg)


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs); False if not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


DRAIN_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
"""


def start_drain_server(workdir: Path, http: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start uvicorn on an app that reads the body and discards it: the server's own ceiling."""
    (workdir / "drain_app.py").write_text(DRAIN_APP)
    port = free_port()
    process = subprocess.Popen(
        uvicorn_command("drain_app:app", port, http, "--app-dir", str(workdir)),
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, port
        except OSError:
            time.sleep(0.1)
    stop_server(process)
    msg = "the drain server did not start"
    raise RuntimeError(msg)


def drain_post(port: int, path: Path) -> float:
    """POST ``path`` as a raw body to the drain server; return the seconds until its answer."""
    size = path.stat().st_size
    with socket.create_connection(("127.0.0.1", port)) as sock, path.open("rb") as source:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        started = time.perf_counter()
        sock.sendall(
            f"POST / HTTP/1.1\r\nHost: bench\r\nContent-Length: {size}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        sock.sendfile(source)
        while sock.recv(65536):
            pass
        return time.perf_counter() - started


# ---------------------------------------------------------------------------- client


def initiate(client: httpx.Client, token: str) -> dict[str, Any]:
    response = client.post(
        f"{API}/upload/initiate",
        json={"filename": "bench.wav", "content_type": "audio/wav"},
        headers={"Authorization": f"Bearer {token}"},
    )
    response.raise_for_status()
    ticket: dict[str, Any] = response.json()
    return ticket


def post_file(ticket: dict[str, Any], path: Path) -> tuple[int, float]:
    """POST ``path`` as the ``file`` part with sendfile; return (status, seconds)."""
    boundary = f"bench{secrets.token_hex(12)}"
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in ticket["upload_fields"].items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.wav"\r\n'
        f"Content-Type: {ticket['upload_fields']['Content-Type']}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = path.stat().st_size
    url = urllib.parse.urlsplit(ticket["upload_url"])
    request = (
        f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(head) + size + len(tail)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with (
        socket.create_connection((url.hostname, url.port or 80)) as sock,
        path.open("rb") as source,
    ):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        started = time.perf_counter()
        sock.sendall(request + head)
        sock.sendfile(source)
        sock.sendall(tail)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        elapsed = time.perf_counter() - started
    status = int(answer.split(b" ", 2)[1])
    if status != 204:
        msg = f"upload refused: {answer[:500]!r}"
        raise RuntimeError(msg)
    return status, elapsed


def complete(client: httpx.Client, token: str, ticket: dict[str, Any], size: int) -> None:
    response = client.post(
        f"{API}/upload/complete/{ticket['recording_id']}",
        json={"file_size_bytes": size},
        headers={"Authorization": f"Bearer {token}"},
    )
    response.raise_for_status()


def wav_header(data_bytes: int) -> bytes:
    """A 44-byte PCM WAV header (16 kHz, 16-bit, mono) for ``data_bytes`` of samples.

    Completion checks the audio signature, so the random bytes go up as a WAV file.
    """
    fmt = struct.pack("<HHIIHH", 1, 1, 16_000, 32_000, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------- baseline


def timed_copy(source: Path, target: Path, *, fsync: bool) -> float:
    started = time.perf_counter()
    shutil.copyfile(source, target)
    if fsync:
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    elapsed = time.perf_counter() - started
    target.unlink()
    return elapsed


def flush_dirty_pages() -> None:
    """Write back dirty pages so one round's writeback does not slow the next round."""
    os.sync()


# ---------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument(
        "--http",
        default="auto",
        choices=["auto", "h11", "httptools"],
        help="uvicorn's HTTP parser (auto: httptools when installed, else h11)",
    )
    args = parser.parse_args()
    size = args.size_mib * MiB

    with tempfile.TemporaryDirectory(prefix="bench-local-upload-", dir=ROOT) as tmp:
        workdir = Path(tmp)
        source = workdir / "source.bin"
        with source.open("wb") as out:
            out.write(wav_header(size))
            for _ in range(args.size_mib):
                out.write(os.urandom(MiB))
        expected = sha256_file(source)
        warmup = workdir / "warmup.bin"
        warmup.write_bytes(wav_header(4 * MiB) + os.urandom(4 * MiB))
        drain_process, drain_port = start_drain_server(workdir, args.http)
        process, base_url = start_server(workdir, max_size=size + MiB, http=args.http)
        try:
            pid = process.pid
            token = mint_token(SECRET, uuid.uuid4())
            uploads: list[float] = []
            copies: list[float] = []
            synced_copies: list[float] = []
            drains: list[float] = []
            with httpx.Client(base_url=base_url, timeout=120) as client:
                ticket = initiate(client, token)
                post_file(ticket, warmup)  # imports, threads, first allocations
                complete(client, token, ticket, warmup.stat().st_size)
                flush_dirty_pages()
                rss_before = proc_status_kib(pid, "VmRSS")
                reset = reset_peak(pid)
                hwm_before = proc_status_kib(pid, "VmHWM")
                rounds: list[Callable[[], None]] = []

                def upload_round() -> None:
                    ticket = initiate(client, token)
                    _, seconds = post_file(ticket, source)
                    uploads.append(seconds)
                    complete(client, token, ticket, source.stat().st_size)
                    stored = workdir / "files" / "objects" / ticket["s3_key"]
                    if sha256_file(stored) != expected:
                        msg = "stored bytes differ from the source"
                        raise RuntimeError(msg)
                    stored.unlink()

                for _ in range(args.rounds):
                    rounds.extend(
                        [
                            upload_round,
                            lambda: copies.append(
                                timed_copy(source, workdir / "copy.bin", fsync=False)
                            ),
                            lambda: synced_copies.append(
                                timed_copy(source, workdir / "copy.bin", fsync=True)
                            ),
                            lambda: drains.append(drain_post(drain_port, source)),
                        ]
                    )
                for run in rounds:
                    run()
                    flush_dirty_pages()
                hwm_after = proc_status_kib(pid, "VmHWM")
                rss_after = proc_status_kib(pid, "VmRSS")
        finally:
            stop_server(process)
            stop_server(drain_process)

    mib = size / MiB
    best_upload = mib / min(uploads)
    best_copy = mib / min(copies)
    best_synced = mib / min(synced_copies)
    best_drain = mib / min(drains)
    growth_mib = (hwm_after - rss_before) / 1024
    results = {
        "size_mib": mib,
        "rounds": args.rounds,
        "upload_mib_s": {"best": best_upload, "median": mib / statistics.median(uploads)},
        "copy_mib_s": {"best": best_copy, "median": mib / statistics.median(copies)},
        "copy_fsync_mib_s": {
            "best": best_synced,
            "median": mib / statistics.median(synced_copies),
        },
        "drain_only_mib_s": {"best": best_drain, "median": mib / statistics.median(drains)},
        "ratio_vs_copy": best_upload / best_copy,
        "ratio_vs_drain_only": best_upload / best_drain,
        "ratio_vs_copy_fsync": best_upload / best_synced,
        "server_rss_before_mib": rss_before / 1024,
        "server_peak_growth_mib": growth_mib,
        "server_rss_after_mib": rss_after / 1024,
        "peak_reset": reset,
        "hwm_before_mib": hwm_before / 1024,
    }
    print(
        f"LocalStorage upload of {mib:.0f} MiB over loopback, {args.rounds} rounds (best | median)"
    )
    print(
        f"  upload through the receiver   {best_upload:8.1f} | "
        f"{results['upload_mib_s']['median']:8.1f} MiB/s"
    )
    print(
        f"  shutil.copyfile               {best_copy:8.1f} | "
        f"{results['copy_mib_s']['median']:8.1f} MiB/s"
    )
    print(
        f"  shutil.copyfile + fsync       {best_synced:8.1f} | "
        f"{results['copy_fsync_mib_s']['median']:8.1f} MiB/s"
    )
    print(
        f"  uvicorn only draining it      {best_drain:8.1f} | "
        f"{results['drain_only_mib_s']['median']:8.1f} MiB/s"
        "   (no parsing, hashing or disk: the server's own ceiling)"
    )
    print(f"  ratio upload / copy           {best_upload / best_copy:8.2f}")
    print(f"  ratio upload / (copy + fsync) {best_upload / best_synced:8.2f}")
    print(f"  ratio upload / drain only     {best_upload / best_drain:8.2f}")
    print(
        f"  server memory: RSS {rss_before / 1024:.1f} MiB before, peak growth "
        f"{growth_mib:.1f} MiB{'' if reset else ' (peak not reset: includes start-up)'}"
    )
    memory_ok = growth_mib < MEMORY_TARGET_MIB
    ratio_ok = best_upload / best_copy >= RATIO_TARGET
    print(
        f"  targets: memory growth < {MEMORY_TARGET_MIB} MiB: {'met' if memory_ok else 'MISSED'}; "
        f"throughput >= {RATIO_TARGET}x copy: {'met' if ratio_ok else 'MISSED'}"
        f" (vs copy + fsync: {'met' if best_upload / best_synced >= RATIO_TARGET else 'MISSED'})"
    )
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
