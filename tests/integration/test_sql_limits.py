"""The table's column lengths are the limits in helppet_recordings.limits, and nothing else."""

from __future__ import annotations

import attrs
import sqlalchemy as sa

from helppet_recordings import limits, policy
from helppet_recordings.models import Recording
from helppet_recordings.repositories.sqlalchemy import recordings


def test_every_text_column_is_sized_from_the_limits() -> None:
    """Each VARCHAR column's length is its field's limit; each limit names a field with a column."""
    sized = {
        column.name: column.type.length
        for column in recordings.columns
        if isinstance(column.type, sa.String) and not isinstance(column.type, sa.Text)
    }
    assert sized == {name: limits.FIELD_LENGTHS[name] for name in sized}
    assert sized["s3_key"] == limits.MAX_STORAGE_KEY_LENGTH  # the collated variant too
    unsized = set(limits.FIELD_LENGTHS) - set(sized)
    assert unsized == {"processing_error"}  # TEXT: the cap is the package's, not the column's
    assert isinstance(recordings.c.processing_error.type, sa.Text)
    assert set(limits.FIELD_LENGTHS) <= {field.name for field in attrs.fields(Recording)}


def test_the_upload_policy_agrees_with_the_limits() -> None:
    """Validation accepts nothing longer than its column holds."""
    assert policy.MAX_FILENAME_LENGTH == limits.MAX_FILENAME_LENGTH
    assert policy.MAX_METADATA_LENGTH == limits.MAX_METADATA_LENGTH
    assert policy.MAX_CONTENT_TYPE_LENGTH == limits.MAX_MIME_TYPE_LENGTH
