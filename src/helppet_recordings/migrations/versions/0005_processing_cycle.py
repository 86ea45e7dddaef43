"""The round of processing a recording is in, which names paid transcription jobs.

Also restores, on SQLite, the descending order of the listing index, which the
table rebuild of 0002 lost (the rebuild copies each index's columns, not their
order).

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


_OWNER_INDEX = "ix_recordings_owner_created"
_LIVE = sa.text("NOT is_deleted")


def upgrade() -> None:
    """Add ``processing_cycle`` (every existing recording is in its first round: 1)."""
    with op.batch_alter_table("recordings") as batch:
        batch.add_column(
            sa.Column("processing_cycle", sa.Integer(), server_default=sa.text("1"), nullable=False)
        )
    if op.get_context().dialect.name == "sqlite":
        op.drop_index(_OWNER_INDEX, table_name="recordings")
        op.create_index(
            _OWNER_INDEX,
            "recordings",
            ["recorded_by_user_id", sa.text("created_at DESC"), sa.text("id DESC"), "status"],
            sqlite_where=_LIVE,
        )


def downgrade() -> None:
    """Drop the column again."""
    with op.batch_alter_table("recordings") as batch:
        batch.drop_column("processing_cycle")
