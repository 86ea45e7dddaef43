"""doctor and bucket-setup against S3 servers: moto's standalone server and SeaweedFS.

moto's server implements every bucket configuration call (and KMS); SeaweedFS
implements encryption, CORS and lifecycle but not Block Public Access, which
doctor must then report as not checkable rather than pass.

``s3.checksum_tickets`` POSTs a body whose SHA-256 is not the one its ticket
pins: SeaweedFS refuses it (400 BadDigest), moto (5.x) stores it (204) and is
the server that ignores the checksum fields here.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from click.testing import CliRunner, Result
from moto.server import ThreadedMotoServer

from helppet_recordings.cli._app import cli
from helppet_recordings.cli.doctor import run_doctor
from helppet_recordings.cli.findings import Finding
from helppet_recordings.environment import DeploymentSettings
from tests.support.seaweedfs import SeaweedEndpoint, make_client
from tests.support.servers import HOST, free_ports

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import LifecycleRuleTypeDef

pytestmark = pytest.mark.e2e

ORIGIN = "https://app.example.com"
MOTO_KEY = "moto-access-key"
MOTO_SECRET = "moto-secret-key"  # moto checks no signatures
S3_CHECKS = [
    "s3.credentials",
    "s3.bucket",
    "s3.signature",
    "s3.clock",
    "s3.encryption",
    "s3.cors",
    "s3.lifecycle",
    "s3.multipart",
    "s3.public_access",
    "s3.checksum_tickets",
]


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """The moto standalone server on 127.0.0.1 and a free port, for this module."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log on stderr
    (port,) = free_ports(1)
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    try:
        yield f"http://{HOST}:{port}"
    finally:
        server.stop()


def configure(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    *,
    endpoint: str,
    key: str,
    secret: str,
    bucket: str,
) -> None:
    """Point the environment at one S3 server, bucket and a SQLite database."""
    for name in list(os.environ):
        if name.startswith(("HELPPET_", "S3_", "AWS_")) or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("HELPPET_STORAGE", "s3")
    monkeypatch.setenv("S3_BUCKET_NAME", bucket)
    monkeypatch.setenv("HELPPET_CORS_ORIGINS", ORIGIN)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'recordings.db'}")


def client_for(endpoint: str, key: str, secret: str) -> S3Client:
    """A boto3 S3 client for the server, as an administrator would use it."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def run(*args: str) -> Result:
    """Invoke the command line in-process."""
    return CliRunner().invoke(cli, list(args))


def run_json(*args: str, exit_code: int) -> dict[str, Any]:
    """Invoke with --json, check the exit status, and parse stdout."""
    result = run(*args, "--json")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == exit_code, result.output + result.stderr
    assert "Traceback" not in result.stderr
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def findings(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The report's findings by check name."""
    return {finding["check"]: finding for finding in report["findings"]}


def checksum_finding() -> Finding:
    """Run doctor on the process environment and return its ``s3.checksum_tickets`` finding."""
    checks = run_doctor(DeploymentSettings.load())
    return next(finding for finding in checks if finding.check == "s3.checksum_tickets")


def keys_in(client: S3Client, bucket: str) -> list[str]:
    """Every key in the bucket."""
    return [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


# ------------------------------------------------------------------------------ moto


@pytest.fixture
def moto_bucket(
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> S3Client:
    """A fresh bucket on the moto server, with the environment pointing at it.

    moto ignores a POST's checksum fields, so checksum tickets are off, as they
    must be on such a server.
    """
    bucket = f"cli-{request.node.name.replace('_', '-')[:40].lower()}".strip("-")
    configure(
        monkeypatch,
        tmp_path,
        endpoint=moto_endpoint,
        key=MOTO_KEY,
        secret=MOTO_SECRET,
        bucket=bucket,
    )
    monkeypatch.setenv("HELPPET_S3_CHECKSUM_TICKETS", "0")
    client = client_for(moto_endpoint, MOTO_KEY, MOTO_SECRET)
    client.create_bucket(Bucket=bucket)
    return client


def test_bucket_setup_then_doctor_is_clean_on_moto(moto_bucket: S3Client) -> None:
    """A bare bucket fails doctor; --apply fixes it, keeps foreign rules, and is idempotent."""
    bucket = os.environ["S3_BUCKET_NAME"]
    moto_bucket.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [{"AllowedOrigins": ["https://other.example"], "AllowedMethods": ["GET"]}]
        },
    )
    logs_rule: LifecycleRuleTypeDef = {
        "ID": "logs",
        "Filter": {"Prefix": "logs/"},
        "Status": "Enabled",
        "Expiration": {"Days": 9},
    }
    moto_bucket.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={"Rules": [logs_rule]},
    )
    run_json("migrate", exit_code=0)
    before = findings(run_json("doctor", exit_code=1))
    assert before["s3.cors"]["status"] == "fail"
    assert before["s3.lifecycle"]["status"] == "fail"

    shown = run_json("bucket-setup", exit_code=0)
    assert shown["applied"] is False
    assert shown["expected"]["cors"]["CORSRules"][0]["AllowedOrigins"] == [ORIGIN]

    first = run_json("bucket-setup", "--apply", exit_code=0)
    second = run_json("bucket-setup", "--apply", exit_code=0)
    assert first["changed"] is True
    assert {change["part"]: change["action"] for change in first["changes"]}["cors"] == "applied"
    assert second["changed"] is False
    assert {change["action"] for change in second["changes"]} == {"unchanged"}
    assert "Nothing changed" in run("bucket-setup", "--apply").stdout

    after = run_json("doctor", exit_code=0)
    assert list(findings(after)) == ["database.reachable", "database.migrations", *S3_CHECKS]
    statuses = {check: finding["status"] for check, finding in findings(after).items()}
    assert statuses == {**dict.fromkeys(statuses, "ok"), "s3.checksum_tickets": "warn"}
    origins = [
        rule["AllowedOrigins"] for rule in moto_bucket.get_bucket_cors(Bucket=bucket)["CORSRules"]
    ]
    assert ["https://other.example"] in origins
    rules = moto_bucket.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert "logs" in [rule.get("ID") for rule in rules]


def test_doctor_checks_access_to_the_bucket_kms_key(
    moto_bucket: S3Client, moto_endpoint: str
) -> None:
    """aws:kms default encryption: ok with a usable key, a clear failure with a missing one."""
    bucket = os.environ["S3_BUCKET_NAME"]
    kms = boto3.client(
        "kms",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id=MOTO_KEY,
        aws_secret_access_key=MOTO_SECRET,
    )
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    for key, status in ((key_id, "ok"), ("00000000-0000-0000-0000-000000000000", "fail")):
        moto_bucket.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": key,
                        }
                    }
                ]
            },
        )
        report = run_json("doctor", exit_code=1)  # the rest of the bucket is bare
        encryption = findings(report)["s3.encryption"]
        assert encryption["status"] == status, encryption
        assert key in encryption["message"]
    assert "NotFoundException" in encryption["message"]


@pytest.mark.parametrize(("offset", "status"), [(0, "ok"), (-120, "warn"), (1000, "fail")])
def test_clock_skew_is_measured_against_the_server_date(
    moto_bucket: S3Client, offset: float, status: str
) -> None:
    """A clock 2 minutes off warns, 15+ minutes off fails (the server's Date header is truth)."""
    checks = run_doctor(DeploymentSettings.load(), clock=lambda: time.time() + offset)
    clock = next(finding for finding in checks if finding.check == "s3.clock")
    assert clock.status.value == status, clock


@pytest.mark.parametrize(
    ("tickets", "status", "said"),
    [
        ("1", "fail", "a replayed ticket could overwrite verified audio"),
        ("0", "warn", "checksum tickets are off (HELPPET_S3_CHECKSUM_TICKETS) and must stay off"),
    ],
)
def test_a_server_that_ignores_checksum_fields_is_found(
    moto_bucket: S3Client, monkeypatch: pytest.MonkeyPatch, tickets: str, status: str, said: str
) -> None:
    """The moto server stores the mismatched body: fail with tickets on, warn with them off."""
    monkeypatch.setenv("HELPPET_S3_CHECKSUM_TICKETS", tickets)
    finding = checksum_finding()
    assert finding.status.value == status, finding
    assert "the server stored a body whose SHA-256 differs from the ticket's (204)" in (
        finding.message
    )
    assert said in finding.message
    assert finding.fix is not None
    assert "HELPPET_S3_CHECKSUM_TICKETS=0 (S3Storage(checksum_tickets=False))" in finding.fix
    assert "could not be deleted" not in finding.message
    assert keys_in(moto_bucket, os.environ["S3_BUCKET_NAME"]) == []  # the probe is gone


def test_checksum_tickets_on_moto_fail_the_command(
    moto_bucket: S3Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the command line, tickets on a server that ignores the fields: exit 1, the fix said."""
    monkeypatch.setenv("HELPPET_S3_CHECKSUM_TICKETS", "true")
    run_json("migrate", exit_code=0)
    report = run_json("doctor", exit_code=1)
    failed = [check for check, found in findings(report).items() if found["status"] == "fail"]
    assert "s3.checksum_tickets" in failed
    text = run("doctor")
    assert "s3.checksum_tickets" in text.stdout
    assert "HELPPET_S3_CHECKSUM_TICKETS=0" in text.stdout


def test_a_missing_bucket_is_a_finding(moto_bucket: S3Client) -> None:
    """S3_BUCKET_NAME names no bucket: exit 1, the fix says to create it; setup refuses too."""
    os.environ["S3_BUCKET_NAME"] = "no-such-bucket-here"
    report = run_json("doctor", exit_code=1)
    bucket = findings(report)["s3.bucket"]
    assert bucket["status"] == "fail"
    assert "does not exist" in bucket["message"]
    assert "S3_BUCKET_NAME" in bucket["fix"]
    assert findings(report)["s3.cors"]["message"].startswith("not checked")
    assert findings(report)["s3.checksum_tickets"]["status"] == "warn"
    assert findings(report)["s3.checksum_tickets"]["message"].startswith("not checked")
    setup = run_json("bucket-setup", "--apply", exit_code=1)
    assert setup["findings"][-1]["check"] == "s3.bucket"


def test_an_unreachable_endpoint_is_a_finding(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Nothing listens at AWS_ENDPOINT_URL: exit 1 with the endpoint named, no traceback."""
    (port,) = free_ports(1)
    endpoint = f"http://{HOST}:{port}"
    configure(monkeypatch, tmp_path, endpoint=endpoint, key="k", secret="s", bucket="nowhere")
    report = run_json("doctor", exit_code=1)
    bucket = findings(report)["s3.bucket"]
    assert bucket["status"] == "fail"
    assert f"cannot reach {endpoint}" in bucket["message"]
    assert findings(report)["s3.credentials"]["status"] == "warn"
    checksum = findings(report)["s3.checksum_tickets"]
    assert checksum == {
        "check": "s3.checksum_tickets",
        "status": "warn",
        "message": "not checked: the bucket is not reachable",
        "fix": None,
    }
    text = run("doctor")
    assert text.exit_code == 1
    assert "AWS_ENDPOINT_URL" in text.stdout


# ------------------------------------------------------------------------------ SeaweedFS


def test_seaweedfs_setup_and_doctor_say_what_they_cannot_do(
    seaweed: SeaweedEndpoint,
    seaweed_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """SeaweedFS has no Block Public Access: setup reports it failed, doctor cannot check it."""
    configure(
        monkeypatch,
        tmp_path,
        endpoint=seaweed.endpoint_url,
        key=seaweed.access_key,
        secret=seaweed.secret_key,
        bucket=seaweed_bucket,
    )
    run_json("migrate", exit_code=0)
    first = run_json("bucket-setup", "--apply", exit_code=1)
    actions = {change["part"]: change["action"] for change in first["changes"]}
    assert actions == {
        "encryption": "applied",
        "cors": "applied",
        "lifecycle": "applied",
        "public_access": "failed",
    }
    second = run_json("bucket-setup", "--apply", exit_code=1)
    assert second["changed"] is False

    report = run_json("doctor", exit_code=0)  # a warning is not a failure...
    statuses = {check: finding["status"] for check, finding in findings(report).items()}
    assert statuses == {
        "database.reachable": "ok",
        "database.migrations": "ok",
        **dict.fromkeys(S3_CHECKS, "ok"),
        "s3.public_access": "warn",
    }
    assert (
        "does not implement GetPublicAccessBlock" in findings(report)["s3.public_access"]["message"]
    )
    assert findings(report)["s3.checksum_tickets"]["message"] == (
        "the server refuses a body whose SHA-256 differs from the ticket's (400 BadDigest); "
        "pinned tickets may name the final key"
    )
    run_json("doctor", "--strict", exit_code=1)  # ...unless the pipeline says so
    monkeypatch.setenv("HELPPET_S3_CHECKSUM_TICKETS", "0")
    turned_off = checksum_finding()
    assert turned_off.status.value == "ok"
    assert "checksum tickets are off" in turned_off.message
    assert "they may be turned on" in turned_off.message
    assert keys_in(make_client(seaweed), seaweed_bucket) == []  # no probe left behind


def test_a_wrong_secret_key_is_a_finding(
    seaweed: SeaweedEndpoint,
    seaweed_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """SeaweedFS checks signatures: a wrong AWS_SECRET_ACCESS_KEY is named, exit 1."""
    configure(
        monkeypatch,
        tmp_path,
        endpoint=seaweed.endpoint_url,
        key=seaweed.access_key,
        secret="not-the-secret-" + seaweed.secret_key[:8],
        bucket=seaweed_bucket,
    )
    report = run_json("doctor", exit_code=1)
    credentials = findings(report)["s3.credentials"]
    assert credentials["status"] == "fail"
    assert "SignatureDoesNotMatch" in credentials["message"]
    assert "AWS_SECRET_ACCESS_KEY" in credentials["fix"]
    assert seaweed.secret_key[:8] not in json.dumps(report)
