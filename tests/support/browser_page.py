"""Driving the example app's browser page (``/app/``) in Debian's headless Chromium.

Playwright drives the ``chromium`` package through ``executable_path`` and never
downloads a browser. Chromium's fake media devices give ``MediaRecorder`` a
real microphone signal. The API runs as uvicorn subprocesses on 127.0.0.1.
"""

from __future__ import annotations

import math
import os
import shutil
import struct
import time
import uuid
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from examples.fastapi_app.auth import mint_token
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright

from tests.support.uvicorn_app import UvicornProcess

SECRET = "browser-page-jwt-secret-0123456789abcdef"
"""The JWT secret of every API these tests start (tokens are minted with it)."""
API = "/api/v1/recordings"
MiB = 1024 * 1024
LARGE_FILE_BYTES = 12 * MiB
WAIT_SECONDS = 60.0
CHROMIUM_ARGS = (
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    # The machine's network is closed: no background calls home, no QUIC probes.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-gpu",
    "--no-first-run",
)


def chromium_executable() -> str:
    """Return Debian's Chromium, or fail the test saying how to install it."""
    found = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail(
            "the browser tests need Debian's chromium package (apt-get install chromium; "
            ".ci/run installs it), or CHROMIUM=<path to a Chromium>",
            pytrace=False,
        )
    return found


@contextmanager
def headless_chromium() -> Iterator[Browser]:
    """Launch one headless Chromium with fake media devices; close it afterwards."""
    executable = chromium_executable()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield chromium
        finally:
            chromium.close()


def start_api(workdir: Path, env: dict[str, str]) -> UvicornProcess:
    """Start the example app in ``workdir`` with ``env``; return the running server."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = UvicornProcess(workdir, env)
    server.start()
    return server


def local_env(workdir: Path, **extra: str) -> dict[str, str]:
    """The example app's environment for SQLite and LocalStorage under ``workdir``."""
    return {
        "HELPPET_JWT_SECRET": SECRET,
        "HELPPET_STORAGE": "local",
        "DATABASE_URL": f"sqlite:///{workdir / 'api.db'}",
        "HELPPET_LOCAL_STORAGE_DIR": str(workdir / "files"),
        **extra,
    }


class Visit:
    """One browser tab on the page, for one fresh user, with what the tab saw."""

    def __init__(self, browser: Browser, page_origin: str, api_base: str | None = None) -> None:
        self.user = uuid.uuid4()
        self.token = mint_token(SECRET, self.user)
        self.context = browser.new_context(accept_downloads=True)
        self.page: Page = self.context.new_page()
        self.console: list[str] = []
        self.page.on("console", lambda message: self.console.append(message.text))
        self.events: list[tuple[str, str, str]] = []
        for kind in ("request", "requestfinished", "requestfailed"):
            self.page.on(kind, self._recorder(kind))
        self.page.goto(f"{page_origin}/app/")
        self.page.fill("#token", self.token)
        if api_base is not None:
            self.page.fill("#api-base", api_base)

    @property
    def requests(self) -> list[tuple[str, str]]:
        """Every request the page sent: (method, URL)."""
        return [(method, url) for kind, method, url in self.events if kind == "request"]

    def _recorder(self, kind: str) -> Callable[[Request], None]:
        def record(request: Request) -> None:
            self.events.append((kind, request.method, request.url))

        return record

    def headers(self) -> dict[str, str]:
        """The user's Authorization header, for checking through the API directly."""
        return {"Authorization": f"Bearer {self.token}"}

    def record_and_save(self, *, milliseconds: int) -> bytes:
        """Record from the (fake) microphone, stop, and return what *Save* downloads."""
        page = self.page
        page.click("#record")
        expect(page.locator("#recording-state")).to_have_text("Recording…")
        page.wait_for_timeout(milliseconds)
        page.click("#stop")
        expect(page.locator("#save")).to_be_visible()
        with page.expect_download() as saved:
            page.click("#save")
        return Path(saved.value.path()).read_bytes()

    def upload_and_wait(self) -> None:
        """Click Upload; fail with the page's error message unless the upload completes."""
        self.page.click("#upload")
        self.wait_until("document.querySelector('#status').textContent.startsWith('Uploaded')")
        assert self.page.text_content("#error") == "", self.console

    def upload_in_parts(self, path: Path) -> dict[str, Any]:
        """Choose ``path`` (large enough for parts), upload it; return the multipart plan."""
        self.page.set_input_files("#file", str(path))
        initiate = f"{API}/upload/multipart/initiate"
        with self.page.expect_response(lambda r: r.url.endswith(initiate)) as answered:
            self.upload_and_wait()
        plan: dict[str, Any] = answered.value.json()
        return plan

    def wait_until(self, condition: str) -> None:
        """Poll ``condition`` (JavaScript) until it holds or the page shows an error.

        Polled from here: Playwright's own wait_for_function evaluates strings,
        which the page's Content Security Policy forbids.
        """
        deadline = time.monotonic() + WAIT_SECONDS
        check = f"({condition}) || document.querySelector('#error').textContent !== ''"
        while not self.page.evaluate(check):
            assert time.monotonic() < deadline, f"not within {WAIT_SECONDS} s: {condition}"
            time.sleep(0.05)

    def play(self, recording_id: str) -> dict[str, Any]:
        """Play a recording from the list; return the audio element once it has data."""
        row = self.page.locator(f"tr[data-recording-id='{recording_id}']")
        row.get_by_role("button", name="Play").click()
        self.wait_until("document.querySelector('#player').readyState >= 2")
        assert self.page.text_content("#error") == ""
        player: dict[str, Any] = self.page.evaluate(
            "(() => { const a = document.querySelector('#player');"
            " return {readyState: a.readyState, duration: a.duration, src: a.currentSrc}; })()"
        )
        return player

    def close(self) -> None:
        """Close the tab; no Content Security Policy violation may have happened."""
        self.context.close()
        assert not [line for line in self.console if "Content Security Policy" in line]


def write_wav(path: Path, size: int) -> None:
    """Write a 16 kHz mono tone WAV of at least ``size`` bytes (one second, repeated)."""
    rate = 16_000
    second = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(rate)
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(second * math.ceil(size / len(second)))


def only_row(visit: Visit) -> str:
    """The id of the one recording the page lists, which must be ``uploaded``."""
    row = visit.page.locator("tr[data-recording-id]")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-status", "uploaded")
    recording_id = row.get_attribute("data-recording-id")
    assert recording_id is not None
    return recording_id


def most_in_flight(events: list[tuple[str, str, str]], method: str) -> int:
    """The most ``method`` requests that were under way at once."""
    in_flight = most = 0
    for kind, request_method, _ in events:
        if request_method == method:
            in_flight += 1 if kind == "request" else -1
            most = max(most, in_flight)
    return most
