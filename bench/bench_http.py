"""The HTTP path against a hand-written app: the example API versus ``bare_http_app.py``.

Three apps run under uvicorn (one worker each, started here) on the same
PostgreSQL cluster (a database of the package's schema each) and the same
SeaweedFS server, both started with the harnesses in ``tests/support``: the
example app (``package``), the bare app as the issue defines it (``bare``:
HEAD + one UPDATE to complete) and the bare app doing the integrity work the
package does (``bare-int``, ``BARE_INTEGRITY=1``: staging key, one ranged GET
for size, type, encryption and the audio signature, a conditional copy to the
final key, a delete). A
small asyncio HTTP/1.1 client on loopback keeps one keep-alive connection per
simulated phone and drives, at concurrency 1, 8 and 32:

- ``initiate``: ``POST /upload/initiate`` in a loop, declaring the file's
  SHA-256 as the package's client does (every app pins it in the POST policy;
  the package's ticket then names the final key);
- ``flow``: initiate, the upload to SeaweedFS (the phone's own step, the same
  for both apps), complete. Its throughput counts whole flows; its latencies
  are the two API calls' time, without the upload.

Rounds are interleaved (the order rotates every round) so that drift in the
machine's speed hits all alike. Printed per cell: requests (or flows) per
second (and the lowest and highest ratio of a single round, run side by side:
how far the machine's noise moves a cell), p50 and p99, and the server's CPU
time per request, each as a ratio package / bare, then again as package /
bare-int, with the CPU PostgreSQL and SeaweedFS (all their processes) and the
load generator used per operation. Target (against ``bare``): throughput >=
0.9 and p99 <= 1.2 everywhere. After the run, the PostgreSQL sessions each app
opened and its transactions per request.

    .venv/bin/python bench/bench_http.py [--rounds 5] [--seconds 4] [--concurrency 1 8 32]

Five rounds by default: with three, a cell of the same code moved by up to
0.12 between runs (flows at c=8), more than the margins measured.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.support, examples

from examples.demo import tone_wav
from examples.fastapi_app.auth import mint_token
from tests.support.postgres import PostgresServer
from tests.support.seaweedfs import SeaweedEndpoint, SeaweedServer, create_bucket
from tests.support.servers import HOST, free_ports

from helppet_recordings.repositories.sqlalchemy import SqlAlchemyRepository

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-http-secret-0123456789abcdefghijklmnop"  # noqa: S105 - a throwaway test secret
API = "/api/v1/recordings"
BUCKET = "bench-http"
START_TIMEOUT = 60.0
AUDIO = tone_wav(seconds=0.1)
INITIATE_BODY = json.dumps(
    {
        "filename": "visit.wav",
        "content_type": "audio/wav",
        "content_sha256": hashlib.sha256(AUDIO).hexdigest(),
    }
).encode()
TICKS = os.sysconf("SC_CLK_TCK")

# ----------------------------------------------------------------------------- client


class HttpConnection:
    """One keep-alive HTTP/1.1 connection: the least client work per request."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        """Send one request and return the status and body."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host}:{self._port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        fields = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if "content-length" in fields:
            content = await self._reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            content = await self._read_chunked()
        elif status in {204, 304} or method == "HEAD":
            content = b""
        else:
            content = await self._reader.read()
            self.close()
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, content

    async def _read_chunked(self) -> bytes:
        assert self._reader is not None
        parts = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await self._reader.readexactly(size + 2))
            if size == 0:
                return b"".join(parts)

    def close(self) -> None:
        """Close the connection (the next request opens another)."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


def multipart(fields: dict[str, str], file: bytes, content_type: str) -> tuple[bytes, str]:
    """Return a multipart/form-data body with every field, then the file, and its type."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        f"Content-Type: {content_type}\r\n\r\n".encode()
        + file
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Phone:
    """One simulated phone: a user, its token, a connection to the API and one to storage."""

    def __init__(self, port: int) -> None:
        self.api = HttpConnection(HOST, port)
        self.storage: HttpConnection | None = None
        self.headers = {
            "Authorization": f"Bearer {mint_token(SECRET, uuid.uuid4(), expires_in=36000)}",
            "Content-Type": "application/json",
        }

    async def initiate(self) -> dict[str, Any]:
        """Initiate an upload; return the ticket."""
        status, body = await self.api.request(
            "POST", f"{API}/upload/initiate", self.headers, INITIATE_BODY
        )
        if status != 200:
            raise RuntimeError(f"initiate answered {status}: {body[:300]!r}")
        ticket: dict[str, Any] = json.loads(body)
        return ticket

    async def upload(self, ticket: dict[str, Any]) -> None:
        """POST the audio to the ticket's URL, as the phone does."""
        url = urllib.parse.urlsplit(ticket["upload_url"])
        if self.storage is None:
            self.storage = HttpConnection(url.hostname or HOST, url.port or 80)
        body, content_type = multipart(
            ticket["upload_fields"], AUDIO, ticket["upload_fields"]["Content-Type"]
        )
        status, answer = await self.storage.request(
            "POST", url.path or "/", {"Content-Type": content_type}, body
        )
        if not 200 <= status < 300:
            raise RuntimeError(f"upload answered {status}: {answer[:300]!r}")

    async def complete(self, ticket: dict[str, Any]) -> None:
        """Complete the upload."""
        body = json.dumps({"file_size_bytes": len(AUDIO), "duration_seconds": 0.1}).encode()
        status, answer = await self.api.request(
            "POST", f"{API}/upload/complete/{ticket['recording_id']}", self.headers, body
        )
        if status != 200:
            raise RuntimeError(f"complete answered {status}: {answer[:300]!r}")

    def close(self) -> None:
        """Close both connections."""
        self.api.close()
        if self.storage is not None:
            self.storage.close()


async def initiate_once(phone: Phone) -> float:
    """One initiate; return its latency."""
    started = time.perf_counter()
    await phone.initiate()
    return time.perf_counter() - started


async def flow_once(phone: Phone) -> float:
    """Initiate, upload, complete; return the two API calls' latency."""
    started = time.perf_counter()
    ticket = await phone.initiate()
    initiated = time.perf_counter()
    await phone.upload(ticket)
    uploaded = time.perf_counter()
    await phone.complete(ticket)
    return (initiated - started) + (time.perf_counter() - uploaded)


OPERATIONS: dict[str, Callable[[Phone], Awaitable[float]]] = {
    "initiate": initiate_once,
    "flow": flow_once,
}

# ----------------------------------------------------------------------------- servers


class App:
    """One app under ``python -m uvicorn``, one worker, on 127.0.0.1."""

    def __init__(self, name: str, target: str, env: dict[str, str], workdir: Path) -> None:
        self.name = name
        (self.port,) = free_ports(1)
        self.log_path = workdir / f"{name}.log"
        self.requests = 0
        base = {k: v for k, v in os.environ.items() if not k.startswith(("HELPPET_", "AWS_"))}
        command = [sys.executable, "-m", "uvicorn", *target.split()]
        command += ["--host", HOST, "--port", str(self.port), "--log-level", "warning"]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**base, **env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{name} exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://{HOST}:{self.port}/openapi.json", timeout=1).is_success:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{name} did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server process has used."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def stop(self) -> None:
        """SIGTERM the server's process group; SIGKILL if it lingers."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def tree_cpu_seconds(roots: Sequence[int]) -> float:
    """User plus system CPU of ``roots`` and all their descendants, with the children reaped.

    By parentage, not process group: PostgreSQL's backends start sessions of their own.
    """
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process exited while we looked
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        ticks[pid] = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    total = 0
    for pid, count in ticks.items():
        ancestor = pid
        while ancestor > 1 and ancestor not in roots:
            ancestor = parents.get(ancestor, 0)
        if ancestor in roots:
            total += count
    return total / TICKS


BACKEND_ROOTS: list[int] = []
"""The PostgreSQL and SeaweedFS server processes, which every app shares (filled by servers)."""


def backend_cpu_seconds() -> float:
    """CPU time PostgreSQL and SeaweedFS have used, all their processes together."""
    return tree_cpu_seconds(BACKEND_ROOTS)


@dataclass
class Cell:
    """What one app measured for one operation at one concurrency, over every round."""

    count: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    backend_cpu: float = 0.0
    client_cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)
    round_rates: list[float] = field(default_factory=list)
    """Each round's operations per second, in round order (rounds of all apps interleave)."""

    @property
    def rate(self) -> float:
        """Operations per second."""
        return self.count / self.seconds

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile latency, in seconds."""
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[int(q) - 1]

    @property
    def cpu_per_op(self) -> float:
        """Server CPU seconds per operation."""
        return self.cpu / self.count

    @property
    def backend_cpu_per_op(self) -> float:
        """PostgreSQL and SeaweedFS CPU seconds per operation."""
        return self.backend_cpu / self.count

    @property
    def client_cpu_per_op(self) -> float:
        """The load generator's CPU seconds per operation (its HTTP client and the uploads)."""
        return self.client_cpu / self.count


async def drive(
    app: App, operation: str, concurrency: int, seconds: float, cell: Cell | None
) -> None:
    """Run ``concurrency`` phones against ``app`` for ``seconds``; add to ``cell``."""
    run = OPERATIONS[operation]
    phones = [Phone(app.port) for _ in range(concurrency)]
    latencies: list[float] = []
    count = 0

    async def phone_loop(phone: Phone, deadline: float) -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            latencies.append(await run(phone))
            count += 1

    for phone in phones:  # connect first, so that the run measures requests only
        await phone.initiate()
    app.requests += concurrency
    cpu_before = app.cpu_seconds()
    backend_before = backend_cpu_seconds()
    client_before = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(phone_loop(phone, started + seconds) for phone in phones))
    elapsed = time.perf_counter() - started
    cpu = app.cpu_seconds() - cpu_before
    backend = backend_cpu_seconds() - backend_before
    client = time.process_time() - client_before
    for phone in phones:
        phone.close()
    app.requests += count * (2 if operation == "flow" else 1)
    if cell is not None:
        cell.count += count
        cell.seconds += elapsed
        cell.cpu += cpu
        cell.backend_cpu += backend
        cell.client_cpu += client
        cell.latencies += latencies
        cell.round_rates.append(count / elapsed)


# ----------------------------------------------------------------------------- set-up


@contextmanager
def servers(workdir: Path) -> Iterator[tuple[PostgresServer, SeaweedEndpoint, list[App]]]:
    """PostgreSQL, SeaweedFS and the three apps; everything is stopped on the way out."""
    with ExitStack() as stack:
        postgres = stack.enter_context(PostgresServer())
        postgres.start()
        package_url = postgres.create_database("package")
        bare_url = postgres.create_database("bare")
        integrity_url = postgres.create_database("bare_int")
        for url in (package_url, bare_url, integrity_url):
            with SqlAlchemyRepository.from_url(url) as repository:
                repository.create_schema()
        seaweed_server = stack.enter_context(SeaweedServer(workdir / "seaweedfs"))
        seaweed = seaweed_server.start()
        create_bucket(seaweed, BUCKET)
        BACKEND_ROOTS[:] = [pid for pid in (postgres.pid, seaweed_server.pid) if pid is not None]
        storage_env = {
            "AWS_ENDPOINT_URL": seaweed.endpoint_url,
            "AWS_ACCESS_KEY_ID": seaweed.access_key,
            "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
            "AWS_REGION": seaweed.region,
            "S3_BUCKET_NAME": BUCKET,
            "HELPPET_JWT_SECRET": SECRET,
        }
        package = App(
            "package",
            "examples.fastapi_app.main:app",
            {**storage_env, "HELPPET_STORAGE": "s3", "DATABASE_URL": package_url},
            workdir,
        )
        stack.callback(package.stop)
        bare = App(
            "bare",
            "--app-dir bench bare_http_app:app",
            {**storage_env, "BARE_DATABASE_URL": bare_url.replace("+psycopg", "")},
            workdir,
        )
        stack.callback(bare.stop)
        integrity = App(
            "bare-int",
            "--app-dir bench bare_http_app:app",
            {
                **storage_env,
                "BARE_DATABASE_URL": integrity_url.replace("+psycopg", ""),
                "BARE_INTEGRITY": "1",
            },
            workdir,
        )
        stack.callback(integrity.stop)
        yield postgres, seaweed, [package, bare, integrity]


def database_counters(postgres: PostgresServer) -> dict[str, tuple[int, int]]:
    """Sessions opened and transactions run, per database."""
    assert postgres.url is not None
    with psycopg.connect(postgres.url.replace("+psycopg", ""), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT datname, sessions, xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname IN ('package', 'bare', 'bare_int')"
        ).fetchall()
    return {
        name.replace("_", "-"): (int(sessions), int(transactions))
        for name, sessions, transactions in rows
    }


# ----------------------------------------------------------------------------- report


def ratio_line(label: str, values: Sequence[tuple[float, float]], fmt: str, mark: str) -> str:
    """One table row: package, bare and ratio for each concurrency."""
    cells = [f"{pkg:{fmt}} {bare:{fmt}} {pkg / bare:5.2f}" for pkg, bare in values]
    return f"{label:22}" + "".join(f"{cell:>28}" for cell in cells) + f"   {mark}"


def spread_line(label: str, cells: Sequence[tuple[Cell, Cell]]) -> str:
    """The lowest and highest throughput ratio of one round (the rounds were run side by side)."""
    spans = []
    for package, base in cells:
        ratios = [p / b for p, b in zip(package.round_rates, base.round_rates, strict=True)]
        spans.append(f"{min(ratios):.2f} to {max(ratios):.2f}")
    return f"{label:22}" + "".join(f"{span:>28}" for span in spans) + "   round-to-round spread"


def report(
    results: dict[tuple[str, int, str], Cell],
    concurrencies: Sequence[int],
    rounds: int,
    baseline: str,
) -> list[str]:
    """Print the table package / ``baseline``; return the cells that miss the target."""
    misses = []
    header = "".join(f"{'c=' + str(c) + ' (pkg  base  ratio)':>28}" for c in concurrencies)
    print(f"\npackage / {baseline}")
    print(f"{'':22}{header}")
    for operation, unit in (("initiate", "req/s"), ("flow", "flows/s")):
        cells = [
            (results[operation, c, "package"], results[operation, c, baseline])
            for c in concurrencies
        ]
        rates = [(p.rate, b.rate) for p, b in cells]
        p50 = [(p.percentile(50) * 1e3, b.percentile(50) * 1e3) for p, b in cells]
        p99 = [(p.percentile(99) * 1e3, b.percentile(99) * 1e3) for p, b in cells]
        cpu = [(p.cpu_per_op * 1e3, b.cpu_per_op * 1e3) for p, b in cells]
        print(ratio_line(f"{operation} {unit}", rates, "7.1f", "target >= 0.90"))
        print(spread_line("  ratio, by round", cells))
        print(ratio_line(f"{operation} p50 ms", p50, "7.2f", ""))
        print(ratio_line(f"{operation} p99 ms", p99, "7.2f", "target <= 1.20"))
        print(ratio_line(f"{operation} CPU ms/op", cpu, "7.2f", "server CPU per op"))
        backend = [(p.backend_cpu_per_op * 1e3, b.backend_cpu_per_op * 1e3) for p, b in cells]
        print(ratio_line(f"{operation} PG+S3 ms/op", backend, "7.2f", "PostgreSQL + SeaweedFS"))
        client = [(p.client_cpu_per_op * 1e3, b.client_cpu_per_op * 1e3) for p, b in cells]
        print(ratio_line(f"{operation} client ms/op", client, "7.2f", "load generator"))
        for c, (pkg, bare) in zip(concurrencies, cells, strict=True):
            if pkg.rate / bare.rate < 0.9:
                misses.append(f"{operation} c={c} throughput {pkg.rate / bare.rate:.2f}")
            p99_ratio = pkg.percentile(99) / bare.percentile(99)
            if p99_ratio > 1.2:
                misses.append(f"{operation} c={c} p99 {p99_ratio:.2f}")
    print(f"({rounds} interleaved rounds per cell; flow latency = initiate + complete)")
    return misses


async def measure(
    apps: Sequence[App], args: argparse.Namespace
) -> dict[tuple[str, int, str], Cell]:
    """Warm every app up, then run every cell's rounds, interleaved (the order rotates)."""
    results: dict[tuple[str, int, str], Cell] = {}
    for operation in OPERATIONS:
        for concurrency in args.concurrency:
            for app in apps:
                await drive(app, operation, concurrency, args.warmup, None)
                results[operation, concurrency, app.name] = Cell()
            for round_number in range(args.rounds):
                shift = round_number % len(apps)
                for app in [*apps[shift:], *apps[:shift]]:
                    cell = results[operation, concurrency, app.name]
                    await drive(app, operation, concurrency, args.seconds, cell)
            rates = "  ".join(
                f"{app.name} {results[operation, concurrency, app.name].rate:7.1f}/s"
                for app in apps
            )
            print(f"{operation:9} c={concurrency:<3} {rates}", flush=True)
    return results


def main() -> None:
    """Start everything, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one round")
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-http-{uuid.uuid4().hex[:8]}"  # noqa: S108
    workdir.mkdir(parents=True)
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    with servers(workdir) as (postgres, _seaweed, apps):
        before = database_counters(postgres)
        results = asyncio.run(measure(apps, args))
        for app in apps:
            app.stop()
        time.sleep(1.5)  # exited backends flush their statistics
        after = database_counters(postgres)
        misses = report(results, args.concurrency, args.rounds, "bare")
        integrity_misses = report(results, args.concurrency, args.rounds, "bare-int")
        print()
        for app in apps:
            sessions = after[app.name][0] - before[app.name][0]
            transactions = after[app.name][1] - before[app.name][1]
            print(
                f"{app.name:8} {app.requests:7d} requests, {sessions:4d} PostgreSQL sessions, "
                f"{transactions / app.requests:.2f} transactions per request"
            )
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print("\nall cells meet the target" if not misses else "\nmisses: " + "; ".join(misses))
    if integrity_misses:
        print("against bare-int: " + "; ".join(integrity_misses))


if __name__ == "__main__":
    main()
