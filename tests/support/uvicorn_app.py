"""The example app under uvicorn in a subprocess on 127.0.0.1, configured by its environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from tests.support.servers import HOST, free_ports

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0


class UvicornProcess:
    """``uvicorn examples.fastapi_app.main:app`` in a subprocess on 127.0.0.1."""

    def __init__(
        self,
        workdir: Path,
        env: dict[str, str],
        *,
        app: str = "examples.fastapi_app.main:app",
        options: Sequence[str] = (),
        public_path: str = "",
        log_level: str = "warning",
    ) -> None:
        self.port = free_ports(1)[0]
        self.base_url = f"http://{HOST}:{self.port}"
        self.log_path = workdir / "uvicorn.log"
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("HELPPET_", "AWS_"))}
        clean.pop("DATABASE_URL", None)
        clean.pop("S3_BUCKET_NAME", None)
        public_url = self.base_url + public_path
        self._env = {**clean, "HELPPET_PUBLIC_BASE_URL": public_url, **env}
        self._workdir = workdir
        self._app = app
        self._options = list(options)
        self._log_level = log_level
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The server's process id (it is running)."""
        assert self._process is not None
        return self._process.pid

    def start(self) -> None:
        """Start uvicorn and wait until it answers; fail the test with its log if it does not."""
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            self._app,
            *self._options,
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--log-level",
            self._log_level,
        ]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._process.poll() is not None:
                self._fail(f"uvicorn exited with status {self._process.returncode}")
            try:
                if httpx.get(f"{self.base_url}/openapi.json", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self._fail(f"uvicorn did not answer within {START_TIMEOUT:.0f} s")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM the server by its process group, then SIGKILL if it lingers."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)

    def _fail(self, reason: str) -> None:
        self.stop()
        log = self.log_path.read_text(errors="replace")[-4000:]
        pytest.fail(f"{reason}\n--- {self.log_path} ---\n{log}", pytrace=False)
