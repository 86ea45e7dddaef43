"""The commands of ``helppet-recordings`` (click), over the deployment's environment."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from helppet_recordings.errors import MissingDependencyError
from helppet_recordings.settings import MAX_RETENTION_DAYS

try:
    import click
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("click", "cli") from exc

from helppet_recordings.cli._database import shown_url
from helppet_recordings.cli._output import Output
from helppet_recordings.cli._params import ISO_TIME
from helppet_recordings.cli._running import (
    PROBLEMS_FOUND,
    CommandGroup,
    deployment_backends,
    deployment_repository,
    deployment_transcriber,
    job,
    reported_errors,
    reporting,
)
from helppet_recordings.cli._text_reports import (
    apply_text,
    expected_text,
    findings_text,
    reconcile_payload,
    reconcile_text,
    stats_text,
)
from helppet_recordings.cli.bucket import BucketExpectations, apply_configuration
from helppet_recordings.cli.doctor import DOCTOR_S3_OPTIONS, probe_bucket, run_doctor
from helppet_recordings.cli.findings import Status, exit_status
from helppet_recordings.cli.upload import upload
from helppet_recordings.environment import (
    ConfigurationError,
    DeploymentSettings,
    build_repository,
    build_storage,
)
from helppet_recordings.service.inputs import MAX_WAIT_SECONDS
from helppet_recordings.service.reconciliation import (
    DEFAULT_ORPHAN_MIN_AGE_SECONDS,
    MAX_ORPHAN_MIN_AGE_SECONDS,
)
from helppet_recordings.stats import RecordingStats

if TYPE_CHECKING:
    import datetime as dt

    from rich.console import Console

__all__ = ["cli"]


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="helppet-recordings", prog_name="helppet-recordings")
def cli() -> None:
    """Operate a helppet-recordings deployment.

    Configured from the environment, like the example app: DATABASE_URL,
    HELPPET_STORAGE (local or s3), S3_BUCKET_NAME, AWS_REGION, ... Exit status:
    0 all is well, 1 problems found, 2 usage or configuration error.
    """


# ------------------------------------------------------------------------------ migrate


@cli.command()
@reporting()
def migrate(*, json_mode: bool, progress: bool | None) -> None:
    """Bring the database to the current schema (the package's Alembic migrations).

    The revisions it reports are read under the migration's lock: of several
    runs at once, only the one that migrated says it changed the schema.
    """
    output = Output(json_mode=json_mode, progress=progress)
    with reported_errors(output):
        environment = DeploymentSettings.load()
        repository = build_repository(environment)
        try:
            with output.progress("Migrating", "steps"):
                upgrade = repository.create_schema()
        finally:
            repository.close()
    database = shown_url(repository.engine.url)
    before, after = list(upgrade.before), list(upgrade.after)
    payload = {
        "ok": True,
        "database": database,
        "from": before,
        "to": after,
        "changed": upgrade.changed,
    }

    def text(console: Console) -> None:
        if not upgrade.changed:
            console.print(
                f"{database} is already at the head revision ({', '.join(after)}).",
                markup=False,  # the URL as it is
                highlight=False,
            )
        else:
            was = ", ".join(before) or "no schema"
            console.print(
                f"Migrated {database}: {was} -> {', '.join(after)}.", markup=False, highlight=False
            )

    output.report(payload, text)


# ------------------------------------------------------------------------------ jobs


@cli.command()
@reporting()
def sweep(*, json_mode: bool, progress: bool | None) -> None:
    """Settle uploads whose deadline passed, abort abandoned multipart uploads; run often."""
    output = Output(json_mode=json_mode, progress=progress)
    with job(output, "Sweeping stale uploads", "checked") as service:
        # Settle first: an upload whose recording it failed and could not abort right away is
        # then caught by the one listing of abandoned uploads.
        failed = service.expire_stale_uploads(abort_abandoned=False)
        aborted = service.abort_abandoned_uploads()
    output.report(
        {"ok": True, "failed": failed, "aborted_uploads": aborted},
        lambda console: console.print(
            f"Sweep done: {failed} stale upload(s) marked failed, "
            f"{aborted} abandoned multipart upload(s) aborted."
        ),
    )


@cli.command()
@click.option(
    "--delete-orphans",
    is_flag=True,
    help="Delete objects no recording owns (older than --orphan-min-age); default: only report.",
)
@click.option(
    "--orphan-min-age",
    "orphan_min_age",
    type=click.IntRange(min=0, max=MAX_ORPHAN_MIN_AGE_SECONDS),
    default=DEFAULT_ORPHAN_MIN_AGE_SECONDS,
    show_default=True,
    metavar="SECONDS",
    help="How long ago an orphan must have been last modified to be deleted.",
)
@reporting()
def reconcile(
    *, delete_orphans: bool, orphan_min_age: int, json_mode: bool, progress: bool | None
) -> None:
    """Compare storage with the database: orphans, leftovers, lost or replaced audio, uploads.

    Exits 1 when it finds a recording without its object or with another one,
    or orphan objects, leftover staging objects or abandoned multipart uploads
    it did not remove.
    """
    output = Output(json_mode=json_mode, progress=progress)
    with job(output, "Reconciling storage and database", "objects") as service:
        report = service.reconcile(
            delete_orphans=delete_orphans, orphan_min_age_seconds=orphan_min_age
        )
    payload = reconcile_payload(report)
    output.report(payload, functools.partial(reconcile_text, report, orphan_min_age=orphan_min_age))
    if not payload["ok"]:
        raise click.exceptions.Exit(PROBLEMS_FOUND)


@cli.command()
@click.option(
    "--retention-days",
    type=click.IntRange(min=0, max=MAX_RETENTION_DAYS),
    default=None,
    help="Days a deleted recording keeps its audio (default: HELPPET_DELETED_RETENTION_DAYS).",
)
@reporting()
def purge(*, retention_days: int | None, json_mode: bool, progress: bool | None) -> None:
    """Remove the audio of recordings deleted longer ago than the retention (purge_deleted)."""
    output = Output(json_mode=json_mode, progress=progress)
    with job(output, "Purging deleted recordings", "purged") as service:
        purged = service.purge_deleted(retention_days=retention_days)
    output.report(
        {"ok": True, "purged": purged},
        lambda console: console.print(f"Purge done: {purged} deleted recording(s) purged."),
    )


# ------------------------------------------------------------------------------ stats


@cli.command()
@click.option("--since", type=ISO_TIME, help="Recordings created at or after (ISO 8601; UTC).")
@click.option("--until", type=ISO_TIME, help="Recordings created before (ISO 8601; UTC).")
@reporting()
def stats(
    *,
    since: dt.datetime | None,
    until: dt.datetime | None,
    json_mode: bool,
    progress: bool | None,
) -> None:
    """Statistics: counts by status, upload success rate, sizes, durations, processing times.

    Computed in the database over the recordings created in the window
    (default: all of them), deleted ones included. Only the database is
    used: storage is neither configured nor touched.
    """
    if since is not None and until is not None and since >= until:
        raise click.UsageError("--until must be later than --since")
    output = Output(json_mode=json_mode, progress=progress)
    with (
        reported_errors(output),
        deployment_repository() as repository,
        output.progress("Computing statistics", "queries"),
    ):
        # What RecordingService.stats computes; ISO_TIME has made both times aware.
        computed = RecordingStats.from_repository(
            repository.stats(since=since, until=until), since=since, until=until
        )
    output.report(
        {"ok": True, **computed.model_dump(mode="json")},
        functools.partial(stats_text, computed),
    )


# ------------------------------------------------------------------------------ doctor


@cli.command()
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@reporting()
def doctor(*, strict: bool, json_mode: bool, progress: bool | None) -> None:
    """Check the deployment (database, storage, bucket configuration) and say what to fix."""
    output = Output(json_mode=json_mode, progress=progress)
    with reported_errors(output):
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
    output.report(payload, functools.partial(findings_text, findings, counts))
    if status:
        raise click.exceptions.Exit(status)


# ------------------------------------------------------------------------------ bucket-setup


@cli.command("bucket-setup")
@click.option("--apply", "apply_", is_flag=True, help="Make the configuration (idempotent).")
@reporting()
def bucket_setup(*, apply_: bool, json_mode: bool, progress: bool | None) -> None:
    """Show the bucket configuration doctor expects; with --apply, make it.

    Only the parts the bucket lacks are changed; other CORS and lifecycle
    rules are kept. A second --apply changes nothing.
    """
    output = Output(json_mode=json_mode, progress=progress)
    with reported_errors(output):
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
                functools.partial(expected_text, expected),
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
            functools.partial(findings_text, problems, counts),
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
        functools.partial(apply_text, results),
    )
    if failed:
        raise click.exceptions.Exit(PROBLEMS_FOUND)


# ------------------------------------------------------------------------------ worker


@cli.command()
@click.option(
    "--transcriber",
    type=click.Choice(["local", "openai", "aws"]),
    default="local",
    show_default=True,
    help="Which transcriber the worker uses (openai and aws need their extras).",
)
@click.option("--once", is_flag=True, help="Settle what is waiting now, then exit.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=3, show_default=True)
@click.option(
    "--lease-seconds",
    type=click.IntRange(min=1, max=MAX_WAIT_SECONDS),
    default=900,
    show_default=True,
)
@reporting()
def worker(
    *,
    transcriber: str,
    once: bool,
    max_attempts: int,
    lease_seconds: int,
    json_mode: bool,
    progress: bool | None,
) -> None:
    """Transcribe uploaded recordings (a TranscriptionWorker); SIGTERM stops it after a job."""
    output = Output(json_mode=json_mode, progress=progress)
    with reported_errors(output), deployment_backends() as backends:
        from helppet_recordings.transcription import TranscriptionWorker  # noqa: PLC0415

        running = TranscriptionWorker(
            backends.service,
            deployment_transcriber(transcriber, backends.service.settings),
            max_attempts=max_attempts,
            lease_seconds=lease_seconds,
        )
        if once:
            with output.progress("Transcribing", "recordings"):
                taken = running.run_once()
        else:
            running.install_signal_handlers()
            running.run()
            taken = None
    output.report(
        {"ok": True, "taken": taken, "transcriber": transcriber},
        lambda console: console.print(
            "Worker stopped." if taken is None else f"Worker done: {taken} recording(s) taken."
        ),
    )


# ------------------------------------------------------------------------------ upload

cli.add_command(upload)
