"""The audit trail: one append-only row per audited action on a recording.

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


def upgrade() -> None:
    """Create ``recording_audit`` and the index that reads one recording's trail in order."""
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


def downgrade() -> None:
    """Drop the audit trail (its entries are lost: export them first)."""
    op.drop_index("ix_recording_audit_recording", table_name="recording_audit")
    op.drop_table("recording_audit")
