"""One SeaweedFS server for the end-to-end session, started and stopped by the suite."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

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
