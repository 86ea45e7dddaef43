"""One SeaweedFS server for the end-to-end session; a headless Chromium for the browser page."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.support.browser_page import Visit, headless_chromium
from tests.support.seaweedfs import SeaweedEndpoint, SeaweedServer, create_bucket


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedEndpoint]:
    """A SeaweedFS S3 endpoint on 127.0.0.1; a start-up failure fails the tests with the reason."""
    workdir: Path = tmp_path_factory.mktemp("seaweedfs")
    server = SeaweedServer(workdir)
    try:
        endpoint = server.start()
    except RuntimeError as exc:
        server.stop()
        pytest.fail(f"SeaweedFS could not start: {exc}", pytrace=False)
    try:
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def seaweed_bucket(seaweed: SeaweedEndpoint) -> str:
    """A fresh, empty bucket on the session's SeaweedFS server."""
    name = f"t-{secrets.token_hex(6)}"
    create_bucket(seaweed, name)
    return name


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module, with fake media devices."""
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture
def visits() -> Iterator[list[Visit]]:
    """Browser-page visits opened by the test, closed (and checked) afterwards."""
    opened: list[Visit] = []
    yield opened
    for visit in opened:
        visit.close()
