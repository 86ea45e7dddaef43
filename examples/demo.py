"""The whole iPhone flow in one command, with no AWS account: ``python -m examples.demo``.

Starts the example API (SQLite and LocalStorage in a temporary directory, a
generated token secret) with uvicorn on 127.0.0.1 (port 8000 if free) and a
transcription worker beside it (the offline LocalTranscriber), then plays the
phone: takes the package's speech sample (a few seconds of a synthetic voice,
as FLAC) and uploads it with the package's client (``RecordingUploader``:
initiate, a real multipart POST with the signed ticket, complete), waits
for the worker to transcribe it and prints the transcript, lists, fetches
the download URL, downloads and compares the bytes, deletes, and checks the
recording is gone. Each step prints its HTTP status and timing. Exits 0 when
every step passed, 1 when one failed, 2 when the server or the transcriber
could not start.

``--keep-running`` leaves the API and the worker up afterwards (until Ctrl-C)
and prints curl commands, with a fresh token and a ready upload ticket, to
try by hand.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import errno
import hashlib
import io
import math
import secrets
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final

import httpx
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from examples.fastapi_app.auth import mint_token
from examples.fastapi_app.config import AppConfig
from examples.fastapi_app.main import create_app
from helppet_recordings.client import RecordingUploader
from helppet_recordings.environment import Backends, build_backends
from helppet_recordings.errors import RecordingError
from helppet_recordings.transcription import (
    LocalTranscriber,
    SpeechSample,
    TranscriptionWorker,
    speech_sample,
)

HOST: Final = "127.0.0.1"
PREFERRED_PORT: Final = 8000
API: Final = "/api/v1/recordings"
START_TIMEOUT_SECONDS: Final = 20.0
TRANSCRIPT_TIMEOUT_SECONDS: Final = 120.0
POLL_SECONDS: Final = 0.25
FILENAME: Final = "demo-visit.flac"


# ------------------------------------------------------------------------------ audio


def tone_wav(seconds: float = 3.0, frequency: float = 440.0, rate: int = 16_000) -> bytes:
    """Return ``seconds`` of a sine tone as a 16-bit mono WAV file, with short fades.

    The demo uploads speech (``speech_sample()``); the example app's own
    end-to-end test uploads this tone.
    """
    count = int(seconds * rate)
    fade = rate // 50  # 20 ms, so the tone starts and stops without a click
    samples = array.array(
        "h",
        (
            int(
                12_000
                * math.sin(2 * math.pi * frequency * i / rate)
                * min(1.0, i / fade, (count - 1 - i) / fade)
            )
            for i in range(count)
        ),
    )
    if sys.byteorder == "big":  # pragma: no cover - WAV samples are little-endian
        samples.byteswap()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


# ----------------------------------------------------------------------------- server


def listening_socket(port: int) -> socket.socket:
    """Bind 127.0.0.1:``port`` (0: any free port); fall back to a free port if it is taken."""
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that name it, and
    # without it keep-alive requests wait ~40 ms for delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE or port == 0:
            sock.close()
            raise
        sock.bind((HOST, 0))
    return sock


class DemoServer:
    """uvicorn serving the example app from a thread, on an already bound socket."""

    def __init__(self, sock: socket.socket, app: FastAPI) -> None:
        self._socket = sock
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )

    def start(self) -> None:
        """Start serving; raise ``RuntimeError`` if the app does not come up."""
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive():
                msg = "the API exited during start-up (see the log above)"
                raise RuntimeError(msg)
            if time.monotonic() > deadline:
                self.stop()
                msg = f"the API did not start within {START_TIMEOUT_SECONDS:.0f} s"
                raise RuntimeError(msg)
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=START_TIMEOUT_SECONDS)
        self._socket.close()


class DemoWorker:
    """A transcription worker running beside the API, as a deployment runs one."""

    def __init__(self, worker: TranscriptionWorker) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=worker.run, kwargs={"stop": self._stop}, name="transcription-worker", daemon=True
        )

    def start(self) -> None:
        """Start taking recordings as they are completed."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the recording in progress, and wait for the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=TRANSCRIPT_TIMEOUT_SECONDS)


# ------------------------------------------------------------------------------ phone


class StepFailedError(Exception):
    """A step got an answer other than the one the flow needs."""


@dataclass
class Phone:
    """The phone app: one user, one HTTP client, numbered steps printed as they run."""

    client: httpx.Client
    token: str
    step: int = 0

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header."""
        return {"Authorization": f"Bearer {self.token}"}

    def call(
        self,
        title: str,
        method: str,
        url: str,
        *,
        shown: str | None = None,
        expect: int,
        describe: Callable[[httpx.Response], str] = lambda _r: "",
        **kwargs: Any,
    ) -> httpx.Response:
        """Make one request, print its line, and raise unless the status is ``expect``."""
        self.step += 1
        started = time.perf_counter()
        response = self.client.request(method, url, **kwargs)
        elapsed = (time.perf_counter() - started) * 1000
        path = shown or httpx.URL(url).path
        ok = response.status_code == expect
        note = describe(response) if ok else f"FAILED, expected {expect}: {response.text[:300]}"
        print(
            f"  {self.step}. {title:<18} {method:<6} {path:<46} "
            f"{response.status_code}  {elapsed:7.1f} ms  {note}",
            flush=True,
        )
        if not ok:
            raise StepFailedError(title)
        return response

    def upload(self, path: Path, **options: Any) -> str:
        """Upload ``path`` with ``RecordingUploader`` (initiate, send, complete); print its line.

        Returns the recording's id. Raises ``StepFailedError`` when the client raised.
        """
        self.step += 1
        started = time.perf_counter()
        sent: list[int] = []
        base_url = str(self.client.base_url).rstrip("/")
        try:
            with RecordingUploader(base_url=base_url, token=self.token) as uploader:
                done = uploader.upload(
                    path, progress=lambda now, _total: sent.append(now), **options
                )
        except RecordingError as exc:
            note, ok = f"FAILED: {exc.error_code}: {exc.message}", False
        else:
            shown = f"progress at {sent[-1]:,} bytes" if sent else "no progress reported"
            note = f"status {done.status.value}, {done.file_size_bytes:,} bytes verified, {shown}"
            ok = True
        elapsed = (time.perf_counter() - started) * 1000
        print(
            f"  {self.step}. {'upload (client)':<18} {'':<6} {'initiate, send, complete':<46} "
            f"{'ok ' if ok else 'ERR'}  {elapsed:7.1f} ms  {note}",
            flush=True,
        )
        if not ok:
            raise StepFailedError("upload")
        return str(done.id)

    def poll(
        self,
        title: str,
        url: str,
        *,
        shown: str,
        done: Callable[[dict[str, Any]], bool],
        describe: Callable[[dict[str, Any], int], str],
    ) -> dict[str, Any]:
        """GET ``url`` until ``done`` holds for its JSON; print one line for all the polls."""
        self.step += 1
        started = time.perf_counter()
        polls = 0
        while True:
            polls += 1
            response = self.client.get(url, headers=self.auth)
            body: dict[str, Any] = response.json() if response.status_code == 200 else {}
            finished = response.status_code != 200 or done(body)
            waited = time.perf_counter() - started
            if finished or waited > TRANSCRIPT_TIMEOUT_SECONDS:
                break
            time.sleep(POLL_SECONDS)
        ok = response.status_code == 200 and finished
        if ok:
            note = describe(body, polls)
        elif response.status_code == 200:
            note = f"FAILED: still {body.get('status')} after {waited:.0f} s"
        else:
            note = f"FAILED: {response.text[:300]}"
        print(
            f"  {self.step}. {title:<18} {'GET':<6} {shown:<46} "
            f"{response.status_code}  {waited * 1000:7.1f} ms  {note}",
            flush=True,
        )
        if not ok:
            raise StepFailedError(title)
        return body


def run_flow(phone: Phone, sample: SpeechSample, workdir: Path) -> None:
    """Play the phone's part: upload with the package's client, then every other endpoint."""
    audio = sample.data
    duration = round(sample.duration_seconds, 1)
    (workdir / "phone").mkdir(exist_ok=True)
    audio_path = workdir / "phone" / FILENAME
    audio_path.write_bytes(audio)
    rid = phone.upload(
        audio_path,
        content_type=sample.mime_type,
        appointment_id=uuid.uuid4(),
        duration_seconds=duration,
        metadata={"device_model": "demo phone", "app_version": "demo"},
    )
    transcribed = phone.poll(
        "await transcript",
        f"{API}/{rid}",
        shown=f"{API}/{{id}}",
        done=lambda body: body["status"] in {"transcribed", "failed"},
        describe=lambda body, polls: (
            f"status {body['status']} after {polls} poll(s)"
            + (
                f", {body['audio']['duration_seconds']:.2f} s of {body['audio']['codec']} measured"
                if body.get("audio")
                else ""
            )
        ),
    )
    if transcribed["status"] != "transcribed":
        raise StepFailedError(f"transcription failed: {transcribed['processing_error']}")
    print(f"     transcript: {transcribed['transcript_text']!r}", flush=True)
    listed = phone.call(
        "list recordings",
        "GET",
        f"{API}/",
        headers=phone.auth,
        expect=200,
        describe=lambda r: f"{r.json()['total']} recording(s)",
    ).json()
    if [item["id"] for item in listed["items"]] != [rid]:
        raise StepFailedError("the new recording is not the one listed")
    download = phone.call(
        "get download URL",
        "GET",
        f"{API}/{rid}/download-url",
        shown=f"{API}/{{id}}/download-url",
        headers=phone.auth,
        expect=200,
        describe=lambda r: f"expires in {r.json()['expires_in']} s",
    ).json()
    got = phone.call(
        "download audio",
        "GET",
        download["download_url"],
        shown="/local-storage/download/{key}?…&sig=…",
        expect=200,
        describe=lambda r: (
            f"{len(r.content):,} bytes, "
            + ("identical" if r.content == audio else "DIFFERENT from the upload")
        ),
    )
    if hashlib.sha256(got.content).digest() != hashlib.sha256(audio).digest():
        raise StepFailedError("the downloaded audio differs from the upload")
    phone.call(
        "delete recording",
        "DELETE",
        f"{API}/{rid}",
        shown=f"{API}/{{id}}",
        headers=phone.auth,
        expect=204,
        describe=lambda _r: "soft-deleted",
    )
    phone.call(
        "confirm it is gone",
        "GET",
        f"{API}/{rid}",
        shown=f"{API}/{{id}}",
        headers=phone.auth,
        expect=404,
        describe=lambda r: r.json()["error_code"],
    )


def print_try_it(
    phone: Phone, base_url: str, audio_path: Path, sample: SpeechSample, secret: str
) -> None:
    """Print curl commands to try by hand, with a fresh token and a ready upload ticket."""
    user = uuid.uuid4()
    token = mint_token(secret, user, expires_in=24 * 3600)
    ticket = phone.client.post(
        f"{API}/upload/initiate",
        json={"filename": audio_path.name, "content_type": sample.mime_type},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    rid = ticket["recording_id"]
    form = " ".join(f"-F {shlex.quote(f'{k}={v}')}" for k, v in ticket["upload_fields"].items())
    api = f"{base_url}{API}"
    json_type = "-H 'Content-Type: application/json'"
    print(
        f"""
The API keeps running at {base_url} (docs: {base_url}/docs). Press Ctrl-C to stop it.
The worker beside it transcribes every recording you complete (GET it for the transcript).
A token for user {user}, valid 24 hours, and a recording ready for upload ({rid}):

  TOKEN={shlex.quote(token)}

  # upload the demo audio with the signed ticket, as the phone does
  curl -sS -i {form} -F file=@{shlex.quote(str(audio_path))} {ticket["upload_url"]}

  # complete, list, get (with the transcript, once the worker is done), download URL, delete
  curl -X POST {api}/upload/complete/{rid} -H "Authorization: Bearer $TOKEN" \\
       {json_type} -d '{{"file_size_bytes": {audio_path.stat().st_size}}}'
  curl {api}/ -H "Authorization: Bearer $TOKEN"
  curl {api}/{rid} -H "Authorization: Bearer $TOKEN"
  curl {api}/{rid}/download-url -H "Authorization: Bearer $TOKEN"
  curl -X DELETE -i {api}/{rid} -H "Authorization: Bearer $TOKEN"

  # start another upload
  curl -X POST {api}/upload/initiate -H "Authorization: Bearer $TOKEN" {json_type} \\
       -d '{{"filename": "visit.m4a", "content_type": "audio/m4a"}}'
""",
        flush=True,
    )


# ------------------------------------------------------------------------------- main


@contextlib.contextmanager
def data_directory(chosen: Path | None) -> Iterator[Path]:
    """Yield the directory given, or a temporary one removed afterwards."""
    if chosen is not None:
        chosen.mkdir(parents=True, exist_ok=True)
        yield chosen.resolve()
        return
    temporary = Path(tempfile.mkdtemp(prefix="helppet-demo-"))
    try:
        yield temporary
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def wait_for_interrupt() -> None:
    """Block until Ctrl-C or SIGTERM."""
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    with contextlib.suppress(KeyboardInterrupt):
        while not stop.wait(0.5):
            pass


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--keep-running", action="store_true", help="leave the API running")
    parser.add_argument(
        "--port", type=int, default=PREFERRED_PORT, help="port to try first (0: any free port)"
    )
    parser.add_argument(
        "--data-dir", type=Path, help="keep the database and files here (default: a temp dir)"
    )
    args = parser.parse_args(argv)

    secret = secrets.token_urlsafe(32)
    sample = speech_sample()
    try:
        transcriber = LocalTranscriber()  # loads its model once (about a second)
    except RecordingError as exc:
        print(f"The local transcriber could not start: {exc.message}", file=sys.stderr)
        return 2
    with data_directory(args.data_dir) as data:
        try:
            sock = listening_socket(args.port)
        except OSError as exc:
            print(f"Cannot listen on {HOST}:{args.port}: {exc}", file=sys.stderr)
            return 2
        base_url = f"http://{HOST}:{sock.getsockname()[1]}"
        config = AppConfig(
            storage="local",
            database_url=f"sqlite:///{data / 'recordings.db'}",
            local_storage_dir=data / "files",
            public_base_url=base_url,
            jwt_secret=SecretStr(secret),
        )
        try:
            # One service for the API and the worker; a deployment would run the worker
            # in its own process on the same database and storage.
            backends = build_backends(config, create_schema=True)
        except (RecordingError, OSError) as exc:
            sock.close()
            print(f"The API could not start: {exc}", file=sys.stderr)
            return 2
        try:
            return run_demo(
                args, sock, backends=backends, transcriber=transcriber, sample=sample, data=data
            )
        finally:
            backends.close()


def secret_of(backends: Backends) -> str:
    """Return the token secret the demo's app and phone share."""
    assert backends.jwt_secret is not None  # noqa: S101 - the demo always sets one
    return backends.jwt_secret


def run_demo(
    args: argparse.Namespace,
    sock: socket.socket,
    *,
    backends: Backends,
    transcriber: LocalTranscriber,
    sample: SpeechSample,
    data: Path,
) -> int:
    """Serve the API with a worker beside it, play the phone, and stop both."""
    base_url = f"http://{HOST}:{sock.getsockname()[1]}"
    user = uuid.uuid4()
    app = create_app(
        backends.service, jwt_secret=secret_of(backends), local_storage=backends.local_storage
    )
    server = DemoServer(sock, app)
    worker = DemoWorker(
        TranscriptionWorker(backends.service, transcriber, poll_interval=POLL_SECONDS)
    )
    print("HelpPet recordings demo")
    print(f"  API    {base_url}  (SQLite + LocalStorage in {data})")
    print(f"  phone  user {user}, a generated token")
    print(
        f"  audio  {FILENAME}: {sample.duration_seconds:.1f} s of synthetic speech, "
        f"{len(sample.data):,} bytes of FLAC"
    )
    print("  worker LocalTranscriber (PocketSphinx, offline), beside the API\n")
    try:
        server.start()
    except RuntimeError as exc:
        print(f"The API could not start: {exc}", file=sys.stderr)
        return 2
    worker.start()
    try:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            phone = Phone(client=client, token=mint_token(secret_of(backends), user))
            started = time.perf_counter()
            try:
                run_flow(phone, sample, data)
            except StepFailedError as exc:
                print(f"\nDemo FAILED at: {exc}", file=sys.stderr)
                return 1
            except httpx.HTTPError as exc:
                print(f"\nDemo FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
                return 1
            total = time.perf_counter() - started
            print(f"\nAll {phone.step} steps passed in {total:.2f} s.")
            if args.keep_running:
                audio_path = data / FILENAME
                audio_path.write_bytes(sample.data)
                print_try_it(phone, base_url, audio_path, sample, secret_of(backends))
                wait_for_interrupt()
    finally:
        worker.stop()
        server.stop()
        print("Server stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
