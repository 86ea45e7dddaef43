"""A throwaway PostgreSQL cluster for integration and end-to-end tests.

Each :class:`PostgresServer` runs ``initdb`` into a private temporary directory,
starts ``postgres`` on a free port on 127.0.0.1 (TCP only on loopback; its unix
socket lives in the same private directory), trusts every local connection and
trades durability for speed (``fsync``, ``synchronous_commit`` and
``full_page_writes`` are off). ``stop`` shuts the postmaster down by PID and
removes the directory.

PostgreSQL refuses to run as root. When the tests run as root, ``initdb`` and
``postgres`` run as the ``postgres`` system user instead (the private directory
is handed to that user), so it must exist.

Typical use::

    with PostgresServer() as server:
        server.start()
        url = server.create_database("recordings")
        engine = sqlalchemy.create_engine(url)
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

from tests.support.servers import HOST, LOG_TAIL_LINES, StopsOnExit, free_ports, log_tail

__all__ = [
    "HOST",
    "SUPERUSER",
    "PostgresBinaries",
    "PostgresServer",
    "find_postgres_binaries",
]

SUPERUSER = "postgres"
"""The cluster's bootstrap superuser; every URL connects as this role (trust auth)."""

SYSTEM_USER = "postgres"
"""The operating-system account the server runs as when the tests run as root."""

_DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
_STOP_GRACE_SECONDS = 10.0
_KILL_WAIT_SECONDS = 5.0
_POLL_INTERVAL_SECONDS = 0.05
_PROBE_TIMEOUT_SECONDS = 2  # libpq's connect_timeout is whole seconds, minimum 2
_BIND_ATTEMPTS = 3
# A unix socket path (".../.s.PGSQL.<port>.lock" is the longest) must fit sun_path (108 bytes).
_MAX_SOCKET_DIR_LENGTH = 107 - len("/.s.PGSQL.65535.lock")
_BIND_ERROR = re.compile(r"could not (bind|create listen socket)|Address already in use")

# Settings for a disposable cluster: no durability, loopback TCP only, quiet enough logs.
_SERVER_SETTINGS: dict[str, str] = {
    "listen_addresses": HOST,
    "max_connections": "100",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "logging_collector": "off",
    "log_min_messages": "warning",
}


@dataclass(frozen=True)
class PostgresBinaries:
    """The ``initdb`` and ``postgres`` executables of one PostgreSQL installation."""

    initdb: Path
    postgres: Path


def find_postgres_binaries() -> PostgresBinaries:
    """Return ``initdb`` and ``postgres``: from PATH first, else the newest ``/usr/lib/postgresql``.

    Raises:
        RuntimeError: if no installation providing both programs can be found.
    """
    initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
    if initdb is not None and postgres is not None:
        return PostgresBinaries(initdb=Path(initdb), postgres=Path(postgres))

    def version_key(bindir: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name))

    candidates = sorted(
        (
            bindir
            for bindir in Path("/").glob(_DEBIAN_BIN_GLOB.lstrip("/"))
            if _is_executable(bindir / "initdb") and _is_executable(bindir / "postgres")
        ),
        key=version_key,
        reverse=True,
    )
    if candidates:
        bindir = candidates[0]
        return PostgresBinaries(initdb=bindir / "initdb", postgres=bindir / "postgres")
    msg = (
        "PostgreSQL server binaries not found: need both 'initdb' and 'postgres' on PATH "
        f"or in {_DEBIAN_BIN_GLOB} (install e.g. the postgresql-15 package)"
    )
    raise RuntimeError(msg)


class PostgresServer(StopsOnExit):
    """A throwaway PostgreSQL cluster on 127.0.0.1, for one test session or test.

    ``workdir`` is where the private cluster directory is created (default: the
    system temp dir). It falls back to the system temp dir when the server's
    account could not reach a directory under ``workdir`` (running as root with
    e.g. a workdir under ``/root``) or when the unix socket path would be too long.
    The private directory holds ``data/`` (the cluster), ``postgres.log`` (server
    output) and the unix socket. Use as a context manager (``__exit__`` stops the
    server; ``__enter__`` does not start it) or call ``start`` and ``stop``.
    """

    def __init__(self, workdir: Path | None = None) -> None:
        self.workdir = None if workdir is None else Path(workdir)
        self.binaries: PostgresBinaries | None = None
        self.directory: Path | None = None
        self.port: int | None = None
        self.url: str | None = None
        self.startup_seconds: float | None = None
        self.initdb_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._run_as: pwd.struct_passwd | None = None

    @property
    def pid(self) -> int | None:
        """The postmaster's process ID while it runs, else ``None``."""
        return None if self._process is None else self._process.pid

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory (only meaningful after ``start``)."""
        return self._require_directory() / "data"

    @property
    def log_path(self) -> Path:
        """The server log file (only meaningful after ``start``)."""
        return self._require_directory() / "postgres.log"

    def start(self, timeout: float = 60.0) -> str:
        """Create and start the cluster; return the URL of its ``postgres`` database.

        The URL has the form ``postgresql+psycopg://postgres@127.0.0.1:<port>/postgres``
        and is returned once a psycopg connection succeeds.

        Raises:
            RuntimeError: if the server is already started, binaries or the
                ``postgres`` system user (when root) are missing, ``initdb`` fails,
                or the server exits or is not ready within ``timeout`` seconds; the
                message quotes the end of the relevant output.
        """
        if self._process is not None or self.directory is not None:
            msg = "PostgreSQL server already started"
            raise RuntimeError(msg)
        began = time.monotonic()
        deadline = began + timeout
        try:
            self.binaries = find_postgres_binaries()
            self._run_as = _system_user() if os.geteuid() == 0 else None
            self.directory = self._make_directory()
            self._initdb()
            self._launch(deadline)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        self.url = self._url("postgres")
        return self.url

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` and return its SQLAlchemy URL.

        Raises:
            RuntimeError: if the server is not running.
            psycopg.Error: if the database cannot be created (e.g. it exists).
        """
        with self._connect() as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self._url(name)

    def stop(self) -> None:
        """Stop the postmaster (SIGINT, i.e. fast shutdown; SIGKILL if it lingers), remove files.

        Safe to call more than once and on a server that never (fully) started.
        """
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=_STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                # The postmaster leads its own process group, which its backends share.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=_KILL_WAIT_SECONDS)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        directory, self.directory = self.directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        self.port = None
        self.url = None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """Return the last ``lines`` lines of the server log (empty if there is none)."""
        if self.directory is None:
            return ""
        if self._log_file is not None:
            self._log_file.flush()
        return log_tail(self.log_path, lines)

    def _require_directory(self) -> Path:
        if self.directory is None:
            msg = "PostgreSQL server not started"
            raise RuntimeError(msg)
        return self.directory

    def _url(self, database: str) -> str:
        url = URL.create(
            "postgresql+psycopg",
            username=SUPERUSER,
            host=HOST,
            port=self.port,
            database=database,
        )
        return url.render_as_string(hide_password=False)

    def _connect(self, timeout: int = 10) -> psycopg.Connection[Any]:
        """Open an autocommit connection to the ``postgres`` database."""
        if self._process is None or self.port is None:
            msg = "PostgreSQL server not running"
            raise RuntimeError(msg)
        return psycopg.connect(
            host=HOST,
            port=self.port,
            user=SUPERUSER,
            dbname="postgres",
            sslmode="disable",
            connect_timeout=timeout,
            autocommit=True,
        )

    def _make_directory(self) -> Path:
        """Create the private cluster directory, owned by the account the server runs as."""
        parents = [self.workdir] if self.workdir is not None else []
        parents.append(Path(tempfile.gettempdir()))
        rejected: list[str] = []
        for parent in parents:
            parent.mkdir(parents=True, exist_ok=True)
            directory = Path(tempfile.mkdtemp(prefix="pg-", dir=parent))
            if len(os.fsencode(directory)) > _MAX_SOCKET_DIR_LENGTH:
                rejected.append(f"{parent}: path too long for a unix socket")
            elif self._run_as is None:
                return directory
            else:
                os.chown(directory, self._run_as.pw_uid, self._run_as.pw_gid)
                if self._reachable_by_server(directory):
                    return directory
                rejected.append(f"{parent}: not traversable by user {SYSTEM_USER!r}")
            shutil.rmtree(directory, ignore_errors=True)
        msg = "no usable directory for the PostgreSQL cluster: " + "; ".join(rejected)
        raise RuntimeError(msg)

    def _reachable_by_server(self, directory: Path) -> bool:
        """Whether the server's account can enter ``directory`` (every parent searchable)."""
        result = subprocess.run(
            ["test", "-x", str(directory)],
            check=False,
            **self._child_options(cwd=Path("/")),
        )
        return result.returncode == 0

    def _child_options(self, cwd: Path | None = None) -> dict[str, Any]:
        """Keyword arguments for ``subprocess`` that run a child as the server's account.

        The child starts in ``cwd`` (default: the private directory), which the
        server's account can always enter, unlike perhaps the caller's. ``PG*``
        variables are dropped so the caller's libpq settings cannot leak in.
        """
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env["LC_ALL"] = "C"
        options: dict[str, Any] = {
            "env": env,
            "stdin": subprocess.DEVNULL,
            "cwd": self._require_directory() if cwd is None else cwd,
        }
        account = self._run_as
        if account is not None:
            env.update(HOME=account.pw_dir, USER=account.pw_name, LOGNAME=account.pw_name)
            options.update(
                user=account.pw_uid,
                group=account.pw_gid,
                extra_groups=os.getgrouplist(account.pw_name, account.pw_gid),
            )
        return options

    def _initdb(self) -> None:
        """Run ``initdb`` for a trust-authenticated, UTF-8, C-locale cluster."""
        assert self.binaries is not None  # start() sets it first
        began = time.monotonic()
        result = subprocess.run(
            [
                str(self.binaries.initdb),
                f"--pgdata={self.data_dir}",
                f"--username={SUPERUSER}",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            check=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            **self._child_options(),
        )
        self.initdb_seconds = time.monotonic() - began
        if result.returncode != 0:
            output = result.stdout.decode("utf-8", errors="replace").splitlines()
            msg = (
                f"initdb exited with status {result.returncode}\n"
                f"--- last {LOG_TAIL_LINES} lines of initdb output ---\n"
                + "\n".join(output[-LOG_TAIL_LINES:])
            )
            raise RuntimeError(msg)

    def _launch(self, deadline: float) -> None:
        """Start the postmaster on a free port, retrying if the port got taken meanwhile."""
        assert self.binaries is not None  # start() sets it first
        self._log_file = self.log_path.open("ab")
        for _ in range(_BIND_ATTEMPTS):
            (self.port,) = free_ports(1)
            settings = {
                **_SERVER_SETTINGS,
                "port": str(self.port),
                "unix_socket_directories": str(self.directory),
            }
            log_offset = self._log_file.tell()
            self._process = subprocess.Popen(
                [
                    str(self.binaries.postgres),
                    "-D",
                    str(self.data_dir),
                    *(f"-c{name}={value}" for name, value in settings.items()),
                ],
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._child_options(),
            )
            if self._wait_ready(deadline):
                return
            self._process = None  # exited: the port was taken between picking and binding
            if not _BIND_ERROR.search(self._log_since(log_offset)):
                break
        self._fail("postgres exited during start-up")

    def _wait_ready(self, deadline: float) -> bool:
        """Poll with psycopg until a connection works (True) or the postmaster exits (False).

        Raises:
            RuntimeError: if the server is still not accepting connections at ``deadline``.
        """
        process = self._process
        assert process is not None  # _launch() sets it just before
        last_error = "no attempt made"
        while True:
            if process.poll() is not None:
                return False
            try:
                with self._connect(timeout=_PROBE_TIMEOUT_SECONDS) as connection:
                    connection.execute("SELECT 1")
            except psycopg.OperationalError as error:
                last_error = str(error).strip() or type(error).__name__
            else:
                return True
            if time.monotonic() >= deadline:
                self._fail(f"PostgreSQL not ready in time; last probe error: {last_error}")
            time.sleep(_POLL_INTERVAL_SECONDS)

    def _log_since(self, offset: int) -> str:
        assert self._log_file is not None  # _launch() opens it
        self._log_file.flush()
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", errors="replace")

    def _fail(self, reason: str) -> None:
        """Raise a start-up error that quotes the end of the server log."""
        log_path = self.log_path
        msg = f"{reason}\n--- last {LOG_TAIL_LINES} lines of {log_path} ---\n{self.log_tail()}"
        raise RuntimeError(msg)


def _system_user() -> pwd.struct_passwd:
    """Return the account PostgreSQL runs as when the tests run as root.

    Raises:
        RuntimeError: if that account does not exist.
    """
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        msg = (
            f"running as root, but PostgreSQL refuses to run as root and there is no "
            f"{SYSTEM_USER!r} system user to run it as; create one (e.g. "
            f"`useradd --system {SYSTEM_USER}`) or run the tests as a non-root user"
        )
        raise RuntimeError(msg) from None


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
