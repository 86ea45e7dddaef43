"""The example app's browser page (``/app/``) in a real headless Chromium.

Debian's ``chromium`` is driven by Playwright (``executable_path``; Playwright
never downloads a browser here). Chromium's fake media devices give
``MediaRecorder`` a real microphone signal. The API runs as uvicorn
subprocesses on 127.0.0.1: on LocalStorage (a recording, same origin), on
LocalStorage and on SeaweedFS (a file larger than one part, uploaded in
parallel parts), and as two servers on different origins (``localhost`` vs
``127.0.0.1``) for CORS, allowed through ``HELPPET_CORS_ORIGINS`` or not.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import struct
import time
import uuid
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from examples.demo import tone_wav
from examples.fastapi_app.auth import mint_token
from playwright.sync_api import Browser, Page, Request, Route, expect, sync_playwright

from helppet_recordings.cli.bucket import BucketExpectations
from tests.e2e.test_fastapi_example import SECRET
from tests.support.seaweedfs import SeaweedEndpoint, create_bucket, make_client
from tests.support.uvicorn_app import UvicornProcess

pytestmark = pytest.mark.e2e

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


def _chromium() -> str:
    """Return Debian's Chromium, or fail the test saying how to install it."""
    found = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail(
            "the browser tests need Debian's chromium package (apt-get install chromium; "
            ".ci/run installs it), or CHROMIUM=<path to a Chromium>",
            pytrace=False,
        )
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module, with fake media devices."""
    executable = _chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield chromium
        finally:
            chromium.close()


def _start(workdir: Path, env: dict[str, str]) -> UvicornProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    server = UvicornProcess(workdir, env)
    server.start()
    return server


def _local_env(workdir: Path, **extra: str) -> dict[str, str]:
    return {
        "HELPPET_JWT_SECRET": SECRET,
        "HELPPET_STORAGE": "local",
        "DATABASE_URL": f"sqlite:///{workdir / 'api.db'}",
        "HELPPET_LOCAL_STORAGE_DIR": str(workdir / "files"),
        **extra,
    }


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, UvicornProcess]]:
    """Two LocalStorage APIs: ``plain`` without CORS, ``cors`` allowing plain's localhost origin."""
    root = tmp_path_factory.mktemp("browser-servers")
    started: list[UvicornProcess] = []
    try:
        plain = _start(root / "plain", _local_env(root / "plain"))
        started.append(plain)
        allowed = f"http://localhost:{plain.port}"
        cors = _start(root / "cors", _local_env(root / "cors", HELPPET_CORS_ORIGINS=allowed))
        started.append(cors)
        yield {"plain": plain, "cors": cors}
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="module")
def s3_server(
    tmp_path_factory: pytest.TempPathFactory, seaweed: SeaweedEndpoint
) -> Iterator[UvicornProcess]:
    """The API on SeaweedFS, whose bucket lets the page's origin PUT parts (bucket-setup's rule)."""
    workdir = tmp_path_factory.mktemp("browser-s3")
    bucket = f"t-{secrets.token_hex(6)}"
    create_bucket(seaweed, bucket)
    server = UvicornProcess(
        workdir,
        {
            "HELPPET_JWT_SECRET": SECRET,
            "HELPPET_STORAGE": "s3",
            "DATABASE_URL": f"sqlite:///{workdir / 'api.db'}",
            "AWS_ENDPOINT_URL": seaweed.endpoint_url,
            "AWS_ACCESS_KEY_ID": seaweed.access_key,
            "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
            "AWS_REGION": seaweed.region,
            "S3_BUCKET_NAME": bucket,
        },
    )
    expect_bucket = BucketExpectations(
        bucket=bucket,
        origins=(server.base_url,),
        recordings_prefix="recordings/",
        staging_prefix="recordings/staging/",
        days=2,
    )
    rule = expect_bucket.cors_rule()
    assert rule is not None
    make_client(seaweed).put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [rule]})
    server.start()
    try:
        yield server
    finally:
        server.stop()


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


@pytest.fixture
def visits() -> Iterator[list[Visit]]:
    """Visits opened by the test, closed (and checked) afterwards."""
    opened: list[Visit] = []
    yield opened
    for visit in opened:
        visit.close()


def _write_wav(path: Path, size: int) -> None:
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


def _only_row(visit: Visit) -> str:
    row = visit.page.locator("tr[data-recording-id]")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-status", "uploaded")
    recording_id = row.get_attribute("data-recording-id")
    assert recording_id is not None
    return recording_id


def test_record_upload_list_and_play_same_origin(
    browser: Browser, servers: dict[str, UvicornProcess], visits: list[Visit]
) -> None:
    """Recorded with MediaRecorder, uploaded by POST to LocalStorage, listed, played byte-exact."""
    api = servers["plain"]
    visit = Visit(browser, api.base_url)
    visits.append(visit)
    recorded = visit.record_and_save(milliseconds=2000)
    assert recorded.startswith(b"\x1a\x45\xdf\xa3")  # an EBML (WebM) header
    assert len(recorded) > 1000

    visit.upload_and_wait()
    recording_id = _only_row(visit)
    stored = httpx.get(f"{api.base_url}{API}/{recording_id}", headers=visit.headers()).json()
    assert (stored["file_size_bytes"], stored["mime_type"]) == (len(recorded), "audio/webm")
    # The page declared the SHA-256 (WebCrypto), so its ticket pinned it and named s3_key.
    assert stored["checksum_status"] == "verified"

    player = visit.play(recording_id)
    assert player["readyState"] >= 2
    assert player["duration"] > 0
    assert httpx.get(player["src"], timeout=30).content == recorded
    storage_calls = [url for method, url in visit.requests if "/local-storage/" in url]
    assert storage_calls
    assert not [url for url in storage_calls if "recording.webm" in url]


def test_a_saved_recording_picked_again_uploads_as_audio(
    browser: Browser, servers: dict[str, UvicornProcess], visits: list[Visit], tmp_path: Path
) -> None:
    """The page's own recording.webm, chosen in the picker (typed video/webm), goes up as audio."""
    api = servers["plain"]
    visit = Visit(browser, api.base_url)
    visits.append(visit)
    page = visit.page
    path = tmp_path / "recording.webm"
    path.write_bytes(visit.record_and_save(milliseconds=1000))
    page.set_input_files("#file", str(path))
    assert page.evaluate("document.querySelector('#file').files[0].type") == "video/webm"
    visit.upload_and_wait()
    recording_id = _only_row(visit)
    stored = httpx.get(f"{api.base_url}{API}/{recording_id}", headers=visit.headers()).json()
    assert (stored["file_size_bytes"], stored["mime_type"]) == (path.stat().st_size, "audio/webm")


@pytest.mark.parametrize("refusals", [1, 4])
def test_an_unavailable_completion_is_asked_again_and_one_recording_made(
    browser: Browser,
    servers: dict[str, UvicornProcess],
    visits: list[Visit],
    tmp_path: Path,
    refusals: int,
) -> None:
    """A 503 with Retry-After is waited out; past that, a second click reuses the recording.

    Upload clicked again initiates with the same idempotency key and gets the
    same recording back, not a second one.
    """
    api = servers["plain"]
    path = tmp_path / "visit.wav"
    path.write_bytes(tone_wav(seconds=1.0))
    visit = Visit(browser, api.base_url)
    visits.append(visit)
    page = visit.page
    left = {"refusals": refusals}

    def unavailable(route: Route) -> None:
        if left["refusals"]:
            left["refusals"] -= 1
            route.fulfill(
                status=503,
                headers={"Retry-After": "1", "Content-Type": "application/json"},
                body='{"message": "Storage is unavailable", "error_code": '
                '"STORAGE_UNAVAILABLE", "details": {"retry_after": 1}}',
            )
        else:
            route.continue_()

    page.route("**/upload/complete/*", unavailable)
    page.set_input_files("#file", str(path))
    if refusals > 1:  # more than the page asks: it gives up and says why
        page.click("#upload")
        visit.wait_until("false")
        assert "Storage is unavailable" in (page.text_content("#error") or "")
    visit.upload_and_wait()
    assert left["refusals"] == 0
    recording_id = _only_row(visit)
    initiates = [url for method, url in visit.requests if url.endswith("/upload/initiate")]
    assert len(initiates) == (1 if refusals == 1 else 2)
    listed = httpx.get(f"{api.base_url}{API}/", headers=visit.headers()).json()
    assert [item["id"] for item in listed["items"]] == [recording_id]


@pytest.fixture(params=["local", "seaweedfs"])
def multipart_api(request: pytest.FixtureRequest) -> UvicornProcess:
    """The API on LocalStorage, then on SeaweedFS."""
    if request.param == "local":
        servers: dict[str, UvicornProcess] = request.getfixturevalue("servers")
        return servers["plain"]
    s3: UvicornProcess = request.getfixturevalue("s3_server")
    return s3


def _most_in_flight(events: list[tuple[str, str, str]], method: str) -> int:
    """The most ``method`` requests that were under way at once."""
    in_flight = most = 0
    for kind, request_method, _ in events:
        if request_method == method:
            in_flight += 1 if kind == "request" else -1
            most = max(most, in_flight)
    return most


def test_large_file_goes_up_in_parallel_parts_with_progress(
    browser: Browser, multipart_api: UvicornProcess, visits: list[Visit], tmp_path: Path
) -> None:
    """A 12 MiB WAV goes up as parallel part PUTs, one failed PUT retried; the bar reaches 100%."""
    path = tmp_path / "long-visit.wav"
    _write_wav(path, LARGE_FILE_BYTES)
    content = path.read_bytes()
    visit = Visit(browser, multipart_api.base_url)
    visits.append(visit)
    page = visit.page
    page.evaluate(
        "(() => { const bar = document.querySelector('#progress'); window.progressSeen = [];"
        " new MutationObserver(() => window.progressSeen.push([bar.value, bar.max]))"
        ".observe(bar, {attributes: true, attributeFilter: ['value']}); })()"
    )
    failed: list[str] = []

    def fail_first_put(route: Route) -> None:
        if route.request.method == "PUT" and not failed:
            failed.append(route.request.url)
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/*", fail_first_put)
    plan = visit.upload_in_parts(path)

    seen: list[list[float]] = page.evaluate("window.progressSeen")
    assert seen[-1] == [len(content), len(content)]
    assert any(0 < value < len(content) for value, _ in seen), seen
    puts = [url for method, url in visit.requests if method == "PUT"]
    assert len(plan["parts"]) == math.ceil(len(content) / plan["part_size"]) >= 2
    assert len(puts) == len(plan["parts"]) + 1  # the aborted one, sent again
    resigned = [url for _, url in visit.requests if url.endswith("/parts")]
    parts_route = f"{API}/upload/multipart/{plan['recording_id']}/parts"
    assert resigned == [multipart_api.base_url + parts_route]
    assert _most_in_flight(visit.events, "PUT") >= 2
    assert not [url for _, url in visit.requests if "long-visit" in url]

    recording_id = _only_row(visit)
    assert recording_id == plan["recording_id"]
    player = visit.play(recording_id)
    assert player["readyState"] >= 2
    assert math.isclose(player["duration"], len(content) / 32_000, rel_tol=0.01)
    assert httpx.get(player["src"], timeout=60).content == content


def test_a_part_storage_never_got_is_sent_again_after_upload_incomplete(
    browser: Browser, servers: dict[str, UvicornProcess], visits: list[Visit], tmp_path: Path
) -> None:
    """A part answered 200 that storage never got is re-sent after UPLOAD_INCOMPLETE."""
    api = servers["plain"]
    path = tmp_path / "visit-with-a-lost-part.wav"
    _write_wav(path, LARGE_FILE_BYTES)
    content = path.read_bytes()
    visit = Visit(browser, api.base_url)
    visits.append(visit)
    page = visit.page
    swallowed: list[str] = []

    def swallow_part_two_once(route: Route) -> None:
        request = route.request
        if request.method == "PUT" and "partNumber=2" in request.url and not swallowed:
            swallowed.append(request.url)  # as a proxy that answers and drops the body would
            route.fulfill(status=200, headers={"ETag": '"lost"'}, body="")
        else:
            route.continue_()

    page.route("**/*", swallow_part_two_once)
    plan = visit.upload_in_parts(path)
    rid = plan["recording_id"]

    assert swallowed
    completions = [
        (method, url) for method, url in visit.requests if url.endswith(f"/upload/complete/{rid}")
    ]
    assert len(completions) == 2  # UPLOAD_INCOMPLETE, then complete
    resigned = [url for _, url in visit.requests if url.endswith(f"/multipart/{rid}/parts")]
    assert len(resigned) == 1
    part_two = [url for method, url in visit.requests if method == "PUT" and "partNumber=2" in url]
    assert len(part_two) == 2
    assert _only_row(visit) == rid
    player = visit.play(rid)
    assert httpx.get(player["src"], timeout=60).content == content


def test_cross_origin_with_cors_origins(
    browser: Browser, servers: dict[str, UvicornProcess], visits: list[Visit], tmp_path: Path
) -> None:
    """Served from http://localhost:A, the page uses the API at 127.0.0.1:B that allows A."""
    page_server, api = servers["plain"], servers["cors"]
    path = tmp_path / "visit.wav"
    path.write_bytes(tone_wav(seconds=1.0))
    visit = Visit(browser, f"http://localhost:{page_server.port}", api.base_url)
    visits.append(visit)
    visit.page.set_input_files("#file", str(path))
    expect(visit.page.locator("#save")).to_be_hidden()  # only recordings are offered to save
    visit.upload_and_wait()
    recording_id = _only_row(visit)
    player = visit.play(recording_id)
    assert player["readyState"] >= 2
    assert player["src"].startswith(f"{api.base_url}/local-storage/download/")
    listed = httpx.get(f"{api.base_url}{API}/", headers=visit.headers()).json()
    assert [item["id"] for item in listed["items"]] == [recording_id]


def test_cross_origin_without_cors_origins_shows_why_and_creates_nothing(
    browser: Browser, servers: dict[str, UvicornProcess], visits: list[Visit], tmp_path: Path
) -> None:
    """Against an API without HELPPET_CORS_ORIGINS the page says what to set; nothing is made."""
    page_server, api = servers["cors"], servers["plain"]
    path = tmp_path / "visit.wav"
    path.write_bytes(tone_wav(seconds=1.0))
    page_origin = f"http://localhost:{page_server.port}"
    visit = Visit(browser, page_origin, api.base_url)
    visits.append(visit)
    visit.page.set_input_files("#file", str(path))
    visit.page.click("#upload")
    error = visit.page.locator("#error")
    expect(error).to_contain_text(f"Could not reach the API at {api.base_url}")
    expect(error).to_contain_text(f"HELPPET_CORS_ORIGINS must list {page_origin}")
    listed = httpx.get(f"{api.base_url}{API}/", headers=visit.headers()).json()
    assert listed["total"] == 0
    assert visit.page.locator("tr[data-recording-id]").count() == 0
