"""Keep-alive latency of the example app with several workers: uvicorn's, and with the fix.

``uvicorn --workers N`` leaves ``TCP_NODELAY`` off on Linux (uvicorn issue
#3149), so each response's body waits for the client's delayed ACK of its
headers (about 40 ms). Three servers on SQLite + LocalStorage, each asked the
same sequence of requests on one keep-alive connection (``GET`` of an unknown
recording: authentication, one query, a small JSON answer):

- one worker (``uvicorn ... --workers 1``), the baseline;
- ``uvicorn ... --workers 2``;
- ``python -m examples.fastapi_app.serve --workers 2`` (the listening socket says IPPROTO_TCP).

Printed: median and p90 latency, and each as a ratio to one worker.

    .venv/bin/python bench/bench_workers_nodelay.py [--requests 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for examples, tests.support

from bench.bench_http import HttpConnection
from examples.fastapi_app.auth import mint_token
from tests.support.servers import HOST, free_ports

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-nodelay-secret-0123456789abcdefghijklmnop"  # noqa: S105 - a throwaway test secret
MODES = {
    "uvicorn --workers 1": ["-m", "uvicorn", "examples.fastapi_app.main:app", "--workers", "1"],
    "uvicorn --workers 2": ["-m", "uvicorn", "examples.fastapi_app.main:app", "--workers", "2"],
    "serve --workers 2": ["-m", "examples.fastapi_app.serve", "--workers", "2"],
}


def start(arguments: list[str], workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start one server on a free port; return it once it answers."""
    (port,) = free_ports(1)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HELPPET_", "AWS_"))},
        "HELPPET_JWT_SECRET": SECRET,
        "DATABASE_URL": f"sqlite:///{workdir / 'api.db'}",
        "HELPPET_LOCAL_STORAGE_DIR": str(workdir / "files"),
    }
    command = [sys.executable, *arguments, "--host", HOST, "--port", str(port)]
    command += ["--log-level", "warning"]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{HOST}:{port}/openapi.json", timeout=1).is_success:
                return process, port
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{arguments} did not start")


async def latencies(port: int, count: int) -> list[float]:
    """Time ``count`` requests on one keep-alive connection (after one to connect)."""
    connection = HttpConnection(HOST, port)
    headers = {"Authorization": f"Bearer {mint_token(SECRET, uuid.uuid4())}"}
    target = f"/api/v1/recordings/{uuid.uuid4()}"
    await connection.request("GET", target, headers)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        status, _body = await connection.request("GET", target, headers)
        times.append(time.perf_counter() - started)
        assert status == 404, status
    connection.close()
    return times


def main() -> None:
    """Measure every mode, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as directory:
        for mode, arguments in MODES.items():
            workdir = Path(directory) / mode.replace(" ", "_")
            workdir.mkdir()
            process, port = start(arguments, workdir)
            try:
                results[mode] = asyncio.run(latencies(port, args.requests))
            finally:
                os.killpg(process.pid, 15)
                process.wait(timeout=20)
    base = statistics.median(results["uvicorn --workers 1"])
    print(f"{args.requests} sequential keep-alive requests each")
    print(f"{'':22}{'median':>10}{'p90':>10}{'median / one worker':>22}")
    for mode, times in results.items():
        median = statistics.median(times)
        p90 = statistics.quantiles(times, n=10)[-1]
        print(f"{mode:22}{median * 1e3:8.2f} ms{p90 * 1e3:7.2f} ms{median / base:20.2f}")


if __name__ == "__main__":
    main()
