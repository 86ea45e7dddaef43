"""The ``recordings`` table as a SQLAlchemy Core ``Table``, definable in any ``MetaData``.

The columns follow the design document's "Recordings Table" (types, server
defaults, nullability) plus ``upload_expires_at``, the upload deadline the
sweeper uses. The package's own Alembic migration (``0001``) creates exactly
this table without foreign keys; a host application that owns ``users``,
``visits`` and ``appointments`` calls :func:`define_recordings_table` on its
own ``MetaData`` with those tables to get the same table *with* foreign keys,
and manages it in its own Alembic history.

Every text column takes its length from :mod:`helppet_recordings.limits`, the
one place the limits of a recording's fields are written down.
"""

from __future__ import annotations

from typing import Any, Final

import sqlalchemy as sa

from helppet_recordings import limits

__all__ = [
    "ALEMBIC_VERSION_TABLE",
    "AUDIT_TABLE_NAME",
    "IDEMPOTENCY_KEY_PREDICATE",
    "LIVE_PREDICATE",
    "PURGEABLE_PREDICATE",
    "RECORDINGS_TABLE_NAME",
    "STALE_UPLOAD_PREDICATE",
    "STORAGE_KEY_TYPE",
    "WORK_QUEUE_PREDICATE",
    "ForeignKeyTarget",
    "audit_entries",
    "define_audit_table",
    "define_recordings_table",
    "metadata",
    "recordings",
]

RECORDINGS_TABLE_NAME: Final = "recordings"
"""The table's name, in the standalone schema and by default when embedded."""

AUDIT_TABLE_NAME: Final = "recording_audit"
"""The audit trail's table name, in the standalone schema and by default when embedded."""

MAX_AUDIT_ACTION_LENGTH: Final = 40

ALEMBIC_VERSION_TABLE: Final = "helppet_recordings_alembic_version"
"""Where the package's migrations record their revision (never the host's ``alembic_version``)."""

LIVE_PREDICATE: Final = "NOT is_deleted"
"""The partial-index predicate of live rows, as SQL that PostgreSQL and SQLite read alike.

Queries use this exact text (not a bound parameter, not a dialect-rendered
expression) so that both planners can prove the partial indexes apply, and so
that Alembic autogenerate renders the same predicate whichever database it
compares against.
"""

STALE_UPLOAD_PREDICATE: Final = "status = 'uploading' AND NOT is_deleted"
"""The partial-index predicate of the sweep index: live recordings still uploading."""

WORK_QUEUE_PREDICATE: Final = "status IN ('uploaded', 'processing') AND NOT is_deleted"
"""Recordings a transcription worker may claim (the work-queue index's predicate)."""

PURGEABLE_PREDICATE: Final = "is_deleted AND purged_at IS NULL"
"""The partial-index predicate of the purge index: soft-deleted rows not yet purged."""

IDEMPOTENCY_KEY_PREDICATE: Final = "idempotency_key IS NOT NULL"
"""The partial-index predicate of the unique (owner, idempotency key) index."""

STORAGE_KEY_TYPE: Final = sa.String(limits.MAX_STORAGE_KEY_LENGTH).with_variant(
    sa.String(limits.MAX_STORAGE_KEY_LENGTH, collation="C"), "postgresql"
)
"""``VARCHAR(500)``; on PostgreSQL with the ``C`` collation, so that comparing and ordering
storage keys is code point order (as in S3 and SQLite) and the unique index serves walks
over every key in order, whatever the database's default collation."""

STATS_COLUMNS: Final = (
    "status",
    "verified_at",
    "file_size_bytes",
    "duration_seconds",
    "audio_duration_seconds",
    "processing_started_at",
    "processing_completed_at",
)
"""What ``stats()`` reads besides ``created_at`` (the PostgreSQL statistics index includes them)."""

ForeignKeyTarget = sa.Table | sa.Column[Any] | str
"""What a foreign key may point at: a table (its one primary key column), a column, or
``"table.column"``."""


def define_recordings_table(
    metadata: sa.MetaData,
    *,
    name: str = RECORDINGS_TABLE_NAME,
    schema: str | None = None,
    users_table: ForeignKeyTarget | None = None,
    visits_table: ForeignKeyTarget | None = None,
    appointments_table: ForeignKeyTarget | None = None,
) -> sa.Table:
    """Define the recordings table in ``metadata`` and return it.

    ``users_table`` adds foreign keys from ``recorded_by_user_id`` and
    ``deleted_by_user_id``; ``visits_table`` and ``appointments_table`` add
    them from ``visit_id`` and ``appointment_id``. Each may be a ``Table``
    (its single primary key column is the target), a ``Column`` or a string
    such as ``"users.id"``. Without them the table has no foreign keys, as
    in the standalone schema.

    Index and constraint names are derived from ``name`` (``ix_<name>_...``,
    ``uq_<name>_s3_key``), so they are stable for Alembic autogenerate.
    """
    users = _foreign_key(users_table, f"fk_{name}_recorded_by_user_id")
    deleted_by = _foreign_key(users_table, f"fk_{name}_deleted_by_user_id")
    visits = _foreign_key(visits_table, f"fk_{name}_visit_id")
    appointments = _foreign_key(appointments_table, f"fk_{name}_appointment_id")

    table = sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("visit_id", sa.Uuid(), *visits, nullable=True),
        sa.Column("appointment_id", sa.Uuid(), *appointments, nullable=True),
        sa.Column("recorded_by_user_id", sa.Uuid(), *users, nullable=False),
        # Recording metadata
        sa.Column(
            "recording_type",
            sa.String(limits.MAX_RECORDING_TYPE_LENGTH),
            nullable=False,
            server_default=sa.text("'visit_audio'"),
        ),
        sa.Column(
            "status",
            sa.String(limits.MAX_STATUS_LENGTH),
            nullable=False,
            server_default=sa.text("'uploading'"),
        ),
        sa.Column("filename", sa.String(limits.MAX_FILENAME_LENGTH), nullable=False),
        sa.Column(
            "original_filename", sa.String(limits.MAX_ORIGINAL_FILENAME_LENGTH), nullable=True
        ),
        sa.Column("file_size_bytes", sa.Integer(), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("mime_type", sa.String(limits.MAX_MIME_TYPE_LENGTH), nullable=True),
        # S3 information
        sa.Column("s3_bucket", sa.String(limits.MAX_BUCKET_LENGTH), nullable=False),
        sa.Column("s3_key", STORAGE_KEY_TYPE, nullable=False),
        sa.Column("s3_url", sa.String(limits.MAX_STORAGE_URL_LENGTH), nullable=True),
        # Transcription results
        sa.Column("transcript_text", sa.Text(), nullable=True),
        sa.Column("transcript_confidence", sa.Float(), nullable=True),
        sa.Column(
            "transcript_language", sa.String(limits.MAX_TRANSCRIPT_LANGUAGE_LENGTH), nullable=True
        ),
        sa.Column(
            "transcription_service",
            sa.String(limits.MAX_TRANSCRIPTION_SERVICE_LENGTH),
            nullable=True,
        ),
        # Processing metadata
        sa.Column("processing_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processing_completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processing_error", sa.Text(), nullable=True),
        # Additional metadata, as compact JSON text
        sa.Column("recording_metadata", sa.String(limits.MAX_METADATA_LENGTH), nullable=True),
        # Soft delete
        sa.Column("is_deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_by_user_id", sa.Uuid(), *deleted_by, nullable=True),
        # Audit fields
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=True, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=True, server_default=sa.func.now()
        ),
        # Beyond the design: the upload deadline, after which the sweeper fails the upload,
        sa.Column("upload_expires_at", sa.DateTime(timezone=True), nullable=True),
        # the client's idempotency key for initiate, the checksums it declared,
        sa.Column("idempotency_key", sa.String(limits.MAX_IDEMPOTENCY_KEY_LENGTH), nullable=True),
        sa.Column("content_md5", sa.String(limits.MAX_CONTENT_MD5_LENGTH), nullable=True),
        sa.Column("content_sha256", sa.String(limits.MAX_CONTENT_SHA256_LENGTH), nullable=True),
        # and when a soft-deleted recording's audio was purged and its row scrubbed.
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
        # Verified audio: the staging key tickets name, when and what storage confirmed,
        sa.Column("upload_key", STORAGE_KEY_TYPE, nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_etag", sa.String(limits.MAX_ETAG_LENGTH), nullable=True),
        sa.Column("checksum_status", sa.String(limits.MAX_CHECKSUM_STATUS_LENGTH), nullable=True),
        # what decoding the file measured,
        sa.Column("audio_format", sa.String(limits.MAX_AUDIO_NAME_LENGTH), nullable=True),
        sa.Column("audio_codec", sa.String(limits.MAX_AUDIO_NAME_LENGTH), nullable=True),
        sa.Column("audio_duration_seconds", sa.Float(), nullable=True),
        sa.Column("audio_sample_rate", sa.Integer(), nullable=True),
        sa.Column("audio_channels", sa.Integer(), nullable=True),
        # and the transcription worker's attempts and current claim.
        sa.Column("processing_attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        # A resumable upload: storage's upload id, the part size and the declared size.
        sa.Column("multipart_upload_id", sa.String(limits.MAX_UPLOAD_ID_LENGTH), nullable=True),
        sa.Column("multipart_part_size", sa.BigInteger(), nullable=True),
        sa.Column("multipart_size_bytes", sa.BigInteger(), nullable=True),
        # The round of processing (one more per reprocess), which names paid transcription jobs.
        sa.Column("processing_cycle", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.UniqueConstraint("s3_key", name=f"uq_{name}_s3_key"),
        sa.UniqueConstraint("upload_key", name=f"uq_{name}_upload_key"),
        schema=schema,
    )
    live = sa.text(LIVE_PREDICATE)
    stale = sa.text(STALE_UPLOAD_PREDICATE)
    # Listing: one owner's live recordings, newest first (ORDER BY created_at DESC, id DESC).
    # The trailing status lets a status filter and its count be checked in the index,
    # without visiting the rows that do not match.
    sa.Index(
        f"ix_{name}_owner_created",
        table.c.recorded_by_user_id,
        table.c.created_at.desc(),
        table.c.id.desc(),
        table.c.status,
        postgresql_where=live,
        sqlite_where=live,
    )
    # Lookups by appointment or visit (and the host's foreign keys).
    sa.Index(f"ix_{name}_appointment_id", table.c.appointment_id)
    sa.Index(f"ix_{name}_visit_id", table.c.visit_id)
    # The sweep: live uploading recordings past their deadline, oldest deadline first.
    sa.Index(
        f"ix_{name}_stale_uploads",
        table.c.status,
        table.c.upload_expires_at,
        table.c.id,
        postgresql_where=stale,
        sqlite_where=stale,
    )
    # One idempotency key per user. Partial: most rows have none, and an index on
    # (recorded_by_user_id, ...) over every row would tempt the planner away from the
    # listing index for a user's rows.
    keyed = sa.text(IDEMPOTENCY_KEY_PREDICATE)
    sa.Index(
        f"uq_{name}_owner_idempotency_key",
        table.c.recorded_by_user_id,
        table.c.idempotency_key,
        unique=True,
        postgresql_where=keyed,
        sqlite_where=keyed,
    )
    # The worker's queue: live recordings waiting in uploaded, or in processing with a claim
    # that may run out, by the time their claim (or retry wait) ends.
    work = sa.text(WORK_QUEUE_PREDICATE)
    sa.Index(
        f"ix_{name}_work_queue",
        table.c.lease_expires_at,
        table.c.id,
        postgresql_where=work,
        sqlite_where=work,
    )
    # The purge: soft-deleted recordings not purged yet, oldest deletion first.
    purgeable = sa.text(PURGEABLE_PREDICATE)
    sa.Index(
        f"ix_{name}_purgeable",
        table.c.deleted_at,
        table.c.id,
        postgresql_where=purgeable,
        sqlite_where=purgeable,
    )
    # Statistics over a window of creation times: on PostgreSQL the index also carries
    # every column stats() reads, so it is an index-only scan instead of the wide heap.
    sa.Index(
        f"ix_{name}_created_at",
        table.c.created_at,
        postgresql_include=list(STATS_COLUMNS),
    )
    return table


def _foreign_key(target: ForeignKeyTarget | None, name: str) -> tuple[sa.ForeignKey, ...]:
    if target is None:
        return ()
    if isinstance(target, sa.Table):
        primary_key = list(target.primary_key.columns)
        if len(primary_key) != 1:
            msg = f"table {target.name!r} must have exactly one primary key column"
            raise ValueError(msg)
        return (sa.ForeignKey(primary_key[0], name=name),)
    return (sa.ForeignKey(target, name=name),)


def define_audit_table(
    metadata: sa.MetaData, *, name: str = AUDIT_TABLE_NAME, schema: str | None = None
) -> sa.Table:
    """Define the audit trail table in ``metadata`` and return it.

    One row per :class:`~helppet_recordings.audit.AuditEntry`; rows are only
    ever inserted. ``seq`` (an auto-incrementing key) orders entries written
    at the same instant. There is deliberately no foreign key to the
    recordings table: the trail must outlive anything done to a recording's
    row. An application that embeds the recordings table defines this one in
    its own metadata too and passes it as ``SqlAlchemyRepository(...,
    audit_table=...)``.
    """
    table = sa.Table(
        name,
        metadata,
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recording_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(MAX_AUDIT_ACTION_LENGTH), nullable=False),
        sa.Column("actor_user_id", sa.Uuid(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        # Codes and counts as compact JSON (see helppet_recordings.audit): never free text.
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.UniqueConstraint("id", name=f"uq_{name}_id"),
        schema=schema,
    )
    # A recording's trail, oldest first.
    sa.Index(f"ix_{name}_recording", table.c.recording_id, table.c.at, table.c.seq)
    return table


metadata: Final = sa.MetaData()
"""The standalone schema's metadata: the recordings table without foreign keys, the audit trail."""

recordings: Final = define_recordings_table(metadata)
"""The standalone recordings table (what migration ``0001`` creates)."""

audit_entries: Final = define_audit_table(metadata)
"""The standalone audit trail table (what migration ``0003`` creates)."""
