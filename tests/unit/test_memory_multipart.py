"""InMemoryStorage runs the multipart contract (its receive_part is a client's PUT)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from helppet_recordings import InMemoryStorage, StorageError
from helppet_recordings.testing.multipart_contract import MultipartContract, SendPart
from tests.support.local_forms import FakeClock


class TestInMemoryMultipart(MultipartContract):
    """The multipart contract on the in-memory backend, with a clock the tests move."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        """The storage's clock."""
        return FakeClock()

    @pytest.fixture
    def storage(self, clock: FakeClock) -> InMemoryStorage:
        """An empty in-memory storage on the movable clock."""
        return InMemoryStorage(clock=clock)

    @pytest.fixture
    def send_part(self, storage: InMemoryStorage) -> SendPart:
        """receive_part, True when it kept the part."""

        def send(url: str, body: bytes) -> bool:
            try:
                storage.receive_part(url, body)
            except StorageError:
                return False
            return True

        return send

    @pytest.fixture
    def advance_clock(self, clock: FakeClock) -> Callable[[float], None]:
        """Move the storage's clock instead of sleeping."""

        def advance(seconds: float) -> None:
            clock.now += seconds

        return advance
