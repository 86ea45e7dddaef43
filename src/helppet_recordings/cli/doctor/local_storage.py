"""LocalStorage checks: directory, writable, signing secret, public URL (``local.*``)."""

from __future__ import annotations

import contextlib
import ipaddress
import tempfile
import urllib.parse
from pathlib import Path

from helppet_recordings.cli.doctor._common import _finding
from helppet_recordings.cli.findings import Finding, Status
from helppet_recordings.environment import DeploymentSettings


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
