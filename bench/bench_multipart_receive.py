"""Receiving a multipart upload: LocalStorage's part route vs SeaweedFS, on the same machine.

Two copies of the FastAPI example (``uvicorn examples.fastapi_app.main:app``,
SQLite) run in subprocesses: one on LocalStorage (``HELPPET_STORAGE=local``;
the app itself serves the signed part URLs, ``PUT {prefix}/part/{key}``),
one on S3Storage against a throwaway SeaweedFS. Each round, for each of them
in alternating order, the same 100 MiB WAV file is:

1. initiated as a multipart upload through the API (the server plans 8 MiB
   parts and signs a URL for each);
2. sent: every part PUT to its signed URL, 4 at a time, from bytes already in
   memory (the same httpx client for both; timed from the first request to
   the last answer);
3. completed through the API: assembly (LocalStorage concatenates the parts
   into the final file; SeaweedFS runs CompleteMultipartUpload) and the
   verification every completion does (size, the audio signature).

The stored bytes are checked (LocalStorage: the file's SHA-256; SeaweedFS:
the size) and removed. The LocalStorage server's memory is read from
``/proc/<pid>/status``: its peak (``VmHWM``, reset through
``/proc/<pid>/clear_refs`` before each phase when allowed) minus its
resident size before the round. Headline: the fastest round of each, and the
medians; ratio LocalStorage / SeaweedFS (lower is faster).

    .venv/bin/python bench/bench_multipart_receive.py [--rounds 3] [--size-mib 100]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.support, examples and bench

from bench.bench_local_upload import proc_status_kib, reset_peak  # noqa: E402
from bench.bench_multipart import (  # noqa: E402
    BUCKET,
    PARALLEL,
    SECRET,
    AppServer,
    load_average,
    s3_env,
)
from examples.fastapi_app.auth import mint_token  # noqa: E402 - after the path is set
from tests.support.audio import wav_file  # noqa: E402
from tests.support.seaweedfs import SeaweedServer, create_bucket, make_client  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_s3 import S3Client

MiB = 1024 * 1024
API = "/api/v1/recordings"


@dataclass(frozen=True)
class Round:
    """One multipart upload's seconds, and the LocalStorage server's memory growth (KiB)."""

    initiate: float
    transfer: float
    complete: float
    receive_growth_kib: int | None = None
    complete_growth_kib: int | None = None


class Backend:
    """One app to upload to, and how to check and remove what it stored."""

    def __init__(self, name: str, app: AppServer, check: Callable[[str], None]) -> None:
        self.name = name
        self.app = app
        self.check = check
        self.rounds: list[Round] = []


def api_post(http: httpx.Client, url: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    response = http.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
    if response.status_code != 200:
        msg = f"{url} answered {response.status_code}: {response.text[:500]}"
        raise RuntimeError(msg)
    answer: dict[str, Any] = response.json()
    return answer


def put_part(http: httpx.Client, url: str, body: bytes) -> None:
    response = http.put(url, content=body)
    if response.status_code != 200:
        msg = f"a part PUT was answered {response.status_code}: {response.text[:500]}"
        raise RuntimeError(msg)


def upload_round(
    backend: Backend, http: httpx.Client, token: str, data: bytes, *, memory_pid: int | None
) -> Round:
    """Initiate, send every part 4 at a time, complete; time each phase."""
    api = backend.app.base_url + API
    size = len(data)
    rss = 0
    if memory_pid is not None:
        rss = proc_status_kib(memory_pid, "VmRSS")
        reset_peak(memory_pid)

    started = time.perf_counter()
    plan = api_post(
        http,
        f"{api}/upload/multipart/initiate",
        token,
        {"filename": "visit.wav", "content_type": "audio/wav", "file_size_bytes": size},
    )
    initiate = time.perf_counter() - started

    part_size = int(plan["part_size"])
    bodies = {
        part["part_number"]: data[(part["part_number"] - 1) * part_size :][: part["size"]]
        for part in plan["parts"]
    }
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        sent = [
            pool.submit(put_part, http, part["url"], bodies[part["part_number"]])
            for part in plan["parts"]
        ]
        for future in sent:
            future.result()
    transfer = time.perf_counter() - started

    receive_growth = None
    if memory_pid is not None:
        receive_growth = max(0, proc_status_kib(memory_pid, "VmHWM") - rss)
        reset_peak(memory_pid)
    started = time.perf_counter()
    recording = api_post(
        http, f"{api}/upload/complete/{plan['recording_id']}", token, {"file_size_bytes": size}
    )
    complete = time.perf_counter() - started
    complete_growth = None
    if memory_pid is not None:
        complete_growth = max(0, proc_status_kib(memory_pid, "VmHWM") - rss)

    if recording["status"] != "uploaded" or recording["file_size_bytes"] != size:
        msg = f"unexpected recording: {recording}"
        raise RuntimeError(msg)
    backend.check(recording["s3_key"])
    os.sync()  # this round's writeback must not slow the next one
    return Round(initiate, transfer, complete, receive_growth, complete_growth)


def local_check(files: Path, digest: str) -> Callable[[str], None]:
    """Check the assembled file's SHA-256 and remove it."""

    def check(key: str) -> None:
        stored = files / "objects" / key
        if hashlib.sha256(stored.read_bytes()).hexdigest() != digest:
            msg = "LocalStorage assembled other bytes than the file's"
            raise RuntimeError(msg)
        stored.unlink()

    return check


def s3_check(s3: S3Client, size: int) -> Callable[[str], None]:
    """Check the object's size and remove it."""

    def check(key: str) -> None:
        stored = s3.head_object(Bucket=BUCKET, Key=key)
        if stored["ContentLength"] != size:
            msg = f"SeaweedFS holds {stored['ContentLength']} bytes, not {size}"
            raise RuntimeError(msg)
        s3.delete_object(Bucket=BUCKET, Key=key)

    return check


def print_results(local: Backend, seaweed: Backend, size: int) -> None:
    mib = size / MiB
    print(
        f"{'':26}{'local fastest':>14}{'median':>9}{'SeaweedFS fastest':>19}{'median':>9}"
        f"{'ratio fastest':>15}{'median':>8}"
    )
    for phase, label in (
        ("initiate", "initiate"),
        ("transfer", "parts received"),
        ("complete", "complete (assembly)"),
    ):
        lf = min(getattr(r, phase) for r in local.rounds)
        lm = statistics.median(getattr(r, phase) for r in local.rounds)
        sf = min(getattr(r, phase) for r in seaweed.rounds)
        sm = statistics.median(getattr(r, phase) for r in seaweed.rounds)
        print(
            f"{label:26}{lf * 1e3:11.0f} ms{lm * 1e3:6.0f} ms{sf * 1e3:16.0f} ms{sm * 1e3:6.0f} ms"
            f"{lf / sf:15.2f}{lm / sm:8.2f}"
        )
    local_total = [r.transfer + r.complete for r in local.rounds]
    seaweed_total = [r.transfer + r.complete for r in seaweed.rounds]
    lf, lm = min(local_total), statistics.median(local_total)
    sf, sm = min(seaweed_total), statistics.median(seaweed_total)
    print(
        f"{'received + complete':26}{lf * 1e3:11.0f} ms{lm * 1e3:6.0f} ms{sf * 1e3:16.0f} ms"
        f"{sm * 1e3:6.0f} ms{lf / sf:15.2f}{lm / sm:8.2f}"
    )
    lt = min(r.transfer for r in local.rounds)
    st = min(r.transfer for r in seaweed.rounds)
    print(
        f"{'receive throughput':26}{mib / lt:8.0f} MiB/s"
        f"{mib / statistics.median(r.transfer for r in local.rounds):6.0f}"
        f"{mib / st:13.0f} MiB/s"
        f"{mib / statistics.median(r.transfer for r in seaweed.rounds):6.0f}"
    )
    print("ratio: LocalStorage seconds / SeaweedFS seconds (lower: LocalStorage is faster)")
    print(
        "complete: LocalStorage copies the parts into one file (hashing it with MD5 and SHA-256\n"
        "for verification) and fsyncs it; SeaweedFS's CompleteMultipartUpload only links the\n"
        "parts' chunks (no bytes copied)."
    )
    receive = [r.receive_growth_kib for r in local.rounds if r.receive_growth_kib is not None]
    complete = [r.complete_growth_kib for r in local.rounds if r.complete_growth_kib is not None]
    if receive and complete:
        print(
            f"LocalStorage server memory growth (VmHWM - VmRSS before), most of any round: "
            f"receiving {max(receive) / 1024:.1f} MiB, completing {max(complete) / 1024:.1f} MiB "
            f"(for {mib:.0f} MiB received)"
        )


def main() -> None:
    """Start SeaweedFS and the two apps, upload in interleaved rounds, print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=100)
    args = parser.parse_args()
    size = args.size_mib * MiB

    print(f"load average at start: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="bench-multipart-receive-", dir=ROOT) as tmp:
        workdir = Path(tmp)
        path = wav_file(workdir / "visit.wav", size)
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        weed = SeaweedServer(workdir)
        apps: list[AppServer] = []
        try:
            endpoint = weed.start()
            create_bucket(endpoint, BUCKET)
            s3 = make_client(endpoint)
            files = workdir / "files"
            local_app = AppServer(
                workdir,
                "local",
                {"HELPPET_STORAGE": "local", "HELPPET_LOCAL_STORAGE_DIR": str(files)},
                2 * size,
            )
            apps.append(local_app)
            s3_app = AppServer(workdir, "s3", s3_env(endpoint, endpoint.endpoint_url), 2 * size)
            apps.append(s3_app)
            local = Backend("LocalStorage", local_app, local_check(files, digest))
            seaweed = Backend("SeaweedFS", s3_app, s3_check(s3, size))
            token = mint_token(SECRET, uuid.uuid4())
            limits = httpx.Limits(max_connections=PARALLEL + 2)
            peak_resettable = reset_peak(local_app.pid)
            with httpx.Client(timeout=120, limits=limits) as http:
                for backend in (local, seaweed):  # warm-up: imports, connections, first files
                    upload_round(backend, http, token, data, memory_pid=None)
                for index in range(args.rounds):
                    order = (local, seaweed) if index % 2 == 0 else (seaweed, local)
                    for backend in order:
                        pid = local_app.pid if backend is local and peak_resettable else None
                        backend.rounds.append(
                            upload_round(backend, http, token, data, memory_pid=pid)
                        )
        finally:
            for app in apps:
                app.stop()
            weed.stop()

    print(
        f"\n{args.size_mib} MiB multipart upload received by LocalStorage (the example app's "
        f"part route under uvicorn) and by SeaweedFS, {args.rounds} rounds, interleaved; "
        f"parts PUT {PARALLEL} at a time"
    )
    print_results(local, seaweed, size)
    if not peak_resettable:
        print("(memory not measured: /proc/<pid>/clear_refs cannot be written here)")
    print(f"load average at the end: {load_average()}")


if __name__ == "__main__":
    main()
