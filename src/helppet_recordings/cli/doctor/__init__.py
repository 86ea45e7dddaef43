"""``doctor``: checks a deployment and says what to fix.

Every check yields one :class:`~helppet_recordings.cli.findings.Finding`
(``ok``, ``warn`` or ``fail``, with a fix). Nothing is changed: doctor only
reads (the exceptions are a temporary file that proves LocalStorage's
directory is writable, and the probe of ``s3.checksum_tickets``: a POST of a
few bytes under the staging prefix, deleted if the server stored it). A
check that cannot be made (a server that does not implement a call, a
permission the credentials lack) is a warning that says so, never a silent
pass.

Checks, in order:

- ``database.reachable``, ``database.migrations`` (at the head revision of
  the package's Alembic migrations);
- with ``HELPPET_STORAGE=local``: ``local.directory``, ``local.writable``,
  ``local.secret``, ``local.public_url``;
- with ``s3``: ``s3.credentials``, ``s3.bucket``, ``s3.signature``,
  ``s3.clock``, ``s3.encryption`` (and KMS key access for ``aws:kms``),
  ``s3.cors``, ``s3.lifecycle``, ``s3.public_access``, ``s3.checksum_tickets``
  (the server refuses a POST whose body has another SHA-256 than its ticket
  pins).
"""

from __future__ import annotations

import time

from helppet_recordings.cli.doctor._common import DOCTOR_S3_OPTIONS, Clock
from helppet_recordings.cli.doctor.bucket_access import BucketProbe, probe_bucket
from helppet_recordings.cli.doctor.database import check_database
from helppet_recordings.cli.doctor.local_storage import check_local_storage
from helppet_recordings.cli.doctor.s3 import check_s3
from helppet_recordings.cli.doctor.signing import CLOCK_SKEW_FAIL_SECONDS, CLOCK_SKEW_WARN_SECONDS
from helppet_recordings.cli.findings import Finding
from helppet_recordings.environment import DeploymentSettings

__all__ = [
    "CLOCK_SKEW_FAIL_SECONDS",
    "CLOCK_SKEW_WARN_SECONDS",
    "DOCTOR_S3_OPTIONS",
    "BucketProbe",
    "check_database",
    "check_local_storage",
    "check_s3",
    "probe_bucket",
    "run_doctor",
]


def run_doctor(environment: DeploymentSettings, *, clock: Clock = time.time) -> list[Finding]:
    """Run every check that applies to the deployment; ``clock`` returns Unix time."""
    findings = check_database(environment)
    if environment.storage == "s3":
        findings += check_s3(environment, clock=clock)
    else:
        findings += check_local_storage(environment)
    return findings
