"""The deployment environment: variables, defaults, errors, and the backends it builds."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from examples.fastapi_app.config import AppConfig

from helppet_recordings import LocalStorage, RecordingSettings, S3Storage
from helppet_recordings.environment import (
    ConfigurationError,
    DeploymentSettings,
    build_backends,
    build_storage,
)

JWT_SECRET = "j" * 40
LOCAL_SECRET = "local-storage-secret-123"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own HELPPET_/S3_/DATABASE_URL variables out of these tests."""
    for name in list(os.environ):
        if name.startswith(("HELPPET_", "S3_")) or name in {"DATABASE_URL", "AWS_REGION"}:
            monkeypatch.delenv(name)


def test_defaults_match_the_example_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With nothing set, the defaults are the example app's: SQLite and a folder in cwd."""
    monkeypatch.setenv("HELPPET_STORAGE", "s3")  # a mapping given is all that is read
    monkeypatch.setenv("S3_BUCKET_NAME", "not-this-one")
    env = DeploymentSettings.from_env({}, cwd=tmp_path)
    assert type(env) is DeploymentSettings
    example = AppConfig.from_env({"HELPPET_JWT_SECRET": JWT_SECRET}, cwd=tmp_path)
    assert env.storage == example.storage == "local"
    assert env.database_url == example.database_url == f"sqlite:///{tmp_path}/helppet-recordings.db"
    assert env.local_storage_dir == example.local_storage_dir
    assert env.public_base_url == example.public_base_url == "http://127.0.0.1:8000"
    assert env.cors_origins == ()
    assert env.s3_checksum_tickets is example.s3_checksum_tickets is True
    assert env.local_secret() is None
    assert env.recording.s3_bucket_name == "helppet-audio-recordings"


def test_every_variable_is_read(tmp_path: Path) -> None:
    """Each variable lands in its field; origins are split, trimmed and deduplicated."""
    env = DeploymentSettings.from_env(
        {
            "HELPPET_STORAGE": " S3 ",
            "DATABASE_URL": "postgresql://app@db/helppet",
            "HELPPET_LOCAL_STORAGE_DIR": str(tmp_path / "audio"),
            "HELPPET_PUBLIC_BASE_URL": "https://api.example.com/",
            "HELPPET_CORS_ORIGINS": "https://app.example.com/, http://localhost:3000,,"
            "https://app.example.com",
            "HELPPET_JWT_SECRET": JWT_SECRET,
            "HELPPET_LOCAL_STORAGE_SECRET": LOCAL_SECRET,
            "S3_BUCKET_NAME": "clinic-audio",
            "S3_RECORDINGS_PREFIX": "audio",
            "HELPPET_DELETED_RETENTION_DAYS": "7",
            "HELPPET_MAX_FILE_SIZE": "",  # empty counts as unset
        }
    )
    assert env.storage == "s3"
    assert env.database_url == "postgresql://app@db/helppet"
    assert env.local_storage_dir == tmp_path / "audio"
    assert env.public_base_url == "https://api.example.com"
    assert env.cors_origins == ("https://app.example.com", "http://localhost:3000")
    assert env.local_secret() == LOCAL_SECRET
    assert env.local_secret_source == "HELPPET_LOCAL_STORAGE_SECRET"
    assert env.recording.s3_bucket_name == "clinic-audio"
    assert env.recording.s3_recordings_prefix == "audio/"
    assert env.recording.deleted_retention_days == 7
    assert env.recording.max_file_size == 104_857_600


def test_local_secret_is_derived_as_the_example_app_derives_it(tmp_path: Path) -> None:
    """Without its own secret, LocalStorage's comes from the JWT secret, exactly as in the app."""
    env = DeploymentSettings.from_env({"HELPPET_JWT_SECRET": JWT_SECRET})
    example = AppConfig.from_env({"HELPPET_JWT_SECRET": JWT_SECRET}, cwd=tmp_path)
    assert env.local_secret() == example.local_secret()
    assert env.local_secret_source == "HELPPET_JWT_SECRET"
    assert env.require_jwt_secret() == JWT_SECRET


def test_the_process_environment_is_read_by_the_settings_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DeploymentSettings() reads os.environ, the nested settings included; RECORDING is ignored."""
    monkeypatch.setenv("HELPPET_STORAGE", "s3")
    monkeypatch.setenv("S3_BUCKET_NAME", "from-the-environment")
    monkeypatch.setenv("RECORDING", "not json")
    monkeypatch.setenv("HELPPET_CORS_ORIGINS", "https://a.example.com")
    env = DeploymentSettings()
    assert env.storage == "s3"
    assert env.recording.s3_bucket_name == "from-the-environment"
    assert env.cors_origins == ("https://a.example.com",)
    assert DeploymentSettings.load() == env


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("S3_RECORDINGS_PREFIX", ""),
        ("AWS_REGION", ""),
        ("AWS_REGION", "  "),
        ("S3_BUCKET_NAME", " \n"),
        ("HELPPET_MAX_FILE_SIZE", "\t"),
    ],
)
def test_an_empty_or_blank_variable_is_unset_however_the_settings_are_read(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """RecordingSettings(), DeploymentSettings(), from_env and the example app use the default."""
    monkeypatch.setenv(variable, value)
    defaults = DeploymentSettings.from_env({}).recording
    assert defaults.s3_recordings_prefix == "recordings/"
    assert RecordingSettings() == defaults
    assert DeploymentSettings().recording == defaults
    assert DeploymentSettings.from_env().recording == defaults
    app = AppConfig.from_env({**os.environ, "HELPPET_JWT_SECRET": JWT_SECRET})
    assert app.recording == defaults


def test_surrounding_whitespace_is_removed_however_the_settings_are_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A trailing newline or a copied space is not part of a value, a secret's included."""
    monkeypatch.setenv("AWS_REGION", " eu-west-1\n")
    monkeypatch.setenv("S3_BUCKET_NAME", " clinic-audio ")
    monkeypatch.setenv("HELPPET_STORAGE", "s3\n")
    monkeypatch.setenv("HELPPET_JWT_SECRET", f" {JWT_SECRET}\n")
    monkeypatch.setenv("HELPPET_DB_POOL_SIZE", " 9\n")
    monkeypatch.setenv("HELPPET_JWT_AUDIENCE", " clinic-api ")
    monkeypatch.setenv("JWT_AUDIENCE", "named-after-the-field")  # not a documented variable
    recording = RecordingSettings()
    assert (recording.aws_region, recording.s3_bucket_name) == ("eu-west-1", "clinic-audio")
    app = AppConfig()
    assert app.db_pool_size == AppConfig.from_env().db_pool_size == 9
    assert app.jwt_audience == AppConfig.from_env().jwt_audience == "clinic-api"
    every_path = (DeploymentSettings(), DeploymentSettings.from_env(), app, AppConfig.from_env())
    for settings in every_path:
        assert settings.recording == recording
        assert settings.storage == "s3"
        assert settings.require_jwt_secret() == JWT_SECRET


def test_bad_values_name_every_variable_and_never_quote_secrets() -> None:
    """All problems are reported at once, each with its variable; a secret is never echoed."""
    with pytest.raises(ConfigurationError) as caught:
        DeploymentSettings.from_env(
            {
                "HELPPET_STORAGE": "ftp",
                "S3_BUCKET_NAME": "No_Such",
                "HELPPET_CORS_ORIGINS": "app.example.com",
                "HELPPET_JWT_SECRET": "short-secret-value",
                "HELPPET_LOCAL_STORAGE_SECRET": "tiny-secret",
                "HELPPET_PUBLIC_BASE_URL": "ftp://files",
            }
        )
    error = caught.value
    assert error.error_code == "CONFIGURATION_ERROR"
    variables = {problem["variable"] for problem in error.details["errors"]}
    assert variables == {
        "HELPPET_STORAGE",
        "S3_BUCKET_NAME",
        "HELPPET_CORS_ORIGINS",
        "HELPPET_JWT_SECRET",
        "HELPPET_LOCAL_STORAGE_SECRET",
        "HELPPET_PUBLIC_BASE_URL",
    }
    assert "short-secret-value" not in str(error.to_dict())
    assert "tiny-secret" not in str(error.to_dict())


BAD_VALUES = {
    "HELPPET_STORAGE": "ftp-at-host-7",
    "S3_BUCKET_NAME": "No_Such",
    "S3_RECORDINGS_PREFIX": "../escape-me",
    "HELPPET_CORS_ORIGINS": "https://ok.example, clinic-web.test",
    "HELPPET_JWT_SECRET": "hunter2-short-secret",
    "HELPPET_LOCAL_STORAGE_SECRET": "tiny-secret",
    "HELPPET_DB_POOL_SIZE": "lots-of-them",
}


def _assert_names_each_variable_and_echoes_no_value(
    error: ConfigurationError, variables: set[str]
) -> None:
    """Each of ``variables`` is named; no value (a secret's above all) is in the error or chain."""
    assert {problem["variable"] for problem in error.details["errors"]} == variables
    assert error.details["variable"] in variables
    assert error.__cause__ is None
    assert error.__context__ is None
    shown = str(error.to_dict()) + repr(error) + str(error)
    for value in ("ftp-at-host", "No_Such", "escape-me", "clinic-web", "hunter2", "tiny"):
        assert value not in shown


def test_every_way_of_building_the_settings_raises_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DeploymentSettings(), from_env, from_values, load and the example app name each variable.

    None of them raises pydantic's error, which quotes each rejected value.
    """
    for name, value in BAD_VALUES.items():
        monkeypatch.setenv(name, value)
    deployment = set(BAD_VALUES) - {"HELPPET_DB_POOL_SIZE"}
    builders: dict[str, tuple[Callable[[], object], set[str]]] = {
        "DeploymentSettings()": (DeploymentSettings, deployment),
        "from_env()": (DeploymentSettings.from_env, deployment),
        "from_env(mapping)": (lambda: DeploymentSettings.from_env(BAD_VALUES), deployment),
        "load()": (DeploymentSettings.load, deployment),
        "AppConfig()": (AppConfig, set(BAD_VALUES)),
        "AppConfig.from_env()": (AppConfig.from_env, set(BAD_VALUES)),
        "from_values": (
            lambda: DeploymentSettings.from_values(
                {name: BAD_VALUES[name] for name in ("HELPPET_STORAGE", "HELPPET_JWT_SECRET")}
            ),
            {"HELPPET_STORAGE", "HELPPET_JWT_SECRET"},
        ),
    }
    for how, (build, variables) in builders.items():
        with pytest.raises(ConfigurationError) as caught:
            build()
        assert caught.value.error_code == "CONFIGURATION_ERROR", how
        _assert_names_each_variable_and_echoes_no_value(caught.value, variables)


@pytest.mark.parametrize(
    ("value", "pins"),
    [("0", False), ("false", False), ("Off", False), ("1", True), ("true", True)],
)
def test_checksum_tickets_follow_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, pins: bool
) -> None:
    """HELPPET_S3_CHECKSUM_TICKETS reaches S3Storage; the example app and os.environ read it."""
    environ = {"HELPPET_STORAGE": "s3", "HELPPET_S3_CHECKSUM_TICKETS": value}
    env = DeploymentSettings.from_env(environ)
    assert env.s3_checksum_tickets is pins
    storage = build_storage(env)
    assert isinstance(storage, S3Storage)
    assert storage.pins_checksums is pins
    app = AppConfig.from_env({**environ, "HELPPET_JWT_SECRET": JWT_SECRET})
    assert app.s3_checksum_tickets is pins
    monkeypatch.setenv("HELPPET_S3_CHECKSUM_TICKETS", value)
    assert DeploymentSettings().s3_checksum_tickets is pins


def test_s3_options_win_over_the_checksum_tickets_variable() -> None:
    """A caller's own checksum_tickets keyword overrides the environment's."""
    env = DeploymentSettings.from_env({"HELPPET_STORAGE": "s3"})
    storage = build_storage(env, s3_options={"checksum_tickets": False})
    assert isinstance(storage, S3Storage)
    assert storage.pins_checksums is False


@pytest.mark.parametrize(
    ("variables", "said"),
    [
        ({"AWS_PROFILE": "no-such-profile"}, "no-such-profile"),
        ({"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"}, "AWS_SECRET_ACCESS_KEY"),
    ],
)
def test_aws_credentials_boto3_cannot_use_are_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], said: str
) -> None:
    """A missing profile or half a key pair is a ConfigurationError, not a botocore traceback."""
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        build_storage(DeploymentSettings.from_env({"HELPPET_STORAGE": "s3"}))
    assert said in caught.value.message


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"AWS_REGION": "us east 1"}, "AWS_REGION"),
        ({"AWS_REGION": "us-east-1/x", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, "AWS_REGION"),
        ({"AWS_ENDPOINT_URL": "not a url"}, "AWS_ENDPOINT_URL"),
        (
            {"AWS_ENDPOINT_URL": "http://ok:9", "AWS_ENDPOINT_URL_S3": "http://[::1"},
            "AWS_ENDPOINT_URL_S3",
        ),
    ],
)
def test_a_malformed_region_or_endpoint_names_its_own_variable(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    """A bad region or endpoint is a ValueError to botocore; the error names the right variable."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        build_storage(DeploymentSettings.from_env({"HELPPET_STORAGE": "s3", **variables}))
    assert caught.value.details == {"variable": named}
    assert caught.value.message.startswith(named)
    for value in variables.values():
        assert value not in caught.value.message


def test_a_bad_s3_option_is_the_callers_error_not_the_environments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no endpoint variable set, a ValueError from S3Storage's options is not blamed on one."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="sse") as caught:
        build_storage(
            DeploymentSettings.from_env({"HELPPET_STORAGE": "s3"}), s3_options={"sse": "rot13"}
        )
    assert not isinstance(caught.value, ConfigurationError)


def test_a_bad_checksum_tickets_value_names_the_variable() -> None:
    """A value that is no boolean is a ConfigurationError naming HELPPET_S3_CHECKSUM_TICKETS."""
    with pytest.raises(ConfigurationError) as caught:
        DeploymentSettings.from_env({"HELPPET_S3_CHECKSUM_TICKETS": "sometimes"})
    problems = caught.value.details["errors"]
    assert [problem["variable"] for problem in problems] == ["HELPPET_S3_CHECKSUM_TICKETS"]
    assert "HELPPET_S3_CHECKSUM_TICKETS: Input should be a valid boolean" in caught.value.message


def test_secrets_stay_out_of_repr() -> None:
    """Neither secret nor the database URL (it may hold a password) shows in repr."""
    env = DeploymentSettings.from_env(
        {
            "HELPPET_JWT_SECRET": JWT_SECRET,
            "HELPPET_LOCAL_STORAGE_SECRET": LOCAL_SECRET,
            "DATABASE_URL": "postgresql://app:hunter2@db/helppet",
        }
    )
    assert JWT_SECRET not in repr(env)
    assert LOCAL_SECRET not in repr(env)
    assert "hunter2" not in repr(env)


def test_build_backends_gives_a_working_local_deployment(tmp_path: Path) -> None:
    """Local storage, a migrated SQLite database and a service that takes an upload."""
    env = DeploymentSettings.from_env({"HELPPET_LOCAL_STORAGE_SECRET": LOCAL_SECRET}, cwd=tmp_path)
    backends = build_backends(env, create_schema=True)
    try:
        assert isinstance(backends.local_storage, LocalStorage)
        assert backends.storage is backends.local_storage
        user = uuid.uuid4()
        ticket = backends.service.initiate_upload(
            user, {"filename": "a.m4a", "content_type": "audio/m4a"}
        )
        assert ticket.upload_url == "http://127.0.0.1:8000/local-storage/upload"
        assert backends.service.list_recordings(user).total == 1
    finally:
        backends.close()
    assert (tmp_path / "helppet-recordings.db").is_file()


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({}, "HELPPET_LOCAL_STORAGE_SECRET"),
        ({"HELPPET_JWT_SECRET": JWT_SECRET, "DATABASE_URL": "not a url"}, "DATABASE_URL"),
        (
            {"HELPPET_JWT_SECRET": JWT_SECRET, "DATABASE_URL": "postgresql://u:pw@h:notaport/db"},
            "DATABASE_URL",
        ),
        ({"HELPPET_JWT_SECRET": JWT_SECRET, "DATABASE_URL": "mysql://u@h/db"}, "DATABASE_URL"),
        (
            {"HELPPET_JWT_SECRET": JWT_SECRET, "DATABASE_URL": "postgresql+asyncpg://u@h/db"},
            "DATABASE_URL",
        ),
        (
            {"HELPPET_JWT_SECRET": JWT_SECRET, "DATABASE_URL": "sqlite+nosuchdriver:///x.db"},
            "DATABASE_URL",
        ),
    ],
)
def test_build_backends_refuses_what_cannot_work(
    tmp_path: Path, environ: dict[str, str], variable: str
) -> None:
    """A missing LocalStorage secret or a DATABASE_URL that cannot work names its variable.

    The URL may not parse (a port that is no number) or name a database or
    driver the package does not run on; the error never repeats its password.
    """
    env = DeploymentSettings.from_env(environ, cwd=tmp_path)
    with pytest.raises(ConfigurationError) as caught:
        build_backends(env)
    assert caught.value.details["variable"] == variable
    assert variable in caught.value.message
    assert "pw" not in str(caught.value.to_dict())


def test_from_values_reads_nothing_but_the_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """from_values validates the given values (by field or variable name) and no environment."""
    monkeypatch.setenv("HELPPET_STORAGE", "s3")
    monkeypatch.setenv("HELPPET_PUBLIC_BASE_URL", "https://elsewhere.example")
    monkeypatch.setenv("S3_BUCKET_NAME", "from-the-environment")
    settings = DeploymentSettings.from_values({"HELPPET_CORS_ORIGINS": "https://app.example"})
    assert settings.storage == "local"
    assert settings.recording.s3_bucket_name == "helppet-audio-recordings"
    assert settings.public_base_url != "https://elsewhere.example"
    assert settings.cors_origins == ("https://app.example",)
    assert DeploymentSettings.from_values({"storage": "s3"}).storage == "s3"
