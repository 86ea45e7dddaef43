"""The S3 checks in order: access, signing, clock, the bucket's configuration, checksum tickets."""

from __future__ import annotations

import time

from helppet_recordings.cli.bucket import (
    BucketExpectations,
    evaluate_cors,
    evaluate_lifecycle,
    evaluate_public_access,
    read_part,
)
from helppet_recordings.cli.doctor._common import DOCTOR_S3_OPTIONS, Clock, _finding
from helppet_recordings.cli.doctor.bucket_access import probe_bucket
from helppet_recordings.cli.doctor.checksum_tickets import _check_checksum_tickets
from helppet_recordings.cli.doctor.encryption import _check_encryption
from helppet_recordings.cli.doctor.multipart import check_multipart
from helppet_recordings.cli.doctor.signing import _check_clock, _check_signature
from helppet_recordings.cli.findings import Finding, Status
from helppet_recordings.environment import DeploymentSettings, build_storage


def check_s3(environment: DeploymentSettings, *, clock: Clock = time.time) -> list[Finding]:
    """Check credentials, the bucket, its configuration and what it does with checksum fields."""
    from helppet_recordings.storage.s3 import S3Storage  # noqa: PLC0415

    storage = build_storage(environment, s3_options=DOCTOR_S3_OPTIONS)
    assert isinstance(storage, S3Storage)  # noqa: S101 - build_storage honours HELPPET_STORAGE
    client = storage.client
    expect = BucketExpectations.from_environment(environment)
    probe = probe_bucket(client, expect, clock)
    findings = list(probe.findings)
    findings.append(_check_signature(client, reachable=probe.reachable))
    findings.append(_check_clock(probe))
    if not probe.reachable:
        findings += [
            _finding(name, Status.WARN, "not checked: the bucket is not reachable")
            for name in (
                "s3.encryption",
                "s3.cors",
                "s3.lifecycle",
                "s3.multipart",
                "s3.public_access",
                "s3.checksum_tickets",
            )
        ]
        return findings
    findings.append(_check_encryption(client, environment))
    cors = read_part(client, expect.bucket, "cors")
    findings.append(cors.unavailable or evaluate_cors(cors.document, expect)[0])
    lifecycle = read_part(client, expect.bucket, "lifecycle")
    findings.append(lifecycle.unavailable or evaluate_lifecycle(lifecycle.document, expect)[0])
    findings.append(check_multipart(client, expect))
    public = read_part(client, expect.bucket, "public_access")
    findings.append(public.unavailable or evaluate_public_access(public.document)[0])
    findings.append(_check_checksum_tickets(storage, environment))
    return findings
