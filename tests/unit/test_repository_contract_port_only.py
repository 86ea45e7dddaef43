"""The shipped repository contract passes a repository that implements the port only."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

from helppet_recordings.audited_writes import stores_audit_atomically
from tests.support.port_only import PortOnlyRepository

ROOT = Path(__file__).resolve().parents[2]

CONTRACT_RUN = textwrap.dedent(
    """
    import pytest

    from helppet_recordings.testing.repository_contract import RepositoryContract
    from tests.support.port_only import PortOnlyRepository


    class TestPortOnly(RepositoryContract):
        @pytest.fixture
        def repository(self):
            return PortOnlyRepository()
    """
)


def _outcomes(report: Path) -> dict[str, tuple[str, str]]:
    """Each test's name and (outcome, message) from a JUnit XML report."""
    outcomes: dict[str, tuple[str, str]] = {}
    for case in ET.parse(report).iter("testcase"):  # noqa: S314 - our own report
        found = [child for child in case if child.tag in {"skipped", "failure", "error"}]
        outcome = found[0].tag if found else "passed"
        message = found[0].get("message", "") if found else ""
        outcomes[case.get("name", "")] = (outcome, message)
    return outcomes


def test_a_port_only_repository_passes_and_its_skips_say_why(tmp_path: Path) -> None:
    """Every case passes but the ``[atomic]`` ones, each skipped with the reason in its id."""
    assert not stores_audit_atomically(PortOnlyRepository())
    module = tmp_path / "test_port_only.py"
    module.write_text(CONTRACT_RUN)
    report = tmp_path / "report.xml"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-W", "error"]
    result = subprocess.run(
        [*command, f"--junitxml={report}", str(module)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    outcomes = _outcomes(report)
    failed = {name: o for name, o in outcomes.items() if o[0] in {"failure", "error"}}
    assert not failed, result.stdout[-3000:]
    assert result.returncode == 0, result.stdout[-3000:]
    skipped = {name: message for name, (o, message) in outcomes.items() if o == "skipped"}
    atomic = {name for name in outcomes if "[atomic" in name}
    after = {name for name in outcomes if "[entry after the change" in name}
    assert set(skipped) == atomic
    assert len(atomic) == len(after) == 6
    assert all("does not declare AuditedWrites" in message for message in skipped.values())
    assert all(outcomes[name][0] == "passed" for name in after)
