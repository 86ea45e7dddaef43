"""100 MiB to SeaweedFS: multipart (4 parts in flight) vs one POST, and resume vs restart.

Everything goes through the service as a user meets it: the FastAPI example
(``uvicorn examples.fastapi_app.main:app``, SQLite, ``HELPPET_STORAGE=s3``)
in a subprocess, a throwaway SeaweedFS (``tests/support/seaweedfs.py``), and
``helppet_recordings.client.RecordingUploader`` uploading a WAV file.

1. Speed. Each round uploads the same file once by POST (one form request)
   and once in parts (the server plans 8 MiB parts; 4 are sent at a time),
   in alternating order. An ``httpx`` transport wrapper timestamps every
   request, so the whole flow (``upload()`` from start to the completed
   recording) splits into: preparing (the uploader's SHA-256 of the file),
   initiate, the raw transfer to storage (first storage request sent to last
   answer), and complete. The uploader declares the file's SHA-256, so the
   POST's ticket pins it and names the final key: completing it reads the
   object where it is (before pinned tickets, completion moved it from a
   staging key, a CopyObject of all 100 MiB, then a DELETE); a multipart
   upload is assembled at its final key (CompleteMultipartUpload). Target: multipart at least as
   fast as POST (ratio <= 1.0), for the transfer and for the whole flow.

2. Resume. A second app talks to SeaweedFS through a counting loopback proxy
   (``tests/support/flaky_proxy.py``, no faults) that the signed URLs name,
   so every byte storage receives is counted. The upload is interrupted once
   60% of the file has been handed to the sockets (the progress callback
   raises, which aborts every request in flight, as a dying process would);
   then a new uploader carries on from the state file. A multipart upload
   sends only the parts storage lacks; a POST has to start over.

    .venv/bin/python bench/bench_multipart.py [--rounds 4] [--resume-rounds 1] [--size-mib 100]
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.support and examples

from examples.fastapi_app.auth import mint_token  # noqa: E402 - after the path is set
from tests.support.audio import wav_file  # noqa: E402
from tests.support.flaky_proxy import FlakyProxy  # noqa: E402
from tests.support.seaweedfs import (  # noqa: E402
    SeaweedEndpoint,
    SeaweedServer,
    create_bucket,
    make_client,
)

from helppet_recordings.client import RecordingUploader, RetryPolicy  # noqa: E402
from helppet_recordings.multipart import plan_parts  # noqa: E402
from helppet_recordings.schemas import RecordingResponse  # noqa: E402

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1024 * 1024
BUCKET = "bench-multipart"
SECRET = secrets.token_urlsafe(48)
PARALLEL = 4
INTERRUPT_AT = 0.6
QUICK_RETRY = RetryPolicy(attempts=3, timeout=60, wait_initial=0.05, wait_max=0.2)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages and the CPU count, as ``uptime`` shows them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"


# ---------------------------------------------------------------------------- the app


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AppServer:
    """The example app under uvicorn in a subprocess, configured by ``env`` (SQLite)."""

    def __init__(self, workdir: Path, name: str, env: dict[str, str], max_size: int) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._log = workdir / f"{name}.log"
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("HELPPET_", "AWS_"))}
        clean.pop("DATABASE_URL", None)
        clean.pop("S3_BUCKET_NAME", None)
        env = {
            **clean,
            "HELPPET_JWT_SECRET": SECRET,
            "HELPPET_PUBLIC_BASE_URL": self.base_url,
            "HELPPET_MAX_FILE_SIZE": str(max_size),
            "DATABASE_URL": f"sqlite:///{workdir / name}.db",
            **env,
        }
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "examples.fastapi_app.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        with self._log.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while self.process.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/openapi.json", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        tail = self._log.read_text(errors="replace")[-3000:]
        msg = f"the example app did not start:\n{tail}"
        raise RuntimeError(msg)

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.process.pid

    def stop(self) -> None:
        """SIGTERM the server's process group, then SIGKILL if it lingers."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def s3_env(seaweed: SeaweedEndpoint, s3_url: str) -> dict[str, str]:
    """The environment that puts the app on S3Storage at ``s3_url`` with SeaweedFS's keys."""
    return {
        "HELPPET_STORAGE": "s3",
        "AWS_ENDPOINT_URL": s3_url,
        "AWS_ACCESS_KEY_ID": seaweed.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
        "AWS_REGION": seaweed.region,
        "S3_BUCKET_NAME": BUCKET,
    }


# ---------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Exchange:
    """One HTTP request the uploader made: to the API (its path) or to storage."""

    api_path: str | None
    started: float
    answered: float


class TimingTransport(httpx.BaseTransport):
    """httpx's transport, noting when each request left and when its answer's head came."""

    def __init__(self, api_port: int) -> None:
        limits = httpx.Limits(max_connections=PARALLEL + 2, max_keepalive_connections=PARALLEL + 2)
        self._inner = httpx.HTTPTransport(limits=limits)
        self._api_port = api_port
        self._lock = threading.Lock()
        self.exchanges: list[Exchange] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and note the times."""
        started = time.perf_counter()
        response = self._inner.handle_request(request)
        answered = time.perf_counter()
        api_path = request.url.path if request.url.port == self._api_port else None
        with self._lock:
            self.exchanges.append(Exchange(api_path, started, answered))
        return response

    def close(self) -> None:
        """Close the connections."""
        self._inner.close()


@dataclass
class Phases:
    """Seconds of each phase of one upload, and of the whole ``upload()`` call."""

    prepare: float
    initiate: float
    transfer: float
    complete: float
    whole: float

    @classmethod
    def of(cls, began: float, ended: float, exchanges: list[Exchange]) -> Phases:
        """Split an upload that ran from ``began`` to ``ended`` by its exchanges."""
        storage = [e for e in exchanges if e.api_path is None]
        initiate = [e for e in exchanges if e.api_path and e.api_path.endswith("/initiate")]
        complete = [e for e in exchanges if e.api_path and "/upload/complete/" in e.api_path]
        if not storage or len(initiate) != 1 or len(complete) != 1:
            msg = f"unexpected exchanges: {exchanges}"
            raise RuntimeError(msg)
        return cls(
            prepare=min(e.started for e in exchanges) - began,
            initiate=initiate[0].answered - initiate[0].started,
            transfer=max(e.answered for e in storage) - min(e.started for e in storage),
            complete=complete[0].answered - complete[0].started,
            whole=ended - began,
        )


@dataclass
class Series:
    """The rounds of one way of uploading."""

    rounds: list[Phases] = field(default_factory=list)

    def fastest(self, phase: str) -> float:
        """The fastest round's seconds for ``phase``."""
        return min(float(getattr(r, phase)) for r in self.rounds)

    def median(self, phase: str) -> float:
        """The median round's seconds for ``phase``."""
        return statistics.median(float(getattr(r, phase)) for r in self.rounds)


def uploader(
    app: AppServer, token: str, *, multipart: bool, size: int, **options: object
) -> tuple[RecordingUploader, TimingTransport]:
    """An uploader for ``app`` that sends ``size`` bytes in parts or in one POST."""
    transport = TimingTransport(app.port)
    client = RecordingUploader(
        app.base_url,
        token=token,
        parallel=PARALLEL,
        multipart_threshold=1 if multipart else size + 1,
        transport=transport,
        **options,  # type: ignore[arg-type]
    )
    return client, transport


def checked(recording: RecordingResponse, size: int, s3: S3Client) -> None:
    """Check the recording is complete with every byte, then drop its object."""
    if recording.status != "uploaded" or recording.file_size_bytes != size:
        msg = f"unexpected recording: {recording.status} {recording.file_size_bytes}"
        raise RuntimeError(msg)
    stored = s3.head_object(Bucket=BUCKET, Key=recording.s3_key)
    if stored["ContentLength"] != size:
        msg = f"storage holds {stored['ContentLength']} bytes, not {size}"
        raise RuntimeError(msg)
    s3.delete_object(Bucket=BUCKET, Key=recording.s3_key)


def timed_upload(
    app: AppServer, token: str, path: Path, s3: S3Client, *, multipart: bool
) -> Phases:
    """Upload ``path`` once through ``app``; return the phases' seconds."""
    size = path.stat().st_size
    client, transport = uploader(app, token, multipart=multipart, size=size)
    with client:
        began = time.perf_counter()
        recording = client.upload(path)
        ended = time.perf_counter()
    checked(recording, size, s3)
    os.sync()  # this round's writeback must not slow the next one
    return Phases.of(began, ended, transport.exchanges)


# ---------------------------------------------------------------------------- resume


class InterruptedUploadError(Exception):
    """Raised by the progress callback: the upload dies here."""


@dataclass(frozen=True)
class Resume:
    """Bytes storage received and seconds spent, before and after an interruption."""

    before: int
    after: int
    after_seconds: float
    held_at_interruption: int


def settled(proxy: FlakyProxy) -> int:
    """Bytes the proxy forwarded, once bytes still buffered in sockets have drained."""
    last, still = proxy.bytes_up, 0
    while still < 3:
        time.sleep(0.1)
        now = proxy.bytes_up
        still = still + 1 if now == last else 0
        last = now
    return last


def interrupted_and_resumed(
    app: AppServer, token: str, path: Path, proxy: FlakyProxy, s3: S3Client, *, multipart: bool
) -> Resume:
    """Upload ``path`` until 60% has gone out, die, then carry on from the state file."""
    size = path.stat().st_size
    state = path.with_name("upload-state.json")
    stop_at = int(size * INTERRUPT_AT)
    held: list[int] = []

    def die_at_60_percent(sent: int, _total: int) -> None:
        if sent >= stop_at:
            raise InterruptedUploadError

    start = proxy.bytes_up
    client, _ = uploader(app, token, multipart=multipart, size=size, retry=QUICK_RETRY)
    with client:
        try:
            client.upload(path, state_file=state, progress=die_at_60_percent)
        except InterruptedUploadError:
            pass
        else:
            msg = "the upload finished before it could be interrupted"
            raise RuntimeError(msg)
    interrupted = settled(proxy)
    before = interrupted - start

    def first_report(sent: int, _total: int) -> None:
        if not held:
            held.append(sent)  # what the uploader found storage holding

    start = interrupted
    client, _ = uploader(app, token, multipart=multipart, size=size, retry=QUICK_RETRY)
    with client:
        began = time.perf_counter()
        recording = client.upload(path, state_file=state, progress=first_report)
        seconds = time.perf_counter() - began
    after = settled(proxy) - start
    checked(recording, size, s3)
    if state.exists():
        msg = "the state file outlived the upload"
        raise RuntimeError(msg)
    os.sync()
    # A multipart upload first reports what storage holds; a POST holds nothing.
    return Resume(before, after, seconds, held[0] if multipart and held else 0)


# ---------------------------------------------------------------------------- report


PHASES = (
    ("prepare", "prepare (uploader's SHA-256)"),
    ("initiate", "initiate"),
    ("transfer", "transfer to storage (raw)"),
    ("complete", "complete"),
    ("whole", "whole flow (upload() call)"),
)


def print_speed(post: Series, parts: Series, size: int) -> None:
    mib = size / MiB
    print(
        f"{'':30}{'POST fastest':>13}{'median':>9}{'parts fastest':>15}{'median':>9}"
        f"{'ratio fastest':>15}{'median':>8}"
    )
    for phase, label in PHASES:
        pf, pm = post.fastest(phase), post.median(phase)
        mf, mm = parts.fastest(phase), parts.median(phase)
        print(
            f"{label:30}{pf * 1e3:10.0f} ms{pm * 1e3:6.0f} ms{mf * 1e3:12.0f} ms{mm * 1e3:6.0f} ms"
            f"{mf / pf:15.2f}{mm / pm:8.2f}"
        )
    print(
        f"{'transfer throughput':30}{mib / post.fastest('transfer'):7.0f} MiB/s"
        f"{mib / post.median('transfer'):6.0f}   {mib / parts.fastest('transfer'):10.0f} MiB/s"
        f"{mib / parts.median('transfer'):6.0f}"
    )
    print("ratio: multipart seconds / POST seconds (target <= 1.0)")
    print(
        "complete: the POST's ticket pinned the file's SHA-256 and named the final key, so its\n"
        "completion reads the object where it is; a multipart upload is assembled at its final\n"
        "key (CompleteMultipartUpload from ListParts). Neither moves the object."
    )


def print_resume(post: list[Resume], parts: list[Resume], size: int) -> None:
    mib = size / MiB

    def row(label: str, results: list[Resume]) -> None:
        best = min(results, key=lambda r: r.after)
        print(
            f"{label:28}{best.before / MiB:10.1f} MiB{best.held_at_interruption / MiB:10.1f} MiB"
            f"{best.after / MiB:10.1f} MiB{(best.before + best.after - size) / MiB:10.1f} MiB"
            f"{min(r.after_seconds for r in results):9.2f} s"
            f"{statistics.median(r.after_seconds for r in results):7.2f} s"
        )

    print(
        f"{'':28}{'received':>14}{'held then':>14}{'sent after':>14}{'wasted':>14}"
        f"{'after, fastest':>15}{'median':>8}"
    )
    row("multipart, resumed", parts)
    row("POST, started over", post)
    best_parts = min(r.after for r in parts)
    best_post = min(r.after for r in post)
    spread = sorted(r.after / MiB for r in parts)
    print(
        "multipart, sent after the interruption, over the rounds: "
        f"{spread[0]:.1f} to {spread[-1]:.1f} MiB"
    )
    print(
        f"bytes sent after the interruption, multipart / POST: {best_parts / best_post:.2f} "
        f"({best_parts / MiB:.1f} of {mib:.0f} MiB vs {best_post / MiB:.1f} MiB)"
    )
    print(
        "received: bytes storage got before the interruption (counted at the proxy, in-flight\n"
        "parts included); held then: what storage kept (whole parts); wasted: bytes received\n"
        "in total beyond the file's size. Times are for the run after the interruption."
    )


# ---------------------------------------------------------------------------- main


def main() -> None:
    """Start SeaweedFS and two apps, measure, print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4, help="speed rounds (each uploads twice)")
    parser.add_argument("--resume-rounds", type=int, default=1)
    parser.add_argument("--size-mib", type=int, default=100)
    args = parser.parse_args()
    size = args.size_mib * MiB
    plan = plan_parts(size)

    print(f"load average at start: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="bench-multipart-") as tmp:
        workdir = Path(tmp)
        path = wav_file(workdir / "visit.wav", size)
        weed = SeaweedServer(workdir)
        apps: list[AppServer] = []
        proxy = FlakyProxy().start()  # its target is set once SeaweedFS is up
        try:
            endpoint = weed.start()
            create_bucket(endpoint, BUCKET)
            s3 = make_client(endpoint)
            port = int(httpx.URL(endpoint.endpoint_url).port or 80)
            proxy.target = ("127.0.0.1", port)
            direct = AppServer(workdir, "direct", s3_env(endpoint, endpoint.endpoint_url), 2 * size)
            apps.append(direct)
            counted = AppServer(workdir, "counted", s3_env(endpoint, proxy.base_url), 2 * size)
            apps.append(counted)
            token = mint_token(SECRET, uuid.uuid4())

            timed_upload(direct, token, path, s3, multipart=True)  # warm-up, not counted
            timed_upload(direct, token, path, s3, multipart=False)
            post, parts = Series(), Series()
            for index in range(args.rounds):
                order = (False, True) if index % 2 == 0 else (True, False)
                for multipart in order:
                    phases = timed_upload(direct, token, path, s3, multipart=multipart)
                    (parts if multipart else post).rounds.append(phases)
            print(
                f"\n{args.size_mib} MiB to SeaweedFS through the example app (uvicorn, SQLite) "
                f"with RecordingUploader, {args.rounds} rounds, interleaved; multipart: "
                f"{len(plan.parts)} parts of {plan.part_size // MiB} MiB, {PARALLEL} in flight"
            )
            print_speed(post, parts, size)
            print(f"load average: {load_average()}")

            post_resumes: list[Resume] = []
            parts_resumes: list[Resume] = []
            if args.resume_rounds < 1:
                return
            for index in range(args.resume_rounds):
                order = (True, False) if index % 2 == 0 else (False, True)
                for multipart in order:
                    result = interrupted_and_resumed(
                        counted, token, path, proxy, s3, multipart=multipart
                    )
                    (parts_resumes if multipart else post_resumes).append(result)
            print(
                f"\nInterrupted at {INTERRUPT_AT:.0%} of {args.size_mib} MiB, then carried on "
                f"from the state file ({args.resume_rounds} round(s); the round with the fewest "
                "bytes re-sent)"
            )
            print_resume(post_resumes, parts_resumes, size)
        finally:
            proxy.stop()  # first: its connections would hold a server's shutdown
            for app in apps:
                app.stop()
            weed.stop()
    print(f"load average at the end: {load_average()}")


if __name__ == "__main__":
    main()
