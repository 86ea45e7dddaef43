"""Resumable uploads: the multipart upload id, part size and declared size of a recording.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the three nullable columns (existing recordings are POST uploads: all null)."""
    with op.batch_alter_table("recordings") as batch:
        batch.add_column(sa.Column("multipart_upload_id", sa.String(length=1024), nullable=True))
        batch.add_column(sa.Column("multipart_part_size", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("multipart_size_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Drop the columns again."""
    with op.batch_alter_table("recordings") as batch:
        batch.drop_column("multipart_size_bytes")
        batch.drop_column("multipart_part_size")
        batch.drop_column("multipart_upload_id")
