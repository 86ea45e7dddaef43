"""Measure how much ``initiate_upload`` adds over the bare work it wraps.

The baseline does what any hand-written endpoint must do: one boto3
``generate_presigned_post`` with the same conditions (and a key of the same
shape) and one row in an in-memory store. The package additionally validates
the request, checks the content type and filename, names the key, builds the
domain object and the response model; but ``S3Storage`` resolves the bucket's
endpoint once instead of on every presign, which is most of boto3's cost.

A second line separates the two effects: the package against its own
signer (``S3Storage.create_upload``) plus a row, which is the cost of the
package's validation and bookkeeping alone.

Both run in the same process, interleaved in rounds. The headline compares
the fastest round of each (as ``timeit`` advises: slower rounds measure
other load on the machine, not the code); the medians are printed too.
Target: ratio <= 1.2.

Then what observability costs, measured the same way:

- **metrics**: ``initiate_upload`` with ``RecordingMetrics(NoOpMeterProvider())``
  (metrics off), with the default (the global provider: a no-op until the host
  configures one) and with an OpenTelemetry SDK ``MeterProvider`` and an
  in-memory reader (metrics on, recorded in full);
- **audit**: ``initiate_upload`` writes no audit entry, so ``get_download_url``
  is measured instead, with its audit write and with a repository that drops
  audit entries (the write's cost alone), over the in-memory repository and
  over SQLite in a file (a committed ``INSERT`` per URL).

    .venv/bin/python bench/bench_initiate.py [--rounds 30] [--calls 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from helppet_recordings import (
    InMemoryRepository,
    InMemoryStorage,
    RecordingService,
    RecordingSettings,
    S3Storage,
)
from helppet_recordings.audit import AuditEntry
from helppet_recordings.metrics import RecordingMetrics
from helppet_recordings.ports import RecordingRepository
from helppet_recordings.repositories.sqlalchemy import SqlAlchemyRepository
from helppet_recordings.status import RecordingStatus
from helppet_recordings.testing.factories import make_recording

BUCKET = "helppet-audio-recordings"
MAX_SIZE = 104_857_600


def make_client() -> Any:
    """A SigV4 client with static credentials: presigning needs no network."""
    return boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",  # noqa: S106 - AWS's documented example key
        config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}),
    )


def baseline_call(
    client: Any, rows: dict[uuid.UUID, dict[str, Any]], user: uuid.UUID, appointment: str
) -> None:
    """The bare work: one presigned POST with the same policy and key shape, one row.

    The key has the package's layout because presigning cost grows with key length.
    """
    stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime())
    key = f"recordings/{user}/appointment-{appointment}/{stamp}_{secrets.token_hex(8)}.m4a"
    post = client.generate_presigned_post(
        Bucket=BUCKET,
        Key=key,
        Fields={"Content-Type": "audio/mp4", "x-amz-server-side-encryption": "AES256"},
        Conditions=[
            {"Content-Type": "audio/mp4"},
            {"x-amz-server-side-encryption": "AES256"},
            ["content-length-range", 1, MAX_SIZE],
        ],
        ExpiresIn=3600,
    )
    rid = uuid.uuid4()
    rows[rid] = {"id": rid, "user": user, "key": key, "status": "uploading", "post": post}


def measure(fn: Callable[[], None], calls: int) -> float:
    """Mean seconds per call over ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def main() -> None:
    """Run the benchmark and print per-call times and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()

    client = make_client()
    service = RecordingService(
        S3Storage(BUCKET, client=client),
        InMemoryRepository(),
        RecordingSettings(s3_bucket_name=BUCKET, max_file_size=MAX_SIZE),
    )
    rows: dict[uuid.UUID, dict[str, Any]] = {}
    user = uuid.uuid4()
    appointment = str(uuid.uuid4())
    request = {
        "appointment_id": appointment,
        "recording_type": "visit_audio",
        "filename": "recording_20241219_143022.m4a",
        "content_type": "audio/m4a",
        "estimated_duration_seconds": 120.5,
    }

    storage = S3Storage(BUCKET, client=client)

    def package() -> None:
        service.initiate_upload(user, request)

    def baseline() -> None:
        baseline_call(client, rows, user, appointment)

    def own_signer() -> None:
        stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime())
        key = f"recordings/{user}/appointment-{appointment}/{stamp}_{secrets.token_hex(8)}.m4a"
        ticket = storage.create_upload(
            key=key, content_type="audio/mp4", max_size=MAX_SIZE, expires_in=3600
        )
        rid = uuid.uuid4()
        rows[rid] = {"id": rid, "user": user, "key": key, "status": "uploading", "post": ticket}

    for fn in (package, baseline, own_signer):  # warm up caches and lazy imports
        measure(fn, 50)
    package_times, baseline_times, signer_times = [], [], []
    for _ in range(args.rounds):
        baseline_times.append(measure(baseline, args.calls))
        package_times.append(measure(package, args.calls))
        signer_times.append(measure(own_signer, args.calls))

    base, pkg = min(baseline_times), min(package_times)
    base_median = statistics.median(baseline_times)
    pkg_median = statistics.median(package_times)
    signer, signer_median = min(signer_times), statistics.median(signer_times)
    rows_out = [
        ("initiate_upload", pkg, pkg_median, ""),
        ("bare baseline", base, base_median, "(boto3 generate_presigned_post + row)"),
        ("own-signer baseline", signer, signer_median, "(S3Storage.create_upload + row)"),
        ("validation+bookkeeping", pkg - signer, pkg_median - signer_median, ""),
    ]
    print(f"rounds: {args.rounds} x {args.calls} calls, interleaved")
    print(f"{'':24}{'fastest round':>10}{'median round':>16}")
    for label, fastest, median, note in rows_out:
        print(f"{label:24}{fastest * 1e6:7.1f} µs{median * 1e6:13.1f} µs   {note}")
    ratio, ratio_median = pkg / base, pkg_median / base_median
    print(f"{'ratio':24}{ratio:10.3f}{ratio_median:16.3f}   (vs bare boto3; target <= 1.2)")
    print(
        f"{'ratio, own signer':24}{pkg / signer:10.3f}{pkg_median / signer_median:16.3f}"
        "   (the package's logic alone)"
    )
    compare_metrics(client, request, args.rounds, args.calls)
    compare_audit(client, args.rounds, args.calls)


def rounds(
    variants: dict[str, Callable[[], None]], count: int, calls: int
) -> dict[str, list[float]]:
    """Time every variant ``count`` times, interleaved; return each round's seconds per call."""
    for fn in variants.values():  # warm up
        measure(fn, 20)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(count):
        for name, fn in variants.items():
            times[name].append(measure(fn, calls))
    return times


def report(title: str, times: dict[str, list[float]], baseline: str) -> None:
    """Print each variant's fastest and median round and its ratio to ``baseline``."""
    base, base_median = min(times[baseline]), statistics.median(times[baseline])
    print(f"\n{title}")
    print(f"{'':48}{'fastest round':>10}{'median round':>16}{'ratio':>8}{'(median)':>10}")
    for name, values in times.items():
        fastest, median = min(values), statistics.median(values)
        print(
            f"{name:48}{fastest * 1e6:7.1f} µs{median * 1e6:13.1f} µs"
            f"{fastest / base:8.3f}{median / base_median:10.3f}"
        )


def compare_metrics(client: Any, request: dict[str, Any], count: int, calls: int) -> None:
    """``initiate_upload`` with metrics off, by default, and recorded by the SDK."""
    reader = InMemoryMetricReader()
    user = uuid.uuid4()
    settings = RecordingSettings(s3_bucket_name=BUCKET, max_file_size=MAX_SIZE)

    def service(metrics: RecordingMetrics | None) -> Callable[[], None]:
        built = RecordingService(
            S3Storage(BUCKET, client=client), InMemoryRepository(), settings, metrics=metrics
        )

        def call() -> None:
            built.initiate_upload(user, request)

        return call

    times = rounds(
        {
            "metrics off (NoOpMeterProvider)": service(RecordingMetrics(NoOpMeterProvider())),
            "default (global provider, unset)": service(None),
            "SDK MeterProvider, in-memory reader": service(
                RecordingMetrics(MeterProvider(metric_readers=[reader]))
            ),
        },
        count,
        calls,
    )
    report("initiate_upload and metrics", times, "metrics off (NoOpMeterProvider)")
    assert reader.get_metrics_data() is not None  # the SDK did record


def _download(service: RecordingService, owner: uuid.UUID, rid: uuid.UUID) -> Callable[[], None]:
    def call() -> None:
        service.get_download_url(owner, rid)

    return call


class _DropAudit:
    """A repository that forwards everything but drops audit entries (the audit's cost alone)."""

    def __init__(self, inner: RecordingRepository) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def record_audit(self, entry: AuditEntry) -> None:
        """Drop the entry."""


def compare_audit(client: Any, count: int, calls: int) -> None:
    """``get_download_url`` with and without its audit write, in memory and on SQLite."""
    settings = RecordingSettings(s3_bucket_name=BUCKET, max_file_size=MAX_SIZE)
    # In memory: get_download_url checks the stored object before it signs, and the
    # audit write is what is measured here, not a storage round trip.
    storage = InMemoryStorage(BUCKET)
    metrics = RecordingMetrics(NoOpMeterProvider())
    with tempfile.TemporaryDirectory() as directory:
        sqlite = SqlAlchemyRepository.from_url(f"sqlite:///{Path(directory) / 'bench.db'}")
        sqlite.create_schema()
        variants: dict[str, Callable[[], None]] = {}
        for label, repository in (("memory", InMemoryRepository()), ("SQLite file", sqlite)):
            now = dt.datetime.now(dt.UTC)
            recording = make_recording(
                status=RecordingStatus.UPLOADED, verified_at=now, file_size_bytes=1000
            )
            repository.add(recording)
            storage.put_object(recording.s3_key, bytes(1000), content_type="audio/mp4")
            owner, rid = recording.recorded_by_user_id, recording.id
            for audited, repo in (
                ("audited", repository),
                ("audit dropped", _DropAudit(repository)),
            ):
                service = RecordingService(storage, repo, settings, metrics=metrics)
                variants[f"get_download_url, {label}, {audited}"] = _download(service, owner, rid)
        times = rounds(variants, count, calls)
        sqlite.close()
    for label in ("memory", "SQLite file"):
        report(
            f"get_download_url and its audit write ({label})",
            {name: values for name, values in times.items() if f", {label}," in name},
            f"get_download_url, {label}, audit dropped",
        )


if __name__ == "__main__":
    main()
