"""The round of processing a recording is in, which names paid transcription jobs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``processing_cycle`` (every existing recording is in its first round: 1)."""
    with op.batch_alter_table("recordings") as batch:
        batch.add_column(
            sa.Column("processing_cycle", sa.Integer(), server_default=sa.text("1"), nullable=False)
        )


def downgrade() -> None:
    """Drop the column again."""
    with op.batch_alter_table("recordings") as batch:
        batch.drop_column("processing_cycle")
