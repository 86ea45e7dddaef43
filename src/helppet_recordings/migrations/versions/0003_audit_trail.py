"""The audit trail (one append-only row per audited action) and the statistics index.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_STATS_COLUMNS = [
    "status",
    "verified_at",
    "file_size_bytes",
    "duration_seconds",
    "audio_duration_seconds",
    "processing_started_at",
    "processing_completed_at",
]


def upgrade() -> None:
    """Create ``recording_audit`` with its trail index, and the statistics index.

    The statistics index orders recordings by creation time and, on
    PostgreSQL, carries every column ``stats()`` reads, so a window of
    recordings is an index-only range scan.
    """
    op.create_table(
        "recording_audit",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recording_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("actor_user_id", sa.Uuid(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.UniqueConstraint("id", name="uq_recording_audit_id"),
    )
    op.create_index(
        "ix_recording_audit_recording", "recording_audit", ["recording_id", "at", "seq"]
    )
    op.create_index(
        "ix_recordings_created_at",
        "recordings",
        ["created_at"],
        postgresql_include=_STATS_COLUMNS,
    )


def downgrade() -> None:
    """Drop the statistics index and the audit trail (its entries are lost: export them first)."""
    op.drop_index("ix_recordings_created_at", table_name="recordings")
    op.drop_index("ix_recording_audit_recording", table_name="recording_audit")
    op.drop_table("recording_audit")
