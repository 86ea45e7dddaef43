"""Settings from the environment, the error tree and the public import surface."""

from __future__ import annotations

import pathlib

import pydantic
import pydantic_settings
import pytest

import helppet_recordings
from helppet_recordings import RecordingError, RecordingSettings, errors
from helppet_recordings.environment import DeploymentSettings


def test_defaults_match_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    """With an empty environment the contract's defaults apply."""
    for name in (
        "AWS_REGION",
        "S3_BUCKET_NAME",
        "S3_RECORDINGS_PREFIX",
        "S3_PRESIGNED_URL_EXPIRATION",
        "HELPPET_MAX_FILE_SIZE",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = RecordingSettings()
    assert settings.aws_region == "us-east-1"
    assert settings.s3_bucket_name == "helppet-audio-recordings"
    assert settings.s3_recordings_prefix == "recordings/"
    assert settings.s3_presigned_url_expiration == 3600
    assert settings.max_file_size == 104_857_600


def test_environment_is_read_and_keywords_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each contract variable is read; keyword arguments win over the environment."""
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    monkeypatch.setenv("S3_BUCKET_NAME", "clinic-audio")
    monkeypatch.setenv("S3_RECORDINGS_PREFIX", "audio/visits")
    monkeypatch.setenv("S3_PRESIGNED_URL_EXPIRATION", "900")
    monkeypatch.setenv("HELPPET_MAX_FILE_SIZE", "5000000")
    settings = RecordingSettings()
    assert (settings.aws_region, settings.s3_bucket_name) == ("eu-central-1", "clinic-audio")
    assert settings.s3_recordings_prefix == "audio/visits/"
    assert (settings.s3_presigned_url_expiration, settings.max_file_size) == (900, 5_000_000)
    override = RecordingSettings(s3_bucket_name="other-bucket", max_file_size=10)
    assert (override.s3_bucket_name, override.max_file_size) == ("other-bucket", 10)


def test_only_the_documented_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable named after a field (MAX_FILE_SIZE, not HELPPET_MAX_FILE_SIZE) is not read."""
    for name in (
        "HELPPET_MAX_FILE_SIZE",
        "HELPPET_DELETED_RETENTION_DAYS",
        "HELPPET_UPLOAD_GRACE_SECONDS",
        "HELPPET_STORAGE",
        "HELPPET_JWT_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MAX_FILE_SIZE", "5")
    monkeypatch.setenv("DELETED_RETENTION_DAYS", "0")
    monkeypatch.setenv("UPLOAD_GRACE_SECONDS", "1")
    monkeypatch.setenv("JWT_SECRET", "short")
    monkeypatch.setenv("STORAGE", "s3")
    settings = RecordingSettings()
    assert (settings.max_file_size, settings.deleted_retention_days) == (104_857_600, 30)
    assert settings.upload_grace_seconds == 900
    deployment = DeploymentSettings()
    assert (deployment.jwt_secret, deployment.storage) == (None, "local")
    assert deployment.recording.deleted_retention_days == 30
    monkeypatch.setenv("HELPPET_DELETED_RETENTION_DAYS", "7")
    assert RecordingSettings().deleted_retention_days == 7
    assert RecordingSettings(deleted_retention_days=3).deleted_retention_days == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"s3_presigned_url_expiration": 0},
        {"s3_presigned_url_expiration": 604_801},
        {"max_file_size": 0},
        {"max_file_size": 2**31},
        {"s3_bucket_name": "Bad_Bucket"},
        {"s3_recordings_prefix": "../escape"},
        {"no_such_setting": 1},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object]) -> None:
    """Settings outside what S3 and the schema allow fail at construction."""
    with pytest.raises(pydantic.ValidationError):
        RecordingSettings(**kwargs)  # type: ignore[arg-type]


def test_every_error_has_a_code_status_and_wire_shape() -> None:
    """Each RecordingError subclass has a distinct code, an HTTP status and to_dict()."""
    classes = [
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, RecordingError) and "error_code" in vars(cls)
    ]
    codes = [cls.error_code for cls in classes]
    assert len(codes) == len(set(codes))
    contract = {
        "VALIDATION_ERROR": 422,
        "UNSUPPORTED_CONTENT_TYPE": 415,
        "FILE_TOO_LARGE": 413,
        "RECORDING_NOT_FOUND": 404,
        "PERMISSION_DENIED": 403,
        "INVALID_STATUS_TRANSITION": 409,
        "UPLOAD_NOT_FOUND": 409,
        "UPLOAD_SIZE_MISMATCH": 409,
        "UPLOAD_TIMEOUT": 410,
        "STORAGE_UNAVAILABLE": 503,
    }
    by_code = {cls.error_code: cls.http_status for cls in classes}
    assert {code: by_code[code] for code in contract} == contract
    error = errors.StorageUnavailableError(retry_after=7, storage_error="SlowDown")
    assert error.to_dict() == {
        "message": "Storage is temporarily unavailable",
        "error_code": "STORAGE_UNAVAILABLE",
        "details": {"retry_after": 7, "storage_error": "SlowDown"},
    }
    assert error.retry_after == 7


def test_all_is_complete_and_sorted() -> None:
    """__all__ lists every public name once, sorted, and each one imports."""
    names = helppet_recordings.__all__
    assert names == sorted(names)
    assert len(names) == len(set(names))
    for name in names:
        assert getattr(helppet_recordings, name) is not None
    contract = {
        "RecordingService",
        "RecordingSettings",
        "S3Storage",
        "LocalStorage",
        "InMemoryRepository",
        "SqlAlchemyRepository",
        "RecordingStatus",
        "RecordingType",
        "InitiateUploadRequest",
        "InitiateUploadResponse",
        "CompleteUploadRequest",
        "RecordingResponse",
        "RecordingListResponse",
        "DownloadUrlResponse",
        "ErrorResponse",
        "RecordingError",
    }
    assert contract <= set(names)


def test_unknown_attribute_is_an_attribute_error() -> None:
    """The lazy import hook does not swallow typos."""
    with pytest.raises(AttributeError, match="NoSuchThing"):
        _ = helppet_recordings.NoSuchThing


def test_a_subclass_env_file_is_still_read(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host subclass naming an env_file gets its values (the process environment wins)."""
    monkeypatch.delenv("HELPPET_MAX_FILE_SIZE", raising=False)
    env_file = tmp_path / "clinic.env"
    env_file.write_text("HELPPET_MAX_FILE_SIZE=777\n")

    class ClinicSettings(RecordingSettings):
        model_config = pydantic_settings.SettingsConfigDict(env_file=env_file)

    assert ClinicSettings().max_file_size == 777
    monkeypatch.setenv("HELPPET_MAX_FILE_SIZE", "888")
    assert ClinicSettings().max_file_size == 888
