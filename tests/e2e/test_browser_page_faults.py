"""The example app's browser page when uploads go wrong, in a real headless Chromium.

A part that fails for good, a part whose success answer never reached the
page, and an API base URL typed without its scheme. The API runs on
LocalStorage (uvicorn on 127.0.0.1); Playwright's routes play the network's
part: they drop, hold or forward the page's requests.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from examples.demo import tone_wav
from playwright.sync_api import Browser, Error, Route, expect

from tests.support.browser_page import (
    API,
    LARGE_FILE_BYTES,
    WAIT_SECONDS,
    Visit,
    local_env,
    start_api,
    write_wav,
)
from tests.support.uvicorn_app import UvicornProcess

pytestmark = pytest.mark.e2e

WATCH_BAR = (
    "(() => { const bar = document.querySelector('#progress'); window.barSeen = [];"
    " new MutationObserver(() => window.barSeen.push(Number(bar.getAttribute('value'))))"
    ".observe(bar, {attributes: true, attributeFilter: ['value']}); })()"
)
"""Record every value written to the progress bar (the attribute: the property clamps to max)."""


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UvicornProcess]:
    """The example API on SQLite and LocalStorage."""
    root = tmp_path_factory.mktemp("browser-faults")
    server = start_api(root, local_env(root))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def visit(browser: Browser, api: UvicornProcess, visits: list[Visit]) -> Visit:
    """A tab on the example API's page, closed (and checked) after the test."""
    opened = Visit(browser, api.base_url)
    visits.append(opened)
    return opened


@pytest.fixture
def large_wav(tmp_path: Path) -> Path:
    """A WAV file large enough for the page to upload it in parts."""
    path = tmp_path / "large.wav"
    write_wav(path, LARGE_FILE_BYTES)
    return path


def _part_number(url: str) -> int:
    """The part a part URL names; 0 for any other URL."""
    numbers = parse_qs(urlsplit(url).query).get("partNumber")
    return int(numbers[0]) if numbers else 0


def _ended(visit: Visit, url: str) -> str | None:
    """How the page's request to ``url`` ended (requestfinished/requestfailed), if it has."""
    ends = [kind for kind, _, seen in visit.events if seen == url and kind != "request"]
    return ends[-1] if ends else None


def test_a_part_failing_for_good_aborts_the_others_and_leaves_the_next_upload_alone(
    visit: Visit, api: UvicornProcess, large_wav: Path, tmp_path: Path
) -> None:
    """Part 1 fails for good while the other parts are in flight: those are aborted at once.

    Their requests are held back by the route until the next upload is done,
    then let through: storage must never get them, and the next upload's
    progress bar must never show their bytes.
    """
    second = tmp_path / "second.wav"
    second.write_bytes(tone_wav(seconds=1.0))
    page = visit.page
    held: list[Route] = []

    def fail_part_one_hold_the_others(route: Route) -> None:
        number = _part_number(route.request.url) if route.request.method == "PUT" else 0
        if number == 1:
            route.abort("connectionreset")
        elif number:
            held.append(route)
        else:
            route.continue_()

    page.route("**/*", fail_part_one_hold_the_others)
    page.set_input_files("#file", str(large_wav))
    with page.expect_response(lambda r: r.url.endswith("/upload/multipart/initiate")) as answer:
        page.click("#upload")
    plan = answer.value.json()
    page.set_input_files("#file", str(second))  # chosen while the first is still under way
    expect(page.locator("#upload")).to_be_disabled()
    expect(page.locator("#status")).to_contain_text("once this upload ends")
    visit.wait_until("false")  # until the page shows an error
    assert (page.text_content("#error") or "").startswith("Part 1: could not reach storage")
    held_urls = [route.request.url for route in held]
    others = list(range(2, len(plan["parts"]) + 1))
    assert sorted(_part_number(url) for url in held_urls) == others
    # The failed upload is over: nothing of it may still be under way.
    assert [_ended(visit, url) for url in held_urls] == ["requestfailed"] * len(others)
    expect(page.locator("#upload")).to_be_enabled()

    page.evaluate(WATCH_BAR)
    visit.upload_and_wait()
    for route in held:
        with contextlib.suppress(Error):  # the page cancelled it: nothing to let through
            route.continue_()
    deadline = time.monotonic() + WAIT_SECONDS
    while None in [_ended(visit, url) for url in held_urls]:
        assert time.monotonic() < deadline, visit.events
        page.wait_for_timeout(50)
    page.wait_for_timeout(500)  # room for late events to reach the bar

    seen: list[float] = page.evaluate("window.barSeen")
    size = second.stat().st_size
    assert seen and seen[-1] == size
    assert max(seen) <= size, seen
    assert page.evaluate("document.querySelector('#progress').max") == size
    resumed = httpx.post(
        f"{api.base_url}{API}/upload/multipart/{plan['recording_id']}/parts",
        headers=visit.headers(),
        json={},
    )
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["uploaded_parts"] == []
    rows = page.locator("tr[data-recording-id]")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-status", "uploaded")


def test_a_part_storage_got_but_the_page_never_heard_of_is_not_sent_again(
    visit: Visit, large_wav: Path
) -> None:
    """Part 2 reaches storage but its answer is lost: the renewal lists it, so it is not re-sent."""
    content = large_wav.read_bytes()
    page = visit.page
    stored: list[int] = []

    def lose_part_twos_answer_once(route: Route) -> None:
        request = route.request
        if request.method == "PUT" and _part_number(request.url) == 2 and not stored:
            stored.append(route.fetch().status)  # storage takes it ...
            route.abort("connectionreset")  # ... and the connection drops before the answer
        else:
            route.continue_()

    page.route("**/*", lose_part_twos_answer_once)
    plan = visit.upload_in_parts(large_wav)
    rid = plan["recording_id"]

    assert stored == [200]
    part_two = [url for method, url in visit.requests if method == "PUT" and _part_number(url) == 2]
    assert len(part_two) == 1
    renewals = [url for _, url in visit.requests if url.endswith(f"/multipart/{rid}/parts")]
    assert len(renewals) == 1  # asked once, and told storage holds the part
    completions = [url for _, url in visit.requests if url.endswith(f"/upload/complete/{rid}")]
    assert len(completions) == 1
    assert page.evaluate("document.querySelector('#progress').value") == len(content)
    row = page.locator(f"tr[data-recording-id='{rid}']")
    expect(row).to_have_attribute("data-status", "uploaded")
    player = visit.play(rid)
    assert httpx.get(player["src"], timeout=60).content == content


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_an_api_base_url_without_its_scheme_is_named_as_the_problem(
    browser: Browser, api: UvicornProcess, visits: list[Visit], tmp_path: Path, host: str
) -> None:
    """``localhost:PORT`` is refused before any request, saying the scheme is missing (not CORS)."""
    typed = f"{host}:{api.port}"
    path = tmp_path / "visit.wav"
    path.write_bytes(tone_wav(seconds=1.0))
    visit = Visit(browser, api.base_url, typed)
    visits.append(visit)
    page = visit.page
    error = page.locator("#error")
    expected = (
        f'The API base URL "{typed}" has no scheme: write http://{typed} (or https://{typed}).'
    )
    page.press("#api-base", "Tab")  # leaving the field checks it
    expect(error).to_have_text(expected)

    page.set_input_files("#file", str(path))
    page.click("#upload")
    expect(error).to_have_text(expected)
    page.click("#refresh")
    expect(error).to_have_text(expected)
    assert not [url for _, url in visit.requests if API in url]
    listed = httpx.get(f"{api.base_url}{API}/", headers=visit.headers()).json()
    assert listed["total"] == 0

    page.fill("#api-base", api.base_url)  # http://127.0.0.1:PORT, this page's origin
    page.press("#api-base", "Tab")
    expect(error).to_be_empty()
    visit.upload_and_wait()
    expect(page.locator("tr[data-recording-id]")).to_have_count(1)
