"""What the transcription worker costs next to the transcription, and how it scales.

Starts a throwaway PostgreSQL (``tests/support/postgres.py``) and SeaweedFS
(``tests/support/seaweedfs.py``); recordings are uploaded with a real POST to
SeaweedFS and completed, as a phone does, then:

1. **Overhead per recording.** A 60 s speech-like recording (the package's
   speech sample, decoded and repeated, as 16 kHz mono FLAC) is taken by one
   worker with the real ``LocalTranscriber``. The transcriber's own time is
   measured inside the call; the worker's overhead is the rest of
   ``run_once(limit=1)``: claiming, starting, reading the object back from S3
   in ranged reads and decoding it to measure it, and the three writes. The
   baseline is the transcriber's time in the same run. Target: overhead under
   5 % of it. Measuring alone (``inspect_audio`` over storage) is timed too.

2. **Scaling.** ``--recordings`` short recordings (the 6.4 s speech sample)
   are worked off by 1, 2 and 4 worker processes at once, each with a fake
   transcriber that takes a fixed 0.2 s (sleeping: it uses no CPU, as a call
   to a transcription service would not). The baseline is the ideal rate of
   that fixed cost alone, ``60 / 0.2 = 300`` recordings per minute per
   worker; the ratio says how much of it the workers reach.

    .venv/bin/python bench/bench_worker.py [--rounds 3] [--recordings 120]
"""

from __future__ import annotations

import argparse
import io
import math
import multiprocessing
import multiprocessing.synchronize
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.support

from tests.support.postgres import PostgresServer
from tests.support.seaweedfs import SeaweedEndpoint, SeaweedServer, create_bucket, make_client

from helppet_recordings import (
    RecordingService,
    RecordingSettings,
    RecordingStatus,
    S3Storage,
    SqlAlchemyRepository,
)
from helppet_recordings.audio import RangeReader, decode_pcm, encode_pcm, inspect_audio
from helppet_recordings.transcription import (
    LocalTranscriber,
    Transcriber,
    Transcript,
    TranscriptionInput,
    TranscriptionWorker,
    speech_sample,
)

BUCKET = "bench-worker"
FIXED_COST_SECONDS = 0.2
LONG_SECONDS = 60.0
SAMPLE_RATE = 16_000
TARGET_OVERHEAD = 0.05


@attrs.frozen
class Site:
    """Where the recordings live: the database URL and the S3 endpoint."""

    database_url: str
    endpoint: SeaweedEndpoint

    def service(self) -> tuple[RecordingService, SqlAlchemyRepository]:
        """A service of this process's own, and its repository (to close)."""
        repository = SqlAlchemyRepository.from_url(self.database_url)
        settings = RecordingSettings(s3_bucket_name=BUCKET, max_file_size=50_000_000)
        storage = S3Storage(BUCKET, client=make_client(self.endpoint))
        return RecordingService(storage, repository, settings), repository


def upload(service: RecordingService, client: httpx.Client, audio: bytes) -> uuid.UUID:
    """Initiate, POST to SeaweedFS with the signed fields, complete; return the id."""
    user = uuid.uuid4()
    ticket = service.initiate_upload(user, {"filename": "visit.flac", "content_type": "audio/flac"})
    response = client.post(
        ticket.upload_url,
        data=ticket.upload_fields,
        files={"file": ("visit.flac", audio, "audio/flac")},
    )
    response.raise_for_status()
    service.complete_upload(user, ticket.recording_id, {"file_size_bytes": len(audio)})
    return ticket.recording_id


def long_recording(seconds: float) -> bytes:
    """The speech sample repeated to ``seconds``, as 16 kHz mono FLAC."""
    pcm = b"".join(decode_pcm(io.BytesIO(speech_sample().data), sample_rate=SAMPLE_RATE))
    needed = int(seconds * SAMPLE_RATE) * 2
    repeated = (pcm * math.ceil(needed / len(pcm)))[:needed]
    return encode_pcm([repeated], sample_rate=SAMPLE_RATE, format="flac")


@attrs.define
class Stopwatch:
    """Wraps a transcriber and adds up the time spent inside its calls."""

    inner: Transcriber
    seconds: float = 0.0

    @property
    def name(self) -> str:
        """The wrapped transcriber's name."""
        return self.inner.name

    def transcribe(self, audio: TranscriptionInput) -> Transcript:
        """Time the wrapped call."""
        started = time.perf_counter()
        try:
            return self.inner.transcribe(audio)
        finally:
            self.seconds += time.perf_counter() - started


@attrs.frozen
class FixedCost:
    """A transcriber that takes a fixed time without using the CPU, like a remote service."""

    seconds: float = FIXED_COST_SECONDS
    name: str = "fixed-cost"

    def transcribe(self, audio: TranscriptionInput) -> Transcript:
        """Wait, then answer."""
        time.sleep(self.seconds)
        return Transcript(f"{audio.recording_id}", service=self.name)


# ----------------------------------------------------------------------------- overhead


def overhead(site: Site, rounds: int) -> None:
    """Part 1: the worker's own time around a real LocalTranscriber on 60 s of speech."""
    audio = long_recording(LONG_SECONDS)
    print(
        f"\n1. overhead per recording: {LONG_SECONDS:.0f} s of speech-like FLAC "
        f"({len(audio):,} bytes), LocalTranscriber, {rounds} round(s)"
    )
    service, repository = site.service()
    transcriber = Stopwatch(LocalTranscriber())
    worker = TranscriptionWorker(service, transcriber)
    totals, inner, inspects = [], [], []
    with repository, httpx.Client(timeout=60) as client:
        for number in range(1, rounds + 1):
            rid = upload(service, client, audio)
            recording = repository.get(rid)
            assert recording is not None
            assert recording.file_size_bytes is not None
            started = time.perf_counter()
            reader = RangeReader.from_storage(
                service.storage, recording.s3_key, recording.file_size_bytes
            )
            with io.BufferedReader(reader) as stream:
                inspect_audio(stream)
            inspects.append(time.perf_counter() - started)

            transcriber.seconds = 0.0
            started = time.perf_counter()
            assert worker.run_once(limit=1) == 1
            totals.append(time.perf_counter() - started)
            inner.append(transcriber.seconds)
            done = repository.get(rid)
            assert done is not None
            assert done.status is RecordingStatus.TRANSCRIBED, done.processing_error
            assert done.audio is not None
            own = totals[-1] - inner[-1]
            print(
                f"   round {number}: worker {totals[-1]:6.2f} s = transcriber {inner[-1]:6.2f} s "
                f"+ own {own * 1000:6.1f} ms   (measured {done.audio.duration_seconds:.2f} s)"
            )
    own_times = [total - spent for total, spent in zip(totals, inner, strict=True)]
    own, spent = statistics.median(own_times), statistics.median(inner)
    print(f"   transcriber (baseline), median        {spent:8.2f} s")
    print(f"   worker's own time, median             {own * 1000:8.1f} ms")
    print(f"     of which measuring the audio alone  {statistics.median(inspects) * 1000:8.1f} ms")
    verdict = "met" if own / spent < TARGET_OVERHEAD else "MISSED"
    print(
        f"   ratio own / transcriber               {own / spent:8.4f}   "
        f"(target < {TARGET_OVERHEAD:.2f}: {verdict})"
    )


# ------------------------------------------------------------------------------ scaling


def drain(
    site: Site, barrier: multiprocessing.synchronize.Barrier, results: Any, seconds: float
) -> None:
    """One worker process: wait for the start, take everything ready, report the count."""
    service, repository = site.service()
    with repository:
        worker = TranscriptionWorker(service, FixedCost(seconds))
        barrier.wait()
        results.put(worker.run_once())


def scaling(site: Site, recordings: int, counts: list[int], seconds: float) -> None:
    """Part 2: recordings per minute with 1, 2 and 4 worker processes."""
    sample = speech_sample().data
    ideal = 60 / seconds
    print(
        f"\n2. scaling: {recordings} recordings of {speech_sample().duration_seconds:.1f} s, "
        f"a fixed-cost transcriber of {seconds:.1f} s (ideal {ideal:.0f}/min per worker)"
    )
    context = multiprocessing.get_context("spawn")
    service, repository = site.service()
    single: float | None = None
    with repository, httpx.Client(timeout=60) as client:
        for count in counts:
            ids = [upload(service, client, sample) for _ in range(recordings)]
            barrier = context.Barrier(count + 1)
            results = context.Queue()
            workers = [
                context.Process(target=drain, args=(site, barrier, results, seconds))
                for _ in range(count)
            ]
            for process in workers:
                process.start()
            barrier.wait()  # every worker has started and connected: start the clock
            started = time.perf_counter()
            taken = [results.get() for _ in workers]
            elapsed = time.perf_counter() - started
            for process in workers:
                process.join()
            assert sum(taken) == recordings, taken
            statuses = {repository.get(rid).status for rid in ids}  # type: ignore[union-attr]
            assert statuses == {RecordingStatus.TRANSCRIBED}, statuses
            rate = recordings / elapsed * 60
            single = rate if single is None else single
            print(
                f"   {count} worker(s): {rate:7.1f} recordings/min   "
                f"ratio to ideal {rate / (ideal * count):4.2f}   "
                f"speed-up over 1 worker {rate / single:4.2f}   (shares {sorted(taken)})"
            )


# --------------------------------------------------------------------------------- main


def with_servers(run: Callable[[Site], None]) -> None:
    """Start PostgreSQL and SeaweedFS, run, stop both."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-worker-") as workdir,
        PostgresServer() as postgres,
        SeaweedServer(Path(workdir)) as seaweed,
    ):
        print("starting PostgreSQL and SeaweedFS ...")
        postgres.start()
        endpoint = seaweed.start()
        create_bucket(endpoint, BUCKET)
        url = postgres.create_database("bench_worker")
        with SqlAlchemyRepository.from_url(url) as repository:
            repository.create_schema()
        run(Site(url, endpoint))


def main() -> None:
    """Parse the options, start the servers, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="60 s recordings to transcribe")
    parser.add_argument("--recordings", type=int, default=120, help="per scaling run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--cost", type=float, default=FIXED_COST_SECONDS, help="fake seconds")
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()

    def run(site: Site) -> None:
        if not args.skip_overhead:
            overhead(site, args.rounds)
        scaling(site, args.recordings, args.workers, args.cost)

    with_servers(run)


if __name__ == "__main__":
    main()
