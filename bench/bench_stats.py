"""``stats()`` over 1,000,000 recordings in PostgreSQL, against a bare ``count(*)``.

Builds the data set of ``bench_sql_listing.py`` (its ``load``: a throwaway
PostgreSQL, ``INSERT ... SELECT generate_series`` in chunks), then gives the
settled rows what a verified upload has since migration 0002 (``verified_at``,
a measured duration; a third of the failed ones never verified), runs
``VACUUM (FREEZE, ANALYZE)`` and measures:

- ``SqlAlchemyRepository.stats()`` over every recording, and over the newest
  30 days;
- the baseline, in the same run on the same engine: ``SELECT count(*)`` over
  the same rows (the least any statistic over them must read).

Each is run several times; the fastest and median runs are printed with the
ratio to the baseline, then the ``EXPLAIN (ANALYZE, BUFFERS)`` plans (the
statistics statement with the ``work_mem`` that ``stats()`` sets), the time
against the target and the machine's load average.
Target: ``stats()`` over 1,000,000 rows under 1 s.

    .venv/bin/python bench/bench_stats.py [--rows 1000000] [--users 10000] [--runs 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.support and bench

from bench.bench_sql_listing import BASE_TIME, HEAVY_USERS, load
from tests.support.postgres import PostgresServer

from helppet_recordings.repositories.sqlalchemy import SqlAlchemyRepository
from helppet_recordings.repositories.sqlalchemy.reports import (
    RAISE_WORK_MEM,
    STATS_WORK_MEM,
    StatsStatements,
    window_params,
)

WINDOW = dt.timedelta(days=30)
COUNT_ALL = "SELECT count(*) FROM recordings"
COUNT_WINDOW = "SELECT count(*) FROM recordings WHERE created_at >= %(since)s"
TARGET_SECONDS = 1.0

SETTLE_SQL = """
UPDATE recordings SET
    verified_at = created_at + interval '1 min',
    audio_duration_seconds = duration_seconds * 0.98 + (mod(get_byte(uuid_send(id), 1), 7))
WHERE status <> 'uploading' AND file_size_bytes IS NOT NULL
"""
NEVER_ARRIVED_SQL = """
UPDATE recordings SET verified_at = NULL, file_size_bytes = NULL, duration_seconds = NULL,
    audio_duration_seconds = NULL
WHERE status = 'failed' AND mod(get_byte(uuid_send(id), 0), 3) = 0
"""


def settle(engine: sa.Engine) -> None:
    """Give settled rows verification and measured audio; then VACUUM (FREEZE, ANALYZE)."""
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.exec_driver_sql(SETTLE_SQL)
        connection.exec_driver_sql(NEVER_ARRIVED_SQL)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM (FREEZE, ANALYZE) recordings")
    print(f"  verification columns set + VACUUM: {time.perf_counter() - started:.1f} s")


def timed(call: Callable[[], object], runs: int) -> list[float]:
    """Seconds of each of ``runs`` calls (after one warm-up call)."""
    call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def line(name: str, times: list[float], baseline: list[float] | None = None) -> str:
    """One result line: fastest and median run, and their ratio to the baseline's."""
    fastest, median = min(times), statistics.median(times)
    text = f"{name:<42} fastest {fastest * 1000:8.1f} ms  median {median * 1000:8.1f} ms"
    if baseline is not None:
        text += (
            f"  | ratio to count(*) {fastest / min(baseline):5.2f}"
            f" (median {median / statistics.median(baseline):5.2f})"
        )
    return text


def stats_sql(
    repository: SqlAlchemyRepository, since: dt.datetime | None
) -> tuple[str, dict[str, Any]]:
    """The statement ``stats()`` sends, as SQL text and its parameters."""
    statements = StatsStatements(repository.table)  # the repository builds the same one
    statement = statements.statement(postgres=True, since=since is not None, until=False)
    compiled = statement.compile(dialect=repository.engine.dialect)
    return str(compiled), {**compiled.params, **window_params(since, None)}


def explain(
    engine: sa.Engine, title: str, sql: str, params: dict[str, Any], *, as_stats: bool = False
) -> None:
    """Print ``EXPLAIN (ANALYZE, BUFFERS)`` of ``sql`` (``as_stats``: with stats()'s work_mem)."""
    with engine.connect() as connection:
        if as_stats:
            connection.execute(RAISE_WORK_MEM)
        rows = connection.exec_driver_sql(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params
        ).all()
        connection.rollback()
    plan = "\n".join(f"    {row[0]}" for row in rows)
    print(f"\n  -- {title}\n{plan}")


def run(repository: SqlAlchemyRepository, runs: int) -> bool:
    """Measure stats() against count(*) over all rows and over the window; print plans."""
    engine = repository.engine
    since = BASE_TIME - WINDOW

    def count(window: dt.datetime | None) -> None:
        sql, params = (COUNT_ALL, {}) if window is None else (COUNT_WINDOW, {"since": window})
        with engine.connect() as connection:
            connection.exec_driver_sql(sql, params).scalar_one()

    print(f"load average before: {load_average()}")
    results = {}
    for label, window in (("every recording", None), ("newest 30 days", since)):
        baseline = timed(lambda window=window: count(window), runs)  # type: ignore[misc]
        package = timed(
            lambda window=window: repository.stats(since=window, until=None),  # type: ignore[misc]
            runs,
        )
        results[label] = package
        print(line(f"count(*), {label}", baseline))
        print(line(f"stats(), {label}", package, baseline))
    computed = repository.stats(since=None, until=None)
    print(
        f"\n  {computed.uploads.initiated:,} recordings; success rate "
        f"{computed.uploads.success_rate:.4f}; size p50 {computed.file_size_bytes.p50:,.0f} B; "
        f"processing p99 {computed.processing_seconds.p99:.1f} s"
    )
    for label, window in (("stats(), every recording", None), ("stats(), newest 30 days", since)):
        sql, params = stats_sql(repository, window)
        explain(engine, f"{label} (work_mem at least {STATS_WORK_MEM})", sql, params, as_stats=True)
        explain(
            engine,
            f"baseline count(*), {label.split(', ', 1)[1]}",
            COUNT_ALL if window is None else COUNT_WINDOW,
            {} if window is None else {"since": window},
        )
    fastest = min(results["every recording"])
    median = statistics.median(results["every recording"])
    verdict = "met" if fastest < TARGET_SECONDS else "MISSED"
    print(
        f"\ntarget: stats() over every recording under {TARGET_SECONDS:.0f} s: {verdict}"
        f" (fastest {fastest:.3f} s = {fastest / TARGET_SECONDS:.2f} of the target,"
        f" median {median:.3f} s = {median / TARGET_SECONDS:.2f})"
        f"; load average after: {load_average()}"
    )
    return fastest < TARGET_SECONDS


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (the machine may be shared)."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    """Start PostgreSQL, load, settle, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if args.users <= HEAVY_USERS:
        parser.error(f"--users must be more than {HEAVY_USERS}")
    with PostgresServer() as server:
        print("starting PostgreSQL ...")
        server.start()
        url = server.create_database("bench_stats")
        with SqlAlchemyRepository.from_url(url) as repository:
            repository.create_schema()
            with repository.engine.connect() as connection:
                version = connection.exec_driver_sql("SHOW server_version").scalar_one()
            print(f"PostgreSQL {version}; loading {args.rows:,} recordings")
            load(repository.engine, args.rows, args.users)
            settle(repository.engine)
            met = run(repository, args.runs)
    if not met:
        sys.exit(1)


if __name__ == "__main__":
    main()
