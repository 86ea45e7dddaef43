"""Encryption checks: ``s3.encryption``, and access to the KMS key for ``aws:kms``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from helppet_recordings.cli.bucket import has_default_encryption, read_part
from helppet_recordings.cli.doctor._common import DOCTOR_S3_OPTIONS, _finding
from helppet_recordings.cli.findings import Finding, Status
from helppet_recordings.environment import DeploymentSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_KMS_ALGORITHMS: Final = ("aws:kms", "aws:kms:dsse")
_AWS_MANAGED_S3_KEY: Final = "alias/aws/s3"


def _check_encryption(client: S3Client, environment: DeploymentSettings) -> Finding:
    read = read_part(client, environment.recording.s3_bucket_name, "encryption")
    if read.unavailable is not None:
        return read.unavailable
    current = has_default_encryption(read.document)
    if current is None:
        return _finding(
            "s3.encryption",
            Status.FAIL,
            "the bucket has no default encryption",
            "run `helppet-recordings bucket-setup --apply` (sets AES256)",
        )
    algorithm, key_id = current
    if algorithm == "AES256":
        return _finding("s3.encryption", Status.OK, "default encryption is AES256 (SSE-S3)")
    if algorithm in _KMS_ALGORITHMS:
        return _check_kms_key(environment, algorithm, key_id or _AWS_MANAGED_S3_KEY)
    return _finding(
        "s3.encryption",
        Status.WARN,
        f"default encryption is {algorithm}, which doctor does not know",
        "use AES256 or aws:kms",
    )


def _check_kms_key(environment: DeploymentSettings, algorithm: str, key_id: str) -> Finding:
    import boto3  # noqa: PLC0415
    import botocore.config  # noqa: PLC0415
    import botocore.exceptions  # noqa: PLC0415

    region = environment.recording.aws_region
    if key_id.startswith("arn:"):
        region = key_id.split(":")[3] or region
    kms = boto3.session.Session().client(
        "kms",
        region_name=region,
        config=botocore.config.Config(
            connect_timeout=DOCTOR_S3_OPTIONS["connect_timeout"],
            read_timeout=DOCTOR_S3_OPTIONS["read_timeout"],
            retries={"mode": "standard", "max_attempts": int(DOCTOR_S3_OPTIONS["max_attempts"])},
        ),
    )
    step = "kms:DescribeKey"
    try:
        state = kms.describe_key(KeyId=key_id)["KeyMetadata"].get("KeyState", "Enabled")
        if state != "Enabled":
            return _finding(
                "s3.encryption",
                Status.FAIL,
                f"default encryption is {algorithm} with key {key_id}, which is {state}",
                "enable the key, or point the bucket's default encryption at an enabled key",
            )
        step = "kms:GenerateDataKey"
        kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "")) or "error"
        fix = (
            "fix the KMS key id in the bucket's default encryption"
            if code == "NotFoundException"
            else f"grant the backend's role {step}, kms:GenerateDataKey and kms:Decrypt on "
            "the key (key policy or IAM)"
        )
        return _finding(
            "s3.encryption",
            Status.FAIL,
            f"default encryption is {algorithm} with key {key_id}, but {step} failed ({code})",
            fix,
        )
    except botocore.exceptions.BotoCoreError as exc:
        return _finding(
            "s3.encryption",
            Status.WARN,
            f"default encryption is {algorithm} with key {key_id}; KMS could not be "
            f"reached to check access ({type(exc).__name__})",
        )
    return _finding(
        "s3.encryption",
        Status.OK,
        f"default encryption is {algorithm} with key {key_id}; these credentials may use it",
    )
