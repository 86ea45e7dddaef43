"""``doctor``: checks a deployment and says what to fix.

Every check yields one :class:`~helppet_recordings.cli.findings.Finding`
(``ok``, ``warn`` or ``fail``, with a fix). Nothing is changed: doctor only
reads (the one exception is a temporary file that proves LocalStorage's
directory is writable). A check that cannot be made (a server that does not
implement a call, a permission the credentials lack) is a warning that says
so, never a silent pass.

Checks, in order:

- ``database.reachable``, ``database.migrations`` (at the head revision of
  the package's Alembic migrations);
- with ``HELPPET_STORAGE=local``: ``local.directory``, ``local.writable``,
  ``local.secret``, ``local.public_url``;
- with ``s3``: ``s3.credentials``, ``s3.bucket``, ``s3.signature``,
  ``s3.clock``, ``s3.encryption`` (and KMS key access for ``aws:kms``),
  ``s3.cors``, ``s3.lifecycle``, ``s3.public_access``.
"""

from __future__ import annotations

import contextlib
import email.utils
import ipaddress
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from helppet_recordings.cli._database import current_revisions, head_revisions, known_revision
from helppet_recordings.cli.bucket import (
    BucketExpectations,
    evaluate_cors,
    evaluate_lifecycle,
    evaluate_public_access,
    has_default_encryption,
    read_part,
)
from helppet_recordings.cli.findings import Finding, Status
from helppet_recordings.environment import DeploymentSettings, build_repository, build_storage
from helppet_recordings.errors import MissingDependencyError

if TYPE_CHECKING:
    import sqlalchemy as sa
    from mypy_boto3_s3 import S3Client

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

CLOCK_SKEW_WARN_SECONDS: Final = 60
"""Clock skew against the storage server above which doctor warns."""

CLOCK_SKEW_FAIL_SECONDS: Final = 900
"""Clock skew above which doctor fails: S3 refuses SigV4 requests 15 minutes off."""

DOCTOR_S3_OPTIONS: Final = {"connect_timeout": 5.0, "read_timeout": 15.0, "max_attempts": 2}
"""Doctor gives up on an unreachable endpoint sooner than the service does."""

_MESSAGE_LIMIT: Final = 200
_KMS_ALGORITHMS: Final = ("aws:kms", "aws:kms:dsse")
_AWS_MANAGED_S3_KEY: Final = "alias/aws/s3"

Clock = Callable[[], float]


def run_doctor(environment: DeploymentSettings, *, clock: Clock = time.time) -> list[Finding]:
    """Run every check that applies to the deployment; ``clock`` returns Unix time."""
    findings = check_database(environment)
    if environment.storage == "s3":
        findings += check_s3(environment, clock=clock)
    else:
        findings += check_local_storage(environment)
    return findings


def _finding(check: str, status: Status, message: str, fix: str | None = None) -> Finding:
    return Finding(check=check, status=status, message=message, fix=fix)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    return line[:_MESSAGE_LIMIT]


# ------------------------------------------------------------------------------ database


def check_database(environment: DeploymentSettings) -> list[Finding]:
    """Check that the database answers and is at the migrations' head revision."""
    not_checked = _finding(
        "database.migrations", Status.WARN, "not checked: the database is not reachable"
    )
    try:
        repository = build_repository(environment)
    except MissingDependencyError as exc:
        return [_finding("database.reachable", Status.FAIL, exc.message), not_checked]
    import sqlalchemy as sa  # noqa: PLC0415 - present: build_repository needed it

    engine = repository.engine
    shown = engine.url.render_as_string(hide_password=True)
    try:
        missing = _missing_sqlite_file(engine)
        if missing is not None:
            return [
                _finding(
                    "database.reachable",
                    Status.FAIL,
                    f"the SQLite database file {missing} does not exist",
                    "run `helppet-recordings migrate` to create it, or fix DATABASE_URL",
                ),
                not_checked,
            ]
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            reachable = _finding("database.reachable", Status.OK, f"{shown} answers")
            return [reachable, _check_revision(connection)]
    except sa.exc.SQLAlchemyError as exc:
        cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig else exc
        return [
            _finding(
                "database.reachable",
                Status.FAIL,
                f"cannot use {shown}: {_first_line(cause)}",
                "check DATABASE_URL (host, port, database, user, password) and that the "
                "server runs and accepts connections from this host",
            ),
            not_checked,
        ]
    finally:
        repository.close()


def _missing_sqlite_file(engine: sa.Engine) -> str | None:
    """Return the path of a missing SQLite database file (connecting would create it)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    if url.database.startswith("file:") or url.query.get("uri"):
        return None  # URI filenames: SQLite decides
    path = Path(url.database)
    return None if path.exists() else str(path)


def _check_revision(connection: sa.Connection) -> Finding:
    import sqlalchemy as sa  # noqa: PLC0415

    from helppet_recordings.repositories.sqlalchemy import (  # noqa: PLC0415
        ALEMBIC_VERSION_TABLE,
        RECORDINGS_TABLE_NAME,
    )

    heads = head_revisions()
    current = current_revisions(connection)
    head_text = ", ".join(heads)
    if current == heads:
        return _finding(
            "database.migrations", Status.OK, f"the schema is at the head revision ({head_text})"
        )
    if not current:
        if sa.inspect(connection).has_table(RECORDINGS_TABLE_NAME):
            return _finding(
                "database.migrations",
                Status.WARN,
                f"a {RECORDINGS_TABLE_NAME} table exists but no revision is recorded in "
                f"{ALEMBIC_VERSION_TABLE}: doctor cannot tell whether it is current",
                "if the host application's own migrations manage the table, check them; "
                "otherwise run `helppet-recordings migrate`",
            )
        return _finding(
            "database.migrations",
            Status.FAIL,
            "the database has no recordings schema",
            "run `helppet-recordings migrate`",
        )
    current_text = ", ".join(current)
    if not all(known_revision(revision) for revision in current):
        return _finding(
            "database.migrations",
            Status.FAIL,
            f"the database is at revision {current_text}, which this version of the "
            "package does not know",
            "upgrade helppet-recordings to the version that migrated this database, or "
            "check that DATABASE_URL names this deployment's database",
        )
    return _finding(
        "database.migrations",
        Status.FAIL,
        f"the schema is at {current_text}, behind the head revision ({head_text})",
        "run `helppet-recordings migrate`",
    )


# ------------------------------------------------------------------------------ local storage


def check_local_storage(environment: DeploymentSettings) -> list[Finding]:
    """Check LocalStorage's directory, its signing secret and its public URL."""
    directory = environment.local_storage_dir
    findings: list[Finding] = []
    if directory.is_dir():
        findings.append(_finding("local.directory", Status.OK, f"{directory} exists"))
        findings.append(_check_writable(directory))
    else:
        what = "is not a directory" if directory.exists() else "does not exist"
        findings.append(
            _finding(
                "local.directory",
                Status.FAIL,
                f"{directory} {what}",
                "create it or mount the volume there (the app would start on an empty "
                "directory), or fix HELPPET_LOCAL_STORAGE_DIR",
            )
        )
        findings.append(
            _finding("local.writable", Status.WARN, "not checked: the directory is missing")
        )
    source = environment.local_secret_source
    if source is None:
        findings.append(
            _finding(
                "local.secret",
                Status.FAIL,
                "no signing secret: upload tickets and download URLs cannot be signed",
                "set HELPPET_LOCAL_STORAGE_SECRET to a long random value, the same in every "
                "process serving this directory",
            )
        )
    elif source == "HELPPET_JWT_SECRET":
        findings.append(
            _finding("local.secret", Status.OK, "set (derived from HELPPET_JWT_SECRET)")
        )
    else:
        findings.append(_finding("local.secret", Status.OK, f"set ({source})"))
    findings.append(_check_public_url(environment.public_base_url))
    return findings


def _check_writable(directory: Path) -> Finding:
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".doctor-", delete=True) as probe:
            probe.write(b"ok")
            probe.flush()
    except OSError as exc:
        return _finding(
            "local.writable",
            Status.FAIL,
            f"cannot write in {directory}: {exc.strerror or type(exc).__name__}",
            "give the user the app runs as write access to the directory",
        )
    return _finding("local.writable", Status.OK, f"{directory} is writable")


def _check_public_url(base_url: str) -> Finding:
    parts = urllib.parse.urlsplit(base_url)
    host = parts.hostname or ""
    loopback = host == "localhost"
    with contextlib.suppress(ValueError):
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    if parts.scheme == "https" or loopback:
        return _finding("local.public_url", Status.OK, f"uploads and downloads go to {base_url}")
    return _finding(
        "local.public_url",
        Status.WARN,
        f"{base_url} is plain HTTP: recordings would cross the network unencrypted",
        "serve the app behind TLS and set HELPPET_PUBLIC_BASE_URL to its https:// URL",
    )


# ------------------------------------------------------------------------------ S3


@attrs.frozen(kw_only=True)
class BucketProbe:
    """What one signed request to the bucket showed: findings, and the server's Date."""

    findings: list[Finding]
    reachable: bool
    server_date: str | None = None
    sent_at: float = 0.0


def check_s3(environment: DeploymentSettings, *, clock: Clock = time.time) -> list[Finding]:
    """Check credentials, the bucket and its configuration."""
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
            for name in ("s3.encryption", "s3.cors", "s3.lifecycle", "s3.public_access")
        ]
        return findings
    findings.append(_check_encryption(client, environment))
    cors = read_part(client, expect.bucket, "cors")
    findings.append(cors.unavailable or evaluate_cors(cors.document, expect)[0])
    lifecycle = read_part(client, expect.bucket, "lifecycle")
    findings.append(lifecycle.unavailable or evaluate_lifecycle(lifecycle.document, expect)[0])
    public = read_part(client, expect.bucket, "public_access")
    findings.append(public.unavailable or evaluate_public_access(public.document)[0])
    return findings


def probe_bucket(
    client: S3Client, expect: BucketExpectations, clock: Clock = time.time
) -> BucketProbe:
    """List one key under the prefix: proves endpoint, credentials, bucket and s3:ListBucket."""
    import boto3  # noqa: PLC0415
    import botocore.exceptions  # noqa: PLC0415

    endpoint = client.meta.endpoint_url
    credentials = boto3.session.Session().get_credentials()
    source = getattr(credentials, "method", None) or "unknown source"
    credentials_ok = _finding(
        "s3.credentials", Status.OK, f"the server accepted the credentials (from {source})"
    )
    credentials_unchecked = _finding(
        "s3.credentials", Status.WARN, "not checked: the endpoint could not be reached"
    )
    started = clock()
    try:
        response = client.list_objects_v2(
            Bucket=expect.bucket, Prefix=expect.recordings_prefix, MaxKeys=1
        )
    except botocore.exceptions.NoCredentialsError:
        return BucketProbe(
            findings=[
                _finding(
                    "s3.credentials",
                    Status.FAIL,
                    "no AWS credentials found",
                    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run "
                    "with an instance or task role",
                ),
                _finding("s3.bucket", Status.WARN, "not checked: no credentials"),
            ],
            reachable=False,
        )
    except botocore.exceptions.ClientError as exc:
        headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return BucketProbe(
            findings=_client_error_findings(exc, expect, credentials_ok, headers),
            reachable=False,
            server_date=headers.get("date"),
            sent_at=(started + clock()) / 2,
        )
    except botocore.exceptions.BotoCoreError as exc:
        return BucketProbe(
            findings=[
                credentials_unchecked,
                _finding(
                    "s3.bucket",
                    Status.FAIL,
                    f"cannot reach {endpoint}: {_first_line(exc)}",
                    "check AWS_ENDPOINT_URL (or AWS_REGION), DNS, proxies and firewalls "
                    "between this host and the storage server",
                ),
            ],
            reachable=False,
        )
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return BucketProbe(
        findings=[
            credentials_ok,
            _finding(
                "s3.bucket",
                Status.OK,
                f"bucket {expect.bucket} at {endpoint} can be listed with these credentials",
            ),
        ],
        reachable=True,
        server_date=headers.get("date"),
        sent_at=(started + clock()) / 2,
    )


def _client_error_findings(
    exc: Any, expect: BucketExpectations, credentials_ok: Finding, headers: dict[str, str]
) -> list[Finding]:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
    bucket = expect.bucket
    unchecked = _finding("s3.bucket", Status.WARN, "not checked: the credentials were refused")
    refused = {
        "InvalidAccessKeyId": (
            "the server does not know the access key id",
            "check AWS_ACCESS_KEY_ID (and that it belongs to this account or server)",
        ),
        "SignatureDoesNotMatch": (
            "the secret access key does not match the access key id",
            "check AWS_SECRET_ACCESS_KEY",
        ),
        "InvalidToken": (
            "the session token is not valid",
            "refresh AWS_SESSION_TOKEN, or unset it for long-term keys",
        ),
        "ExpiredToken": (
            "the session token has expired",
            "refresh the temporary credentials (AWS_SESSION_TOKEN)",
        ),
    }
    if code in refused:
        message, fix = refused[code]
        return [_finding("s3.credentials", Status.FAIL, f"{message} ({code})", fix), unchecked]
    if code == "RequestTimeTooSkewed":
        return [
            _finding("s3.credentials", Status.WARN, "not checked: the request was refused"),
            _finding(
                "s3.bucket",
                Status.FAIL,
                "the server refused the request: this host's clock is too far off",
                "synchronise the clock (NTP)",
            ),
        ]
    if code in {"NoSuchBucket", "404"}:
        finding = _finding(
            "s3.bucket",
            Status.FAIL,
            f"bucket {bucket} does not exist",
            "create it (then run `helppet-recordings bucket-setup --apply`), or fix S3_BUCKET_NAME",
        )
    elif code in {"AuthorizationHeaderMalformed", "PermanentRedirect", "301"}:
        region = headers.get("x-amz-bucket-region")
        finding = _finding(
            "s3.bucket",
            Status.FAIL,
            f"bucket {bucket} is in another region" + (f" ({region})" if region else ""),
            f"set AWS_REGION={region}" if region else "set AWS_REGION to the bucket's region",
        )
    elif code in {"AccessDenied", "AllAccessDisabled", "403"}:
        finding = _finding(
            "s3.bucket",
            Status.FAIL,
            f"access to bucket {bucket} was denied ({code})",
            "grant the backend's role s3:ListBucket on the bucket and s3:GetObject, "
            "s3:PutObject, s3:DeleteObject on its objects",
        )
    else:
        finding = _finding(
            "s3.bucket",
            Status.FAIL,
            f"listing bucket {bucket} failed ({code or status})",
            "see the storage server's documentation for this error code",
        )
    return [credentials_ok, finding]


def _check_signature(client: S3Client, *, reachable: bool) -> Finding:
    version = getattr(client.meta.config, "signature_version", None)
    if version != "s3v4":
        return _finding(
            "s3.signature",
            Status.FAIL,
            f"the client signs with {version!r}, not SigV4",
            "build S3Storage's client with botocore Config(signature_version='s3v4')",
        )
    if reachable:
        return _finding(
            "s3.signature", Status.OK, "requests and upload policies are signed with SigV4"
        )
    return _finding(
        "s3.signature",
        Status.WARN,
        "the client signs with SigV4, but no signed request got through to confirm it",
    )


def _check_clock(probe: BucketProbe) -> Finding:
    if probe.server_date is None:
        return _finding("s3.clock", Status.WARN, "not checked: the server sent no Date header")
    try:
        server = email.utils.parsedate_to_datetime(probe.server_date).timestamp()
    except (TypeError, ValueError):
        return _finding(
            "s3.clock", Status.WARN, "not checked: the server's Date header cannot be read"
        )
    # The Date header is truncated to whole seconds: its middle is half a second later.
    skew = server + 0.5 - probe.sent_at
    direction = "behind" if skew > 0 else "ahead of"
    text = f"this host's clock is {abs(skew):.0f} s {direction} the server's"
    if abs(skew) > CLOCK_SKEW_FAIL_SECONDS:
        return _finding(
            "s3.clock",
            Status.FAIL,
            text + f" (over {CLOCK_SKEW_FAIL_SECONDS} s: S3 refuses such signatures)",
            "synchronise the clock (NTP)",
        )
    if abs(skew) > CLOCK_SKEW_WARN_SECONDS:
        return _finding(
            "s3.clock",
            Status.WARN,
            text + " (upload URLs expire early or late by as much)",
            "synchronise the clock (NTP)",
        )
    return _finding("s3.clock", Status.OK, text)


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
