"""The PostgreSQL harness starts a real cluster on 127.0.0.1, serves SQL and stops cleanly."""

from __future__ import annotations

import os
import re
import socket
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from tests.support.postgres import HOST, PostgresServer

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e


def _port_accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((HOST, port)) == 0


def test_server_serves_a_fresh_database_and_closes_its_port_on_stop() -> None:
    """A started server creates a database that answers version() >= 15, and stop closes it."""
    with PostgresServer() as server:
        url = server.start()
        port = server.port
        assert port is not None
        directory = server.directory
        assert directory is not None
        assert url == f"postgresql+psycopg://postgres@{HOST}:{port}/postgres"
        db_url = server.create_database("harness")
        assert db_url == f"postgresql+psycopg://postgres@{HOST}:{port}/harness"
        engine = sa.create_engine(db_url)
        try:
            with engine.connect() as connection:
                version = connection.execute(sa.text("select version()")).scalar_one()
                database = connection.execute(sa.text("select current_database()")).scalar_one()
        finally:
            engine.dispose()
        match = re.match(r"PostgreSQL (\d+)\.", version)
        assert match is not None, version
        assert int(match.group(1)) >= 15, version
        assert database == "harness"
        assert _port_accepts(port)
        server.stop()
        assert server.pid is None
        assert not _port_accepts(port)
        assert not directory.exists()


def test_server_stop_is_idempotent_and_safe_before_start() -> None:
    """stop() before start() and twice in a row does nothing harmful."""
    server = PostgresServer()
    server.stop()
    server.stop()
    assert server.pid is None


def test_server_falls_back_to_system_temp_dir_when_workdir_is_unreachable(tmp_path: Path) -> None:
    """The cluster lives under workdir if the server account can reach it, else in the temp dir."""
    with PostgresServer(tmp_path) as server:
        server.start()
        directory = server.directory
        assert directory is not None
        reachable = os.geteuid() != 0 or all(
            parent.stat().st_mode & 0o001 for parent in (tmp_path, *tmp_path.parents)
        )
        assert (directory.parent == tmp_path) is reachable
        server.stop()
        server.stop()
