"""The example app's browser page (``/app/``) in a real headless Chromium.

Debian's ``chromium`` is driven by Playwright (``executable_path``; Playwright
never downloads a browser here). Chromium's fake media devices give
``MediaRecorder`` a real microphone signal. The API runs as uvicorn
subprocesses on 127.0.0.1: on LocalStorage (a recording, same origin), on
LocalStorage and on SeaweedFS (a file larger than one part, uploaded in
parallel parts), and as two servers on different origins (``localhost`` vs
``127.0.0.1``) for CORS, allowed through ``HELPPET_CORS_ORIGINS`` or not.
The harness (``Visit``, the ``browser`` fixture) is in ``tests/support/browser_page.py``
and ``tests/e2e/conftest.py``.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from examples.demo import tone_wav
from playwright.sync_api import Browser, Route, expect

from helppet_recordings.cli.bucket import BucketExpectations
from tests.support.browser_page import (
    API,
    LARGE_FILE_BYTES,
    SECRET,
    Visit,
    local_env,
    most_in_flight,
    only_row,
    start_api,
    write_wav,
)
from tests.support.seaweedfs import SeaweedEndpoint, create_bucket, make_client
from tests.support.uvicorn_app import UvicornProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, UvicornProcess]]:
    """Two LocalStorage APIs: ``plain`` without CORS, ``cors`` allowing plain's localhost origin."""
    root = tmp_path_factory.mktemp("browser-servers")
    started: list[UvicornProcess] = []
    try:
        plain = start_api(root / "plain", local_env(root / "plain"))
        started.append(plain)
        allowed = f"http://localhost:{plain.port}"
        cors = start_api(root / "cors", local_env(root / "cors", HELPPET_CORS_ORIGINS=allowed))
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
    recording_id = only_row(visit)
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
    recording_id = only_row(visit)
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
    recording_id = only_row(visit)
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


def test_large_file_goes_up_in_parallel_parts_with_progress(
    browser: Browser, multipart_api: UvicornProcess, visits: list[Visit], tmp_path: Path
) -> None:
    """A 12 MiB WAV goes up as parallel part PUTs, one failed PUT retried; the bar reaches 100%."""
    path = tmp_path / "long-visit.wav"
    write_wav(path, LARGE_FILE_BYTES)
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
    assert most_in_flight(visit.events, "PUT") >= 2
    assert not [url for _, url in visit.requests if "long-visit" in url]

    recording_id = only_row(visit)
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
    write_wav(path, LARGE_FILE_BYTES)
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
    assert only_row(visit) == rid
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
    recording_id = only_row(visit)
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
