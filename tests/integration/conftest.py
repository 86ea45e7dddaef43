"""Databases for the SQL integration tests: SQLite in memory, a SQLite file, PostgreSQL.

One throwaway PostgreSQL cluster serves the whole session (started on first
use, so ``-k sqlite`` never starts it). If it cannot start, the tests that need
it fail with the reason; they are never skipped.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from helppet_recordings.repositories.sqlalchemy import SqlAlchemyRepository
from tests.support.postgres import PostgresServer

SQL_BACKENDS = ["sqlite-memory", "sqlite-file", "postgresql"]
"""Every database the repository runs on."""

SHARED_BACKENDS = ["sqlite-file", "postgresql"]
"""The databases that several connections (threads, processes) can share."""

DatabaseFactory = Callable[[], str]

_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL 15 cluster for the session; fails (never skips) if it cannot start."""
    server = PostgresServer()
    try:
        server.start(timeout=60)
    except RuntimeError as exc:
        server.stop()
        pytest.fail(f"PostgreSQL could not be started for the integration tests:\n{exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def new_postgres_database(postgres_server: PostgresServer) -> DatabaseFactory:
    """Return a function that creates an empty PostgreSQL database and returns its URL."""

    def create() -> str:
        return postgres_server.create_database(f"test_{next(_database_numbers)}")

    return create


@pytest.fixture(scope="session")
def shared_postgres_url(new_postgres_database: DatabaseFactory) -> str:
    """One migrated PostgreSQL database that repository tests share (truncated per test)."""
    url = new_postgres_database()
    with SqlAlchemyRepository.from_url(url) as repository:
        repository.create_schema()
    return url


@pytest.fixture(scope="session")
def postgres_admin_engine(shared_postgres_url: str) -> Iterator[sa.Engine]:
    """An engine on the shared PostgreSQL database, for truncating and inspecting."""
    engine = sa.create_engine(shared_postgres_url, poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


def database_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Return the URL of a database of ``kind`` holding no recordings.

    SQLite databases are new and empty. PostgreSQL is the shared, migrated
    database with its recordings table truncated.
    """
    if kind == "sqlite-memory":
        return "sqlite://"
    if kind == "sqlite-file":
        return f"sqlite:///{tmp_path / 'recordings.db'}"
    assert kind == "postgresql"
    url: str = request.getfixturevalue("shared_postgres_url")
    engine: sa.Engine = request.getfixturevalue("postgres_admin_engine")
    with engine.begin() as connection:
        connection.execute(sa.text("TRUNCATE recordings"))
    return url


def empty_database_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Return the URL of a brand-new database of ``kind`` with no tables at all."""
    if kind == "postgresql":
        factory: DatabaseFactory = request.getfixturevalue("new_postgres_database")
        return factory()
    return database_url(kind, request, tmp_path)


@pytest.fixture(params=SQL_BACKENDS)
def engine_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a database without recordings, on each backend in turn."""
    return database_url(request.param, request, tmp_path)


@pytest.fixture(params=SHARED_BACKENDS)
def shared_engine_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Like ``engine_url``, for the backends that many connections share (not in-memory)."""
    return database_url(request.param, request, tmp_path)


@pytest.fixture(params=SHARED_BACKENDS)
def empty_engine_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a new database with no tables (SQLite file, fresh PostgreSQL database)."""
    return empty_database_url(request.param, request, tmp_path)


@pytest.fixture
def sql_repository(engine_url: str) -> Iterator[SqlAlchemyRepository]:
    """A migrated, empty ``SqlAlchemyRepository`` on each backend; closed afterwards."""
    repository = SqlAlchemyRepository.from_url(engine_url)
    try:
        repository.create_schema()
        yield repository
    finally:
        repository.close()
