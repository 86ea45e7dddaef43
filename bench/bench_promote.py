"""Measure what moving a verified upload to its final key adds to completion.

Starts a throwaway SeaweedFS (``tests/support/seaweedfs.py``) and, for each
object size, uploads an object to a staging key before every round (not
timed). The baseline is completion as it was: one HEAD of the object. The
measured path is completion with the move: the same HEAD, then
``S3Storage.promote`` (a HEAD of the source, a conditional CopyObject, a HEAD
of the target and a DELETE of the source).

Baseline and move run interleaved, one of each per round, on fresh objects.
The headline compares the fastest round of each; the medians are printed too.
No target: the figure tells how much a completion costs with the move, by size.

    .venv/bin/python bench/bench_promote.py [--rounds 15] [--sizes-mib 1 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.support

from tests.support.seaweedfs import SeaweedServer, create_bucket, make_client

from helppet_recordings import S3Storage

BUCKET = "bench-promote"


def upload(storage: S3Storage, key: str, body: bytes) -> None:
    """Store ``body`` at ``key`` encrypted, as a finished POST upload would."""
    storage.client.put_object(
        Bucket=BUCKET,
        Key=key,
        Body=body,
        ContentType="audio/mp4",
        ServerSideEncryption="AES256",
    )


def measure_size(storage: S3Storage, size: int, rounds: int) -> tuple[list[float], list[float]]:
    """Return per-round seconds of HEAD-only and of HEAD + promote for objects of ``size``."""
    body = os.urandom(size)
    head_times: list[float] = []
    move_times: list[float] = []
    for index in range(rounds + 1):  # the first round warms connections and is dropped
        staging = f"recordings/staging/{size}-{index}.m4a"
        final = f"recordings/u/ctx/{size}-{index}.m4a"
        upload(storage, staging, body)

        start = time.perf_counter()
        stored = storage.head(staging)
        head_seconds = time.perf_counter() - start
        assert stored is not None

        start = time.perf_counter()
        verified = storage.head(staging)
        assert verified is not None
        moved = storage.promote(staging, final, expected=verified)
        move_seconds = time.perf_counter() - start
        assert moved is not None
        assert moved.size == size

        storage.delete(final)
        if index:
            head_times.append(head_seconds)
            move_times.append(move_seconds)
    return head_times, move_times


def main() -> None:
    """Start SeaweedFS, measure each size and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--sizes-mib", type=int, nargs="+", default=[1, 100])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-promote-") as workdir:
        server = SeaweedServer(Path(workdir))
        try:
            endpoint = server.start()
            create_bucket(endpoint, BUCKET)
            storage = S3Storage(BUCKET, client=make_client(endpoint))
            print(f"SeaweedFS on 127.0.0.1, {args.rounds} rounds per size, interleaved")
            print(
                f"{'size':>8}{'HEAD only':>12}{'HEAD+promote':>15}{'ratio':>8}"
                f"{'median HEAD':>14}{'median move':>14}{'ratio':>8}"
            )
            for mib in args.sizes_mib:
                heads, moves = measure_size(storage, mib * 1024 * 1024, args.rounds)
                head, move = min(heads), min(moves)
                head_median, move_median = statistics.median(heads), statistics.median(moves)
                print(
                    f"{mib:>4} MiB{head * 1e3:9.1f} ms{move * 1e3:12.1f} ms{move / head:8.1f}"
                    f"{head_median * 1e3:11.1f} ms{move_median * 1e3:11.1f} ms"
                    f"{move_median / head_median:8.1f}"
                )
            print("ratio: (HEAD + promote) / HEAD, the completion cost of the move")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
