"""Verified audio and the transcription worker: staging key, verification, audio facts, claims.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WORK_QUEUE = sa.text("status IN ('uploaded', 'processing') AND NOT is_deleted")
_KEY = sa.String(length=500).with_variant(sa.String(length=500, collation="C"), "postgresql")


def upgrade() -> None:
    """Add the columns, the staging key's unique constraint and the work-queue index.

    Recordings verified before this revision get ``verified_at`` from their
    last update, so they stay downloadable and reconcilable, and uploaded ones
    become claimable by the transcription worker.
    """
    with op.batch_alter_table("recordings") as batch:
        batch.add_column(sa.Column("upload_key", _KEY, nullable=True))
        batch.add_column(sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("verified_etag", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("checksum_status", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("audio_format", sa.String(length=50), nullable=True))
        batch.add_column(sa.Column("audio_codec", sa.String(length=50), nullable=True))
        batch.add_column(sa.Column("audio_duration_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("audio_sample_rate", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("audio_channels", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column(
                "processing_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False
            )
        )
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_unique_constraint("uq_recordings_upload_key", ["upload_key"])
    op.create_index(
        "ix_recordings_work_queue",
        "recordings",
        ["lease_expires_at", "id"],
        postgresql_where=_WORK_QUEUE,
        sqlite_where=_WORK_QUEUE,
    )
    op.execute(
        "UPDATE recordings SET verified_at = updated_at "
        "WHERE status <> 'uploading' AND file_size_bytes IS NOT NULL"
    )
    # Uploaded recordings are waiting for a worker from now on.
    op.execute("UPDATE recordings SET lease_expires_at = updated_at WHERE status = 'uploaded'")


def downgrade() -> None:
    """Drop what ``upgrade`` added."""
    op.drop_index("ix_recordings_work_queue", table_name="recordings")
    with op.batch_alter_table("recordings") as batch:
        batch.drop_constraint("uq_recordings_upload_key", type_="unique")
        for column in (
            "lease_expires_at",
            "processing_attempts",
            "audio_channels",
            "audio_sample_rate",
            "audio_duration_seconds",
            "audio_codec",
            "audio_format",
            "checksum_status",
            "verified_etag",
            "verified_at",
            "upload_key",
        ):
            batch.drop_column(column)
