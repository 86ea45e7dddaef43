"""Settings read from the environment (names from the design document)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, Final

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from helppet_recordings.keys import normalize_prefix

__all__ = [
    "MAX_RETENTION_DAYS",
    "MAX_SUPPORTED_FILE_SIZE",
    "DocumentedVariables",
    "RecordingSettings",
    "environment_values",
]

MAX_RETENTION_DAYS: Final = 36_500
"""The longest soft-deleted audio may be kept before a purge (a hundred years)."""

MAX_SUPPORTED_FILE_SIZE: Final = 2**31 - 1
"""Largest ``max_file_size`` supported: ``file_size_bytes`` is an INTEGER column."""

_SEVEN_DAYS: Final = 7 * 24 * 60 * 60  # the longest a SigV4 presigned URL may live


def environment_values(environ: Mapping[str, str]) -> dict[str, str]:
    """Return ``environ`` as the package reads every variable: the one rule for all settings.

    Names are upper-cased; surrounding whitespace (a trailing newline from a
    secret file, a space from a copied value) is removed from each value; a
    variable that is empty or only whitespace is left out, so it counts as
    unset and the default applies.
    """
    values: dict[str, str] = {}
    for name, value in environ.items():
        if stripped := value.strip():
            values[name.upper()] = stripped
    return values


class DocumentedVariables(EnvSettingsSource):
    """The environment (default: the process's), read by each field's documented variable only.

    Values are read by :func:`environment_values`' rule. With
    ``populate_by_name`` (keyword arguments may name the field),
    pydantic-settings also reads a variable named after the field itself,
    after the documented one: ``MAX_FILE_SIZE`` or ``DELETED_RETENTION_DAYS``
    would stand in for an unset ``HELPPET_*`` variable. A value found only
    under the field's own name is ignored here.
    """

    def __init__(
        self, settings_cls: type[BaseSettings], environ: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(settings_cls, case_sensitive=False)
        values = environment_values(os.environ if environ is None else environ)
        self.env_vars = {name.lower(): value for name, value in values.items()}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Return the field's value from its documented variable, or None."""
        value, key, is_complex = super().get_field_value(field, field_name)
        if key == field_name:  # the documented variables are tried first, under their names
            return None, field_name, False
        return value, key, is_complex


class RecordingSettings(BaseSettings):
    """Configuration of a :class:`~helppet_recordings.RecordingService`.

    Values come from keyword arguments, then the environment, then the defaults.
    A variable's surrounding whitespace is removed, and a variable that is
    empty or only whitespace counts as unset (:func:`environment_values`):

    ===============================  ================================  ============================
    field                            environment variable              default
    ===============================  ================================  ============================
    ``aws_region``                   ``AWS_REGION``                    ``us-east-1``
    ``s3_bucket_name``               ``S3_BUCKET_NAME``                ``helppet-audio-recordings``
    ``s3_recordings_prefix``         ``S3_RECORDINGS_PREFIX``          ``recordings/``
    ``s3_presigned_url_expiration``  ``S3_PRESIGNED_URL_EXPIRATION``   ``3600``
    ``max_file_size``                ``HELPPET_MAX_FILE_SIZE``         ``104857600`` (100 MiB)
    ``upload_grace_seconds``         ``HELPPET_UPLOAD_GRACE_SECONDS``  ``900``
    ``deleted_retention_days``       ``HELPPET_DELETED_RETENTION_DAYS``  ``30``
    ``list_max_limit``               ``HELPPET_LIST_MAX_LIMIT``        ``200``
    ===============================  ================================  ============================
    """

    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, case_sensitive=False
    )

    aws_region: Annotated[str, Field(min_length=1, validation_alias="AWS_REGION")] = "us-east-1"
    s3_bucket_name: Annotated[
        str,
        Field(
            min_length=3,
            max_length=63,
            pattern=r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$",
            validation_alias="S3_BUCKET_NAME",
        ),
    ] = "helppet-audio-recordings"
    s3_recordings_prefix: Annotated[str, Field(validation_alias="S3_RECORDINGS_PREFIX")] = (
        "recordings/"
    )
    s3_presigned_url_expiration: Annotated[
        int,
        Field(
            ge=1,
            le=_SEVEN_DAYS,
            validation_alias="S3_PRESIGNED_URL_EXPIRATION",
        ),
    ] = 3600
    max_file_size: Annotated[
        int,
        Field(
            ge=1,
            le=MAX_SUPPORTED_FILE_SIZE,
            validation_alias="HELPPET_MAX_FILE_SIZE",
        ),
    ] = 104_857_600
    upload_grace_seconds: Annotated[
        int,
        Field(
            ge=0,
            le=_SEVEN_DAYS,
            validation_alias="HELPPET_UPLOAD_GRACE_SECONDS",
            description=(
                "How long after an upload URL expires a recording may still be completed "
                "before the sweeper declares it failed; covers uploads still in flight."
            ),
        ),
    ] = 900
    deleted_retention_days: Annotated[
        int,
        Field(
            ge=0,
            le=MAX_RETENTION_DAYS,
            validation_alias="HELPPET_DELETED_RETENTION_DAYS",
            description=(
                "How long soft-deleted recordings keep their audio before a purge may remove it."
            ),
        ),
    ] = 30
    list_max_limit: Annotated[
        int,
        Field(ge=1, le=10_000, validation_alias="HELPPET_LIST_MAX_LIMIT"),
    ] = 200

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read keyword arguments, then the documented variables, then a subclass's files.

        The ``env_file`` or ``secrets_dir`` a subclass configures is read as
        pydantic-settings reads it (the environment wins over both).
        """
        return (
            init_settings,
            DocumentedVariables(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

    @field_validator("s3_recordings_prefix")
    @classmethod
    def _safe_prefix(cls, value: str) -> str:
        try:
            return normalize_prefix(value)
        except ValueError:
            msg = (  # not normalize_prefix's message: it quotes the value
                "must be segments of letters, digits, '.', '_' and '-' that start with a "
                "letter or digit, separated by '/' (e.g. recordings/), never '..'"
            )
            raise ValueError(msg) from None

    @property
    def s3_staging_prefix(self) -> str:
        """Where upload tickets put bytes until completion moves them (``<prefix>staging/``).

        An S3 lifecycle rule on this prefix expires what a replayed ticket
        leaves behind (``helppet-recordings bucket-setup``).
        """
        return f"{self.s3_recordings_prefix}staging/"
