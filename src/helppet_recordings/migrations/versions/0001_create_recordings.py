"""Create the recordings table: the design's columns plus deadline, idempotency, checksums, purge.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Partial-index predicates, written once for PostgreSQL and SQLite alike; the
# repository's queries repeat them word for word so both planners use the indexes.
_LIVE = sa.text("NOT is_deleted")
_STALE = sa.text("status = 'uploading' AND NOT is_deleted")
_PURGEABLE = sa.text("is_deleted AND purged_at IS NULL")
_KEYED = sa.text("idempotency_key IS NOT NULL")


def upgrade() -> None:
    """Create ``recordings`` with its unique keys and the list, lookup, sweep and purge indexes."""
    op.create_table(
        "recordings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("visit_id", sa.Uuid(), nullable=True),
        sa.Column("appointment_id", sa.Uuid(), nullable=True),
        sa.Column("recorded_by_user_id", sa.Uuid(), nullable=False),
        sa.Column(
            "recording_type",
            sa.String(length=50),
            server_default=sa.text("'visit_audio'"),
            nullable=False,
        ),
        sa.Column(
            "status", sa.String(length=20), server_default=sa.text("'uploading'"), nullable=False
        ),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("original_filename", sa.String(length=255), nullable=True),
        sa.Column("file_size_bytes", sa.Integer(), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("mime_type", sa.String(length=100), nullable=True),
        sa.Column("s3_bucket", sa.String(length=100), nullable=False),
        sa.Column(
            "s3_key",
            sa.String(length=500).with_variant(sa.String(length=500, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("s3_url", sa.String(length=1000), nullable=True),
        sa.Column("transcript_text", sa.Text(), nullable=True),
        sa.Column("transcript_confidence", sa.Float(), nullable=True),
        sa.Column("transcript_language", sa.String(length=10), nullable=True),
        sa.Column("transcription_service", sa.String(length=50), nullable=True),
        sa.Column("processing_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processing_completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processing_error", sa.Text(), nullable=True),
        sa.Column("recording_metadata", sa.String(length=2000), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_by_user_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=True
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=True
        ),
        sa.Column("upload_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("content_md5", sa.String(length=32), nullable=True),
        sa.Column("content_sha256", sa.String(length=64), nullable=True),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="recordings_pkey"),
        sa.UniqueConstraint("s3_key", name="uq_recordings_s3_key"),
    )
    op.create_index(
        "ix_recordings_owner_created",
        "recordings",
        ["recorded_by_user_id", sa.text("created_at DESC"), sa.text("id DESC"), "status"],
        postgresql_where=_LIVE,
        sqlite_where=_LIVE,
    )
    op.create_index("ix_recordings_appointment_id", "recordings", ["appointment_id"])
    op.create_index("ix_recordings_visit_id", "recordings", ["visit_id"])
    op.create_index(
        "ix_recordings_stale_uploads",
        "recordings",
        ["status", "upload_expires_at", "id"],
        postgresql_where=_STALE,
        sqlite_where=_STALE,
    )
    op.create_index(
        "uq_recordings_owner_idempotency_key",
        "recordings",
        ["recorded_by_user_id", "idempotency_key"],
        unique=True,
        postgresql_where=_KEYED,
        sqlite_where=_KEYED,
    )
    op.create_index(
        "ix_recordings_purgeable",
        "recordings",
        ["deleted_at", "id"],
        postgresql_where=_PURGEABLE,
        sqlite_where=_PURGEABLE,
    )


def downgrade() -> None:
    """Drop ``recordings`` and its indexes."""
    op.drop_index("ix_recordings_purgeable", table_name="recordings")
    op.drop_index("uq_recordings_owner_idempotency_key", table_name="recordings")
    op.drop_index("ix_recordings_stale_uploads", table_name="recordings")
    op.drop_index("ix_recordings_visit_id", table_name="recordings")
    op.drop_index("ix_recordings_appointment_id", table_name="recordings")
    op.drop_index("ix_recordings_owner_created", table_name="recordings")
    op.drop_table("recordings")
