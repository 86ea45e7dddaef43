"""The commands of ``helppet-recordings`` (click), over the deployment's environment."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar

from helppet_recordings.errors import MissingDependencyError, RecordingError

try:
    import click
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("click", "cli") from exc

from helppet_recordings.cli._database import current_revisions
from helppet_recordings.cli._output import USAGE_ERROR, Advance, Output
from helppet_recordings.cli.bucket import BucketExpectations, PartResult, apply_configuration
from helppet_recordings.cli.doctor import DOCTOR_S3_OPTIONS, probe_bucket, run_doctor
from helppet_recordings.cli.findings import Finding, Status, exit_status
from helppet_recordings.environment import (
    Backends,
    ConfigurationError,
    DeploymentSettings,
    build_backends,
    build_repository,
    build_storage,
)
from helppet_recordings.service import RecordingService

if TYPE_CHECKING:
    from rich.console import Console

    from helppet_recordings.models import ReconcileReport, StoredObject
    from helppet_recordings.ports import RecordingStorage
    from helppet_recordings.repositories.sqlalchemy import SqlAlchemyRepository
    from helppet_recordings.stats import DistributionStats, RecordingStats

__all__ = ["cli"]


PROBLEMS_FOUND: Final = 1
_LISTED_KEYS: Final = 20
_STYLES: Final = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "red"}

P = ParamSpec("P")
R = TypeVar("R")


def _reporting(command: Callable[P, R]) -> Callable[P, R]:
    """Add ``--json`` and ``--progress/--no-progress`` to a command."""
    command = click.option(
        "--progress/--no-progress",
        "progress",
        default=None,
        help="Show progress on stderr (default: when stdout is a terminal).",
    )(command)
    return click.option("--json", "json_mode", is_flag=True, help="Report as JSON.")(command)


@contextlib.contextmanager
def _errors(output: Output) -> Iterator[None]:
    """Turn the package's errors into a report and an exit status (2: configuration, 1: other)."""
    try:
        yield
    except (ConfigurationError, MissingDependencyError) as error:
        raise output.fail(error, status=USAGE_ERROR) from None
    except RecordingError as error:
        raise output.fail(error, status=PROBLEMS_FOUND) from None


@contextlib.contextmanager
def _backends() -> Iterator[Backends]:
    backends = build_backends(DeploymentSettings.load())
    try:
        yield backends
    finally:
        backends.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="helppet-recordings", prog_name="helppet-recordings")
def cli() -> None:
    """Operate a helppet-recordings deployment.

    Configured from the environment, like the example app: DATABASE_URL,
    HELPPET_STORAGE (local or s3), S3_BUCKET_NAME, AWS_REGION, ... Exit status:
    0 all is well, 1 problems found, 2 usage or configuration error.
    """


# ------------------------------------------------------------------------------ migrate


@cli.command()
@_reporting
def migrate(*, json_mode: bool, progress: bool | None) -> None:
    """Bring the database to the current schema (the package's Alembic migrations)."""
    output = Output(json_mode=json_mode, progress=progress)
    with _errors(output):
        environment = DeploymentSettings.load()
        repository = build_repository(environment)
        try:
            before = _revisions(repository)
            with output.progress("Migrating", "steps"):
                repository.create_schema()
            after = _revisions(repository)
        finally:
            repository.close()
    database = repository.engine.url.render_as_string(hide_password=True)
    payload = {
        "ok": True,
        "database": database,
        "from": before,
        "to": after,
        "changed": before != after,
    }

    def text(console: Console) -> None:
        if before == after:
            console.print(f"{database} is already at the head revision ({', '.join(after)}).")
        else:
            was = ", ".join(before) or "no schema"
            console.print(f"Migrated {database}: {was} -> {', '.join(after)}.")

    output.report(payload, text)


def _revisions(repository: SqlAlchemyRepository) -> list[str]:
    from helppet_recordings.repositories.sqlalchemy import translate_errors  # noqa: PLC0415

    with translate_errors("read the schema revision"), repository.engine.connect() as connection:
        return current_revisions(connection)


# ------------------------------------------------------------------------------ jobs


class _ObservedStorage:
    """The storage, counting what a job does with it (for progress); all else passes through."""

    def __init__(self, inner: RecordingStorage, advance: Advance) -> None:
        self._inner = inner
        self._advance = advance

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def head(self, key: str) -> StoredObject | None:
        """HEAD the object, counting it."""
        found = self._inner.head(key)
        self._advance(1)
        return found

    def delete(self, key: str) -> None:
        """Delete the object, counting it."""
        self._inner.delete(key)
        self._advance(1)

    def iter_objects(self, prefix: str) -> Iterator[StoredObject]:
        """Yield the objects under ``prefix``, counting each."""
        for stored in self._inner.iter_objects(prefix):
            self._advance(1)
            yield stored


def _observed(backends: Backends, advance: Advance) -> RecordingService:
    return RecordingService(
        storage=_ObservedStorage(backends.storage, advance),
        repository=backends.repository,
        settings=backends.service.settings,
    )


@cli.command()
@_reporting
def sweep(*, json_mode: bool, progress: bool | None) -> None:
    """Settle uploads whose deadline passed (expire_stale_uploads); run every few minutes."""
    output = Output(json_mode=json_mode, progress=progress)
    with (
        _errors(output),
        _backends() as backends,
        output.progress("Sweeping stale uploads", "checked") as advance,
    ):
        failed = _observed(backends, advance).expire_stale_uploads()
    output.report(
        {"ok": True, "failed": failed},
        lambda console: console.print(f"Sweep done: {failed} stale upload(s) marked failed."),
    )


@cli.command()
@click.option(
    "--delete-orphans",
    is_flag=True,
    help="Delete objects no recording owns (older than an hour); default: only report.",
)
@_reporting
def reconcile(*, delete_orphans: bool, json_mode: bool, progress: bool | None) -> None:
    """Compare storage with the database: orphan objects, recordings whose audio is gone.

    Exits 1 when it finds a recording without its object, or orphans it did
    not delete.
    """
    output = Output(json_mode=json_mode, progress=progress)
    with (
        _errors(output),
        _backends() as backends,
        output.progress("Reconciling storage and database", "objects") as advance,
    ):
        report = _observed(backends, advance).reconcile(delete_orphans=delete_orphans)
    left = len(report.orphan_keys) - report.deleted_orphans
    payload = {
        "ok": not report.missing_objects and left == 0,
        "dry_run": report.dry_run,
        "scanned_objects": report.scanned_objects,
        "scanned_recordings": report.scanned_recordings,
        "orphan_keys": report.orphan_keys,
        "missing_objects": [str(rid) for rid in report.missing_objects],
        "deleted_orphans": report.deleted_orphans,
    }
    output.report(payload, functools.partial(_reconcile_text, report))
    if not payload["ok"]:
        raise click.exceptions.Exit(PROBLEMS_FOUND)


def _reconcile_text(report: ReconcileReport, console: Console) -> None:
    console.print(
        f"Scanned {report.scanned_objects} object(s) and {report.scanned_recordings} "
        f"recording(s){' (dry run)' if report.dry_run else ''}."
    )
    if report.orphan_keys:
        console.print(
            f"{len(report.orphan_keys)} orphan object(s), {report.deleted_orphans} deleted:"
        )
        for key in report.orphan_keys[:_LISTED_KEYS]:
            console.print(f"  {key}")
        if len(report.orphan_keys) > _LISTED_KEYS:
            console.print(f"  ... and {len(report.orphan_keys) - _LISTED_KEYS} more (--json)")
        if report.dry_run:
            console.print("Run with --delete-orphans to delete those older than an hour.")
    if report.missing_objects:
        console.print(
            f"[red]{len(report.missing_objects)} recording(s) lost their audio[/] "
            "(restore from a backup or a previous version):"
        )
        for rid in report.missing_objects[:_LISTED_KEYS]:
            console.print(f"  {rid}")
    if not report.orphan_keys and not report.missing_objects:
        console.print("Storage and database agree.")


@cli.command()
@click.option(
    "--retention-days",
    type=click.IntRange(min=0),
    default=None,
    help="Days a deleted recording keeps its audio (default: HELPPET_DELETED_RETENTION_DAYS).",
)
@_reporting
def purge(*, retention_days: int | None, json_mode: bool, progress: bool | None) -> None:
    """Remove the audio of recordings deleted longer ago than the retention (purge_deleted)."""
    output = Output(json_mode=json_mode, progress=progress)
    with (
        _errors(output),
        _backends() as backends,
        output.progress("Purging deleted recordings", "purged") as advance,
    ):
        purged = _observed(backends, advance).purge_deleted(retention_days=retention_days)
    output.report(
        {"ok": True, "purged": purged},
        lambda console: console.print(f"Purge done: {purged} deleted recording(s) purged."),
    )


# ------------------------------------------------------------------------------ stats


if TYPE_CHECKING:
    _DateTimeParam = click.ParamType[dt.datetime]
else:  # click before 8.2 has no generic ParamType at run time
    _DateTimeParam = click.ParamType


class _IsoTime(_DateTimeParam):
    """An ISO 8601 date or time; one without a zone is taken as UTC."""

    name = "ISO-TIME"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> dt.datetime:
        """Parse ``value`` (``2026-11-01``, ``2026-11-01T08:00:00+01:00``, ``...Z``)."""
        if isinstance(value, dt.datetime):
            return value
        try:
            parsed = dt.datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 date or time", param, ctx)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


_ISO_TIME: Final = _IsoTime()
_DISTRIBUTION_LABELS: Final = (
    ("file_size_bytes", "file size (bytes)"),
    ("duration_seconds", "duration, declared (s)"),
    ("audio_duration_seconds", "duration, measured (s)"),
    ("processing_seconds", "processing (s)"),
)


@cli.command()
@click.option("--since", type=_ISO_TIME, help="Recordings created at or after (ISO 8601; UTC).")
@click.option("--until", type=_ISO_TIME, help="Recordings created before (ISO 8601; UTC).")
@_reporting
def stats(
    *,
    since: dt.datetime | None,
    until: dt.datetime | None,
    json_mode: bool,
    progress: bool | None,
) -> None:
    """Statistics: counts by status, upload success rate, sizes, durations, processing times.

    Computed in the database over the recordings created in the window
    (default: all of them), deleted ones included.
    """
    if since is not None and until is not None and since >= until:
        raise click.UsageError("--until must be later than --since")
    output = Output(json_mode=json_mode, progress=progress)
    with (
        _errors(output),
        _backends() as backends,
        output.progress("Computing statistics", "queries"),
    ):
        computed = backends.service.stats(since=since, until=until)
    output.report(
        {"ok": True, **computed.model_dump(mode="json")},
        functools.partial(_stats_text, computed),
    )


def _stats_text(computed: RecordingStats, console: Console) -> None:
    from rich.table import Table  # noqa: PLC0415 - only the text report needs it

    start = "the beginning" if computed.since is None else computed.since.isoformat()
    end = "now" if computed.until is None else computed.until.isoformat()
    console.print(f"Recordings created from {start} until {end}: {computed.total:,}")
    console.print(
        "  "
        + ", ".join(f"{status.value} {count:,}" for status, count in computed.by_status.items())
    )
    uploads = computed.uploads
    rate = computed.upload_success_rate
    console.print(
        "Upload success rate: "
        + ("n/a (no upload has settled)" if rate is None else f"{rate:.1%}")
        + f" ({uploads.verified:,} verified, {uploads.failed_without_audio:,} failed without"
        f" audio, {uploads.uploading:,} still uploading)"
    )
    table = Table(box=None, pad_edge=False)
    table.add_column("")
    for heading in ("count", "min", "p50", "p90", "p99", "max", "mean"):
        table.add_column(heading, justify="right")
    for field, label in _DISTRIBUTION_LABELS:
        spread: DistributionStats = getattr(computed, field)
        figures = (spread.min, spread.p50, spread.p90, spread.p99, spread.max, spread.mean)
        table.add_row(label, f"{spread.count:,}", *(_figure(value) for value in figures))
    console.print(table)


def _figure(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.2f}"


# ------------------------------------------------------------------------------ doctor


@cli.command()
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@_reporting
def doctor(*, strict: bool, json_mode: bool, progress: bool | None) -> None:
    """Check the deployment (database, storage, bucket configuration) and say what to fix."""
    output = Output(json_mode=json_mode, progress=progress)
    with _errors(output):
        environment = DeploymentSettings.load()
        with output.progress("Checking the deployment", "checks"):
            findings = run_doctor(environment)
    status = exit_status(findings, strict=strict)
    counts = {state.value: sum(f.status is state for f in findings) for state in Status}
    payload = {
        "ok": status == 0,
        "storage": environment.storage,
        "summary": counts,
        "findings": [finding.to_dict() for finding in findings],
    }
    output.report(payload, functools.partial(_findings_text, findings, counts))
    if status:
        raise click.exceptions.Exit(status)


def _findings_text(findings: list[Finding], counts: dict[str, int], console: Console) -> None:
    width = max(len(finding.check) for finding in findings)
    for finding in findings:
        mark = f"[{_STYLES[finding.status]}]{finding.status.value:<4}[/]"
        console.print(f"{mark}  {finding.check:<{width}}  {finding.message}")
        if finding.fix and finding.status is not Status.OK:
            console.print(f"      {'':<{width}}  [dim]fix:[/] {finding.fix}")
    console.print(f"{counts['ok']} ok, {counts['warn']} warning(s), {counts['fail']} failure(s).")


# ------------------------------------------------------------------------------ bucket-setup


@cli.command("bucket-setup")
@click.option("--apply", "apply_", is_flag=True, help="Make the configuration (idempotent).")
@_reporting
def bucket_setup(*, apply_: bool, json_mode: bool, progress: bool | None) -> None:
    """Show the bucket configuration doctor expects; with --apply, make it.

    Only the parts the bucket lacks are changed; other CORS and lifecycle
    rules are kept. A second --apply changes nothing.
    """
    output = Output(json_mode=json_mode, progress=progress)
    with _errors(output):
        environment = DeploymentSettings.load()
        if environment.storage != "s3":
            raise ConfigurationError(
                "bucket-setup configures an S3 bucket: set HELPPET_STORAGE=s3",
                variable="HELPPET_STORAGE",
            )
        expect = BucketExpectations.from_environment(environment)
        expected = expect.configuration()
        if not apply_:
            output.report(
                {"ok": True, "applied": False, "expected": expected},
                functools.partial(_expected_text, expected),
            )
            return
        from helppet_recordings.storage.s3 import S3Storage  # noqa: PLC0415

        storage = build_storage(environment, s3_options=DOCTOR_S3_OPTIONS)
        assert isinstance(storage, S3Storage)  # noqa: S101 - HELPPET_STORAGE is s3
        client = storage.client
        with output.progress("Configuring the bucket", "parts"):
            probe = probe_bucket(client, expect)
            results = [] if not probe.reachable else apply_configuration(client, expect)
    if not probe.reachable:
        problems = [f for f in probe.findings if f.status is not Status.OK]
        counts = {state.value: sum(f.status is state for f in problems) for state in Status}
        output.report(
            {
                "ok": False,
                "applied": False,
                "expected": expected,
                "findings": [f.to_dict() for f in problems],
            },
            functools.partial(_findings_text, problems, counts),
        )
        raise click.exceptions.Exit(PROBLEMS_FOUND)
    failed = any(result.action == "failed" for result in results)
    changed = any(result.action == "applied" for result in results)
    output.report(
        {
            "ok": not failed,
            "applied": True,
            "changed": changed,
            "expected": expected,
            "changes": [result.to_dict() for result in results],
        },
        functools.partial(_apply_text, results),
    )
    if failed:
        raise click.exceptions.Exit(PROBLEMS_FOUND)


def _expected_text(expected: dict[str, Any], console: Console) -> None:
    import json  # noqa: PLC0415

    console.print(f"Bucket {expected['bucket']} should have:")
    for part in ("encryption", "cors", "lifecycle", "public_access_block"):
        document = expected[part]
        console.print(f"\n{part}:")
        if document is None:
            console.print("  (none: no HELPPET_CORS_ORIGINS configured)")
        else:
            console.print(json.dumps(document, indent=2))
    console.print("\nRun with --apply to make it.")


def _apply_text(results: list[PartResult], console: Console) -> None:
    changed = any(result.action == "applied" for result in results)
    styles = {"unchanged": "green", "applied": "cyan", "failed": "red"}
    for result in results:
        mark = f"[{styles[result.action]}]{result.action:<9}[/]"
        console.print(f"{mark}  {result.part:<13}  {result.message}")
        if result.fix:
            console.print(f"{'':>9}  {'':<13}  [dim]fix:[/] {result.fix}")
    if not changed:
        console.print("Nothing changed: the bucket already had the expected configuration.")
