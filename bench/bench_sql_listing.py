"""Listing and sweeping recordings in PostgreSQL at 1,000,000 rows over 10,000 users.

Starts a throwaway PostgreSQL (``tests/support/postgres.py``), migrates it with
``SqlAlchemyRepository.create_schema()``, bulk-loads recordings with one
``INSERT ... SELECT generate_series`` per chunk (a few heavy users hold 30% of
the rows, the others ~70 each), runs ``VACUUM (FREEZE, ANALYZE)`` and measures:

- ``find`` first page (limit 50, with its total) for random light users and for heavy users;
- ``find`` deep page (offset ~10,000) of a heavy user, and the keyset query
  (``(created_at, id) < cursor``) that returns the same page;
- keyset paging through the repository, ``find_page``: page 1 and page 200
  (50 a page, so 9,950 rows in) of heavy users, each with its total, against
  the first ``OFFSET`` page measured in the same loop, printed as ratios;
- ``list_stale_uploads`` (one sweep batch) and ``RecordingService.expire_stale_uploads``
  over every stale upload, with a storage that reports nothing arrived (so the
  sweep's database work is what is timed).

Each repository call is compared with a baseline measured in the same run: the
same SQL sent as a raw string through the same engine (no statement building,
no mapping to domain objects). ``EXPLAIN (ANALYZE, BUFFERS)`` plans are printed
for every query, and the run fails if any uses a sequential scan.

    .venv/bin/python bench/bench_sql_listing.py [--rows 1000000] [--users 10000] [--samples 400]

Targets: first page p50 < 5 ms; keyset page 1 and page 200 within 1.2x of the
first OFFSET page (p50); no sequential scan.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.support

from tests.support.postgres import PostgresServer

from helppet_recordings import RecordingService, RecordingSettings
from helppet_recordings.models import RecordingFilter, StoredObject, UploadTicket
from helppet_recordings.repositories.sqlalchemy import SqlAlchemyRepository
from helppet_recordings.status import RecordingStatus

BASE_TIME = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
"""The newest row's ``created_at``; row ``i`` was created ``31 * i`` seconds earlier."""

HEAVY_USERS = 20
HEAVY_SHARE = 0.30
RECENT_ROWS = 20_000  # only the newest rows can still be uploading
PAGE = 50
DEEP_OFFSET = 10_000
KEYSET_PAGE = 200  # the deep keyset page timed against the first page
SWEEP_BATCH = 100
SWEEP_NOW = BASE_TIME - dt.timedelta(days=3)
CHUNK = 100_000

LOAD_SQL = """
INSERT INTO recordings (
    id, visit_id, appointment_id, recorded_by_user_id, recording_type, status, filename,
    original_filename, file_size_bytes, duration_seconds, mime_type, s3_bucket, s3_key, s3_url,
    transcript_text, transcript_confidence, transcript_language, transcription_service,
    processing_started_at, processing_completed_at, processing_error, recording_metadata,
    is_deleted, deleted_at, deleted_by_user_id, created_at, updated_at, upload_expires_at)
SELECT
    md5('rec-' || g.i)::uuid,
    CASE WHEN (g.i / 20) % 10 < 7 THEN md5('visit-' || (g.i / 4))::uuid END,
    CASE WHEN (g.i / 20) % 10 < 6 THEN md5('appt-' || (g.i / 4))::uuid END,
    md5('user-' || g.u)::uuid,
    'visit_audio',
    g.status,
    g.i || '.m4a',
    'visit.m4a',
    CASE WHEN g.status <> 'uploading' THEN 500000 + g.i % 100000 END,
    CASE WHEN g.status <> 'uploading' THEN 60 + g.i % 600 END,
    'audio/mp4',
    'helppet-audio-recordings',
    'recordings/' || g.u || '/' || g.i || '.m4a',
    's3://helppet-audio-recordings/recordings/' || g.u || '/' || g.i || '.m4a',
    CASE WHEN g.status = 'transcribed' THEN repeat('The patient is doing well. ', 8) END,
    CASE WHEN g.status = 'transcribed' THEN 0.93 END,
    CASE WHEN g.status = 'transcribed' THEN 'en-US' END,
    CASE WHEN g.status = 'transcribed' THEN 'whisper' END,
    CASE WHEN g.status IN ('processing', 'transcribed') THEN g.created + interval '2 min' END,
    CASE WHEN g.status = 'transcribed' THEN g.created + interval '4 min' END,
    CASE WHEN g.status = 'failed' THEN 'transcription failed' END,
    '{"device_model":"iPhone 15 Pro","app_version":"3.2.1"}',
    g.i % 97 = 3,
    CASE WHEN g.i % 97 = 3 THEN g.created + interval '1 day' END,
    CASE WHEN g.i % 97 = 3 THEN md5('user-' || g.u)::uuid END,
    g.created,
    g.created + interval '4 min',
    g.created + interval '75 min'
FROM (
    SELECT
        i,
        CASE WHEN i < :heavy_rows THEN i % :heavy_users
             ELSE :heavy_users + (i * 7919) % (:users - :heavy_users) END AS u,
        CASE WHEN i < :recent AND i % 10 = 7 THEN 'uploading'
             WHEN (i / 20) % 50 = 11 THEN 'failed'
             WHEN (i / 20) % 50 = 13 THEN 'processing'
             WHEN (i / 20) % 50 = 17 THEN 'uploaded'
             ELSE 'transcribed' END AS status,
        CAST(:base AS timestamptz) - make_interval(secs => i * 31) AS created
    FROM generate_series(CAST(:start AS bigint), CAST(:stop AS bigint)) AS i
) AS g
"""

RAW_PAGE = (  # the repository's listing: the page, carrying its total (one round trip)
    "SELECT *, (SELECT count(*) FROM recordings WHERE recorded_by_user_id = %(user)s "
    "AND NOT is_deleted) AS total FROM recordings "
    "WHERE recorded_by_user_id = %(user)s AND NOT is_deleted "
    "ORDER BY created_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s"
)
RAW_STATUS_PAGE = RAW_PAGE.replace(
    "AND NOT is_deleted", "AND NOT is_deleted AND status = %(status)s"
)
RAW_COUNT = (
    "SELECT count(*) FROM recordings WHERE recorded_by_user_id = %(user)s AND NOT is_deleted"
)
RAW_KEYSET = (
    "SELECT * FROM recordings WHERE recorded_by_user_id = %(user)s AND NOT is_deleted "
    "AND (created_at, id) < (%(created_at)s, %(id)s) "
    "ORDER BY created_at DESC, id DESC LIMIT %(limit)s"
)
RAW_KEYSET_PAGE = (  # the repository's keyset page: the page after a position, with its total
    RAW_PAGE.replace(
        "ORDER BY", "AND (created_at, id) < (%(created_at)s, %(id)s) ORDER BY"
    ).replace(" OFFSET %(offset)s", "")
)
RAW_STALE = (
    "SELECT * FROM recordings WHERE status = 'uploading' AND NOT is_deleted "
    "AND upload_expires_at < %(now)s ORDER BY upload_expires_at, id LIMIT %(limit)s"
)


def user_id(number: int) -> uuid.UUID:
    """The id the load gives user ``number`` (``md5('user-' || number)::uuid``)."""
    return uuid.UUID(hashlib.md5(f"user-{number}".encode(), usedforsecurity=False).hexdigest())


class NothingArrivedStorage:
    """A storage that holds no objects and answers at once: times only the sweep's SQL work."""

    bucket = "helppet-audio-recordings"

    def create_upload(
        self, *, key: str, content_type: str, max_size: int, expires_in: int
    ) -> UploadTicket:
        """Not used by the sweep."""
        raise NotImplementedError

    def create_download_url(
        self, *, key: str, expires_in: int, content_type: str, filename: str
    ) -> str:
        """Not used by the sweep."""
        raise NotImplementedError

    def object_url(self, key: str) -> str:
        """Return an s3:// URI."""
        return f"s3://{self.bucket}/{key}"

    def head(self, key: str) -> StoredObject | None:
        """Nothing ever arrived."""
        return None

    def read_range(self, key: str, *, offset: int, length: int) -> bytes | None:
        """Nothing ever arrived."""
        return None

    def promote(
        self, source_key: str, target_key: str, *, expected: StoredObject
    ) -> StoredObject | None:
        """Nothing ever arrived."""
        return None

    def delete(self, key: str) -> None:
        """Nothing to delete."""

    def iter_objects(self, prefix: str) -> Iterator[StoredObject]:
        """No objects."""
        return iter(())


def p50_p95(times: Sequence[float]) -> tuple[float, float]:
    """The median and the 95th percentile."""
    return statistics.median(times), statistics.quantiles(times, n=20)[-1]


def measure(
    name: str,
    package: Callable[[uuid.UUID], object],
    inputs: Sequence[uuid.UUID],
    samples: int,
    baseline: Callable[[uuid.UUID], object] | None = None,
) -> float:
    """Time ``package`` (and ``baseline``) on ``inputs`` in turn; print p50/p95; return the p50.

    Each sample calls both on the same input, alternating which goes first, so
    background load on the machine weighs on both alike.
    """
    calls = [package] if baseline is None else [package, baseline]
    for i in range(min(20, samples)):  # warm up pools, statement caches, prepared plans
        for call in calls:
            call(inputs[i % len(inputs)])
    times: list[list[float]] = [[] for _ in calls]
    for i in range(samples):
        order = range(len(calls)) if i % 2 == 0 else reversed(range(len(calls)))
        for which in order:
            start = time.perf_counter_ns()
            calls[which](inputs[i % len(inputs)])
            times[which].append((time.perf_counter_ns() - start) / 1e6)
    p50, p95 = p50_p95(times[0])
    line = f"{name:<48} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms"
    if baseline is not None:
        b50, b95 = p50_p95(times[1])
        line += f"  | raw SQL p50 {b50:6.2f}  p95 {b95:6.2f}  | ratio {p50 / b50:4.2f}"
    print(line)
    return p50


def measure_together(
    calls: Sequence[tuple[str, Callable[[uuid.UUID], object]]],
    inputs: Sequence[uuid.UUID],
    samples: int,
) -> list[float]:
    """Time every call on the same input in each sample, rotating their order; return the p50s.

    Prints each call's p50/p95 and its ratio to the first call's p50. Measuring
    them in one loop lets background load weigh on all of them alike.
    """
    for i in range(min(20, samples)):  # warm up pools, statement caches, prepared plans
        for _, call in calls:
            call(inputs[i % len(inputs)])
    times: list[list[float]] = [[] for _ in calls]
    for i in range(samples):
        shift = i % len(calls)
        for which in [*range(shift, len(calls)), *range(shift)]:
            start = time.perf_counter_ns()
            calls[which][1](inputs[i % len(inputs)])
            times[which].append((time.perf_counter_ns() - start) / 1e6)
    p50s = []
    for (name, _), measured in zip(calls, times, strict=True):
        p50, p95 = p50_p95(measured)
        p50s.append(p50)
        print(
            f"{name:<48} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  | x first page {p50 / p50s[0]:5.2f}"
        )
    return p50s


def load(engine: sa.Engine, rows: int, users: int) -> None:
    """Fill the table with ``rows`` recordings, a chunk per statement, then VACUUM ANALYZE."""
    params: dict[str, Any] = {
        "heavy_rows": int(rows * HEAVY_SHARE),
        "heavy_users": HEAVY_USERS,
        "users": users,
        "recent": RECENT_ROWS,
        "base": BASE_TIME,
    }
    started = time.perf_counter()
    for start in range(0, rows, CHUNK):
        stop = min(rows, start + CHUNK) - 1
        with engine.begin() as connection:
            connection.execute(sa.text(LOAD_SQL), {**params, "start": start, "stop": stop})
        print(f"\r  loaded {stop + 1:>9,} rows  ({time.perf_counter() - started:5.1f} s)", end="")
    print()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        # FREEZE: right after a bulk load a plain VACUUM leaves most pages not all-visible,
        # and index-only scans (the count) would still visit the heap. A settled production
        # table is in this state through autovacuum.
        connection.exec_driver_sql("VACUUM (FREEZE, ANALYZE) recordings")
        size = connection.exec_driver_sql(
            "SELECT pg_size_pretty(pg_total_relation_size('recordings'))"
        ).scalar_one()
        pages, visible = connection.exec_driver_sql(
            "SELECT relpages, relallvisible FROM pg_class WHERE relname = 'recordings'"
        ).one()
    print(f"  heap pages all-visible: {visible:,} of {pages:,}")
    print(f"  load + VACUUM: {time.perf_counter() - started:.1f} s, table + indexes {size}")


def explain(engine: sa.Engine, title: str, sql: str, params: dict[str, Any]) -> str:
    """Print and return ``EXPLAIN (ANALYZE, BUFFERS)`` of ``sql``."""
    with engine.connect() as connection:
        plan_rows = connection.exec_driver_sql(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params
        ).all()
        connection.rollback()
    plan = "\n".join(f"    {row[0]}" for row in plan_rows)
    print(f"\n  -- {title}\n{plan}")
    return plan


def generic_plan(engine: sa.Engine, params: dict[str, Any]) -> str:
    """Print the generic plan PostgreSQL caches for the page query after repeated use."""
    with engine.connect() as connection:
        connection.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        connection.exec_driver_sql(
            "PREPARE page(uuid, bigint, bigint) AS "
            + RAW_PAGE.replace("%(user)s", "$1")
            .replace("%(limit)s", "$2")
            .replace("%(offset)s", "$3")
        )
        # EXECUTE takes no protocol-level parameters: the (generated) values go inline.
        execute = (
            f"EXECUTE page('{params['user']}'::uuid, {params['limit']:d}, {params['offset']:d})"
        )
        plan_rows = connection.exec_driver_sql(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + execute
        ).all()
        connection.exec_driver_sql("DEALLOCATE page")
        connection.exec_driver_sql("RESET plan_cache_mode")
        connection.rollback()
    plan = "\n".join(f"    {row[0]}" for row in plan_rows)
    print(f"\n  -- first page, heavy user, generic (prepared) plan\n{plan}")
    return plan


def main() -> None:
    """Start PostgreSQL, load, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.users <= HEAVY_USERS:
        parser.error(f"--users must be more than {HEAVY_USERS}")
    rng = random.Random(args.seed)

    with PostgresServer() as server:
        print("starting PostgreSQL ...")
        server.start()
        url = server.create_database("bench")
        with SqlAlchemyRepository.from_url(url) as repository:
            engine = repository.engine
            repository.create_schema()
            with engine.connect() as connection:
                version = connection.exec_driver_sql("SHOW server_version").scalar_one()
            print(
                f"PostgreSQL {version}; loading {args.rows:,} recordings over {args.users:,} users"
            )
            load(engine, args.rows, args.users)
            run(repository, args, rng)


def run(repository: SqlAlchemyRepository, args: argparse.Namespace, rng: random.Random) -> None:
    """Measure the repository against raw SQL and print plans."""
    engine = repository.engine
    samples: int = args.samples
    light = [user_id(HEAVY_USERS + rng.randrange(args.users - HEAVY_USERS)) for _ in range(1000)]
    heavy = [user_id(n) for n in range(HEAVY_USERS)]
    with engine.connect() as connection:
        heavy_live = [
            connection.exec_driver_sql(RAW_COUNT, {"user": user}).scalar_one() for user in heavy
        ]
        light_live = connection.exec_driver_sql(
            "SELECT avg(n) FROM (SELECT count(*) AS n FROM recordings WHERE NOT is_deleted "
            "GROUP BY recorded_by_user_id ORDER BY n LIMIT %(light)s) AS light",
            {"light": args.users - HEAVY_USERS},
        ).scalar_one()
    deep_offset = max(1, min(DEEP_OFFSET, min(heavy_live) - PAGE))
    print(
        f"\nlive rows per heavy user {min(heavy_live):,}..{max(heavy_live):,}, "
        f"per light user {float(light_live):.0f} on average; {samples} samples each\n"
    )

    def raw_page(user: uuid.UUID, offset: int) -> None:
        with engine.connect() as connection:
            params = {"user": user, "limit": PAGE, "offset": offset}
            connection.exec_driver_sql(RAW_PAGE, params).all()

    def page(user: uuid.UUID, offset: int = 0, **filters: Any) -> None:
        repository.find(RecordingFilter(user_id=user, **filters), limit=PAGE, offset=offset)

    first_p50 = measure(
        "find, first page, light users", page, light, samples, lambda u: raw_page(u, 0)
    )
    heavy_first_p50 = measure(
        "find, first page, heavy users", page, heavy, samples, lambda u: raw_page(u, 0)
    )
    appointments: dict[uuid.UUID, uuid.UUID] = {}
    for user in heavy:
        items = repository.find(RecordingFilter(user_id=user), limit=PAGE, offset=0).items
        appointment = next((r.appointment_id for r in items if r.appointment_id), None)
        if appointment is not None:
            appointments[user] = appointment
    measure(
        "find, heavy users, appointment filter",
        lambda u: page(u, appointment_id=appointments[u]),
        list(appointments),
        samples,
    )
    measure(
        "find, heavy users, status=uploaded (2% of rows)",
        lambda u: page(u, status=RecordingStatus.UPLOADED),
        heavy,
        samples,
    )
    measure(
        f"find, deep page (offset {deep_offset:,}), heavy users",
        lambda u: page(u, deep_offset),
        heavy,
        samples,
        lambda u: raw_page(u, deep_offset),
    )

    # The keyset cursor for the same deep page: the last row of the page before it.
    cursors = {}
    for user in heavy:
        before = repository.find(RecordingFilter(user_id=user), limit=1, offset=deep_offset - 1)
        cursors[user] = before.items[0]
    deep_user = heavy[0]
    deep = repository.find(RecordingFilter(user_id=deep_user), limit=PAGE, offset=deep_offset)

    def keyset(user: uuid.UUID) -> list[Any]:
        cursor = cursors[user]
        params = {"user": user, "created_at": cursor.created_at, "id": cursor.id, "limit": PAGE}
        with engine.connect() as connection:
            return list(connection.exec_driver_sql(RAW_KEYSET, params).all())

    assert [row.id for row in keyset(deep_user)] == [r.id for r in deep.items], "keyset != offset"
    measure("keyset page at the same depth (raw SQL)", keyset, heavy, samples)

    keyset_ratios = measure_keyset_pages(repository, heavy, min(heavy_live), samples)

    stale_batch = repository.list_stale_uploads(now=SWEEP_NOW, limit=SWEEP_BATCH)

    def raw_stale(_: uuid.UUID) -> None:
        with engine.connect() as connection:
            connection.exec_driver_sql(RAW_STALE, {"now": SWEEP_NOW, "limit": SWEEP_BATCH}).all()

    measure(
        f"list_stale_uploads (batch of {len(stale_batch)})",
        lambda _: repository.list_stale_uploads(now=SWEEP_NOW, limit=SWEEP_BATCH),
        heavy,
        samples,
        raw_stale,
    )

    print("\nplans (EXPLAIN ANALYZE, BUFFERS):")
    light_user, heavy_user = light[0], heavy[0]
    cursor = cursors[heavy_user]
    plans = [
        explain(
            engine,
            "first page, light user",
            RAW_PAGE,
            {"user": light_user, "limit": PAGE, "offset": 0},
        ),
        generic_plan(engine, {"user": heavy_user, "limit": PAGE, "offset": 0}),
        explain(
            engine,
            "first page with its total, heavy user",
            RAW_PAGE,
            {"user": heavy_user, "limit": PAGE, "offset": 0},
        ),
        explain(
            engine,
            "first page with its total, heavy user, status = 'uploaded'",
            RAW_STATUS_PAGE,
            {"user": heavy_user, "limit": PAGE, "offset": 0, "status": "uploaded"},
        ),
        explain(
            engine,
            f"deep page, heavy user, OFFSET {deep_offset:,}",
            RAW_PAGE,
            {"user": heavy_user, "limit": PAGE, "offset": deep_offset},
        ),
        explain(
            engine,
            "keyset page at the same depth",
            RAW_KEYSET,
            {"user": heavy_user, "created_at": cursor.created_at, "id": cursor.id, "limit": PAGE},
        ),
        explain(
            engine,
            "repository keyset page with its total, heavy user, at the same depth",
            RAW_KEYSET_PAGE,
            {"user": heavy_user, "created_at": cursor.created_at, "id": cursor.id, "limit": PAGE},
        ),
        explain(
            engine,
            "stale uploads (sweep batch)",
            RAW_STALE,
            {"now": SWEEP_NOW, "limit": SWEEP_BATCH},
        ),
    ]
    seq_scans = sum("Seq Scan" in plan for plan in plans)
    print()
    measure_sweep(repository)  # last: its updates change the table the plans above describe
    print("\nsummary")
    print(f"  first page p50, light users: {first_p50:.2f} ms (target < 5 ms)")
    print(f"  first page p50, heavy users: {heavy_first_p50:.2f} ms (target < 5 ms)")
    for name, ratio in keyset_ratios.items():
        print(f"  {name} p50 / first OFFSET page p50: {ratio:.2f} (target <= 1.20)")
    print(f"  plans with a sequential scan: {seq_scans} (target 0)")
    print(
        "  deep OFFSET reads and discards every row before the page (index entries and heap "
        "rows),\n  so its cost grows with the offset; the keyset query seeks straight to the "
        "cursor in the\n  (recorded_by_user_id, created_at DESC, id DESC) index and reads "
        "only the page."
    )
    if seq_scans or first_p50 >= 5 or max(keyset_ratios.values()) > 1.2:
        sys.exit(1)


def measure_keyset_pages(
    repository: SqlAlchemyRepository, heavy: list[uuid.UUID], live: int, samples: int
) -> dict[str, float]:
    """Time keyset pages 1 and 200 against the first OFFSET page; return their p50 ratios.

    Every call returns 50 whole recordings with the listing's total. Also
    timed in the same loop: the total alone, which every page pays at any
    depth. (OFFSET at that depth is timed above; it stays out of this loop
    because reading 10,000 rows a call churns the buffer cache the others use.)
    """
    deep = min(KEYSET_PAGE, live // PAGE)  # a smaller --rows may not reach page 200
    listing = {user: RecordingFilter(user_id=user) for user in heavy}
    positions: dict[uuid.UUID, tuple[dt.datetime, uuid.UUID]] = {}
    for user in heavy:
        (last,) = repository.find(listing[user], limit=1, offset=(deep - 1) * PAGE - 1).items
        positions[user] = (last.created_at, last.id)
    check = heavy[0]
    keyset = repository.find_page(listing[check], limit=PAGE, after=positions[check])
    offset = repository.find(listing[check], limit=PAGE, offset=(deep - 1) * PAGE)
    assert keyset == offset, "keyset page != OFFSET page"
    first = repository.find_page(listing[check], limit=PAGE, after=None)
    assert first == repository.find(listing[check], limit=PAGE, offset=0)

    def raw_count(user: uuid.UUID) -> None:
        with repository.engine.connect() as connection:
            connection.exec_driver_sql(RAW_COUNT, {"user": user}).scalar_one()

    print(f"\nkeyset paging, heavy users: {PAGE} a page with its total; page {deep} starts")
    print(f"{(deep - 1) * PAGE:,} rows in. p50 ratios to the first OFFSET page, in one loop:")
    names = ["keyset page 1", f"keyset page {deep}"]
    p50s = measure_together(
        [
            (
                "find, first page (OFFSET 0)",
                lambda u: repository.find(listing[u], limit=PAGE, offset=0),
            ),
            (names[0], lambda u: repository.find_page(listing[u], limit=PAGE, after=None)),
            (
                names[1],
                lambda u: repository.find_page(listing[u], limit=PAGE, after=positions[u]),
            ),
            ("the total alone (raw COUNT)", raw_count),
        ],
        heavy,
        samples,
    )
    return {names[0]: p50s[1] / p50s[0], names[1]: p50s[2] / p50s[0]}


def measure_sweep(repository: SqlAlchemyRepository) -> None:
    """Time ``expire_stale_uploads`` over every stale upload, three times (restoring between)."""
    engine = repository.engine
    service = RecordingService(NothingArrivedStorage(), repository, RecordingSettings())
    sweeps = []
    for _ in range(3):
        start = time.perf_counter()
        failed = service.expire_stale_uploads(now=SWEEP_NOW, batch_size=SWEEP_BATCH)
        sweeps.append((time.perf_counter() - start, failed))
        with engine.begin() as connection:  # put them back for the next round
            restored = connection.execute(
                sa.text(
                    "UPDATE recordings SET status = 'uploading', processing_error = NULL, "
                    "upload_expires_at = created_at + interval '75 min' "
                    "WHERE status = 'failed' AND processing_error LIKE :pattern"
                ),
                {"pattern": "The upload deadline%"},
            ).rowcount
        assert restored == failed
    for seconds, failed in sweeps:
        name = "expire_stale_uploads (all stale)"
        print(
            f"{name:<48} {failed:,} failed in {seconds * 1000:7.1f} ms"
            f"   = {seconds * 1000 / max(failed, 1):5.2f} ms per recording"
        )


if __name__ == "__main__":
    main()
