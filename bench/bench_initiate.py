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

    .venv/bin/python bench/bench_initiate.py [--rounds 30] [--calls 200]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config

from helppet_recordings import InMemoryRepository, RecordingService, RecordingSettings, S3Storage

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


if __name__ == "__main__":
    main()
