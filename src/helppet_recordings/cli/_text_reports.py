"""The text reports of the commands (rich), apart from the commands that gather them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from rich.markup import escape

from helppet_recordings.cli.bucket import PartResult
from helppet_recordings.cli.findings import Finding, Status
from helppet_recordings.service.reconciliation import DEFAULT_ORPHAN_MIN_AGE_SECONDS

if TYPE_CHECKING:
    from rich.console import Console

    from helppet_recordings.models import ReconcileReport
    from helppet_recordings.stats import DistributionStats, RecordingStats

LISTED_KEYS: Final = 20
STYLES: Final = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "red"}
DISTRIBUTION_LABELS: Final = (
    ("file_size_bytes", "file size (bytes)"),
    ("duration_seconds", "duration, declared (s)"),
    ("audio_duration_seconds", "duration, measured (s)"),
    ("processing_seconds", "processing (s)"),
)


def reconcile_payload(report: ReconcileReport) -> dict[str, Any]:
    """Return the reconcile report as ``--json`` prints it; ``ok`` is false when work is left.

    Work is left while a recording has lost or replaced audio, or orphans,
    leftover staging objects or abandoned multipart uploads were not removed.
    """
    left = (
        len(report.orphan_keys)
        - report.deleted_orphans
        + len(report.leftover_staging_keys)
        - report.deleted_staging
        + len(report.unfinished_uploads)
        - report.aborted_uploads
    )
    return {
        "ok": not report.missing_objects and not report.changed_objects and left == 0,
        "dry_run": report.dry_run,
        "scanned_objects": report.scanned_objects,
        "scanned_recordings": report.scanned_recordings,
        "orphan_keys": report.orphan_keys,
        "missing_objects": [str(rid) for rid in report.missing_objects],
        "changed_objects": [str(rid) for rid in report.changed_objects],
        "deleted_orphans": report.deleted_orphans,
        "leftover_staging_keys": report.leftover_staging_keys,
        "deleted_staging": report.deleted_staging,
        "unfinished_uploads": report.unfinished_uploads,
        "aborted_uploads": report.aborted_uploads,
    }


def reconcile_text(report: ReconcileReport, console: Console, *, orphan_min_age: int) -> None:
    """Print the reconcile report: what was scanned, orphans, recordings that lost their audio.

    ``orphan_min_age``: the seconds an orphan must be old for ``--delete-orphans`` to delete it.
    """
    console.print(
        f"Scanned {report.scanned_objects} object(s) and {report.scanned_recordings} "
        f"recording(s){' (dry run)' if report.dry_run else ''}."
    )
    if report.orphan_keys:
        console.print(
            f"{len(report.orphan_keys)} orphan object(s), {report.deleted_orphans} deleted:"
        )
        for key in report.orphan_keys[:LISTED_KEYS]:
            console.print(f"  {key}", markup=False, highlight=False)  # keys as they are
        if len(report.orphan_keys) > LISTED_KEYS:
            console.print(f"  ... and {len(report.orphan_keys) - LISTED_KEYS} more (--json)")
        if report.dry_run:
            age = (
                "an hour"
                if orphan_min_age == DEFAULT_ORPHAN_MIN_AGE_SECONDS
                else f"{orphan_min_age} second(s)"
            )
            console.print(f"Run with --delete-orphans to delete those older than {age}.")
    _listed(
        console,
        [str(rid) for rid in report.missing_objects],
        "[red]recording(s) lost their audio[/] (restore from a backup or a previous version):",
    )
    _listed(
        console,
        [str(rid) for rid in report.changed_objects],
        "[red]recording(s) whose audio was replaced[/] after it was verified "
        "(restore the verified version from a backup or a previous object version):",
    )
    _listed(
        console,
        report.leftover_staging_keys,
        f"leftover staging object(s) (replayed or refused uploads), {report.deleted_staging} "
        "deleted:",
    )
    _listed(
        console,
        report.unfinished_uploads,
        f"abandoned multipart upload(s), {report.aborted_uploads} aborted:",
    )
    if not (
        report.orphan_keys
        or report.missing_objects
        or report.changed_objects
        or report.leftover_staging_keys
        or report.unfinished_uploads
    ):
        console.print("Storage and database agree.")


def _listed(console: Console, keys: list[str], what: str) -> None:
    if not keys:
        return
    console.print(f"{len(keys)} {what}")
    for key in keys[:LISTED_KEYS]:
        console.print(f"  {key}", markup=False, highlight=False)  # keys as they are
    if len(keys) > LISTED_KEYS:
        console.print(f"  ... and {len(keys) - LISTED_KEYS} more (--json)")


def stats_text(computed: RecordingStats, console: Console) -> None:
    """Print the statistics: counts by status, upload success rate, a table of spreads."""
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
    for field, label in DISTRIBUTION_LABELS:
        spread: DistributionStats = getattr(computed, field)
        figures = (spread.min, spread.p50, spread.p90, spread.p99, spread.max, spread.mean)
        table.add_row(label, f"{spread.count:,}", *(figure(value) for value in figures))
    console.print(table)


def figure(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.2f}"


def findings_text(findings: list[Finding], counts: dict[str, int], console: Console) -> None:
    """Print doctor's findings, one line each with its fix, and the counts.

    Messages and fixes are printed as they are: a path, key or URL in them is
    never read as rich markup.
    """
    width = max(len(finding.check) for finding in findings)
    for finding in findings:
        mark = f"[{STYLES[finding.status]}]{finding.status.value:<4}[/]"
        console.print(f"{mark}  {finding.check:<{width}}  {escape(finding.message)}")
        if finding.fix and finding.status is not Status.OK:
            console.print(f"      {'':<{width}}  [dim]fix:[/] {escape(finding.fix)}")
    console.print(f"{counts['ok']} ok, {counts['warn']} warning(s), {counts['fail']} failure(s).")


def expected_text(expected: dict[str, Any], console: Console) -> None:
    """Print the bucket configuration doctor expects, part by part."""
    import json  # noqa: PLC0415

    console.print(f"Bucket {expected['bucket']} should have:")
    for part in ("encryption", "cors", "lifecycle", "public_access_block"):
        document = expected[part]
        console.print(f"\n{part}:")
        if document is None:
            console.print("  (none: no HELPPET_CORS_ORIGINS configured)")
        else:
            console.print(json.dumps(document, indent=2), markup=False, highlight=False)
    console.print("\nRun with --apply to make it.")


def apply_text(results: list[PartResult], console: Console) -> None:
    """Print what ``bucket-setup --apply`` did to each part (messages as they are)."""
    changed = any(result.action == "applied" for result in results)
    styles = {"unchanged": "green", "applied": "cyan", "failed": "red"}
    for result in results:
        mark = f"[{styles[result.action]}]{result.action:<9}[/]"
        console.print(f"{mark}  {result.part:<13}  {escape(result.message)}")
        if result.fix:
            console.print(f"{'':>9}  {'':<13}  [dim]fix:[/] {escape(result.fix)}")
    if not changed:
        console.print("Nothing changed: the bucket already had the expected configuration.")
