"""The in-memory repository passes the repository contract."""

from __future__ import annotations

import pytest

from helppet_recordings import InMemoryRepository
from helppet_recordings.ports import RecordingRepository
from helppet_recordings.testing.repository_contract import RepositoryContract


class TestInMemoryRepository(RepositoryContract):
    @pytest.fixture
    def repository(self) -> RecordingRepository:
        """A fresh in-memory repository."""
        return InMemoryRepository()
