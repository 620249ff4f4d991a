"""An accessibility audit of a Playwright page with axe-core (from npm), failing on "serious" and "critical".

axe-core is installed on first use with npm into ``tests/artifacts/axe/`` (ignored by git), pinned to
``AXE_VERSION``; later runs reuse it. ``audit(page)`` injects ``axe.min.js`` and runs ``axe.run()``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.ui.conftest import ARTIFACTS

AXE_VERSION = "4.11.4"
AXE_DIR = ARTIFACTS / "axe"
AXE_SCRIPT = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")


def axe_script() -> Path:
    """The path of ``axe.min.js``, installing axe-core with npm the first time."""
    if AXE_SCRIPT.is_file() and json.loads((AXE_SCRIPT.parent / "package.json").read_text())["version"] == AXE_VERSION:
        return AXE_SCRIPT
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is missing: install Node.js (Debian: apt-get install npm) for the accessibility audit")
    AXE_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run([npm, "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(AXE_DIR),
                    f"axe-core@{AXE_VERSION}"], check=True, capture_output=True, timeout=300)
    return AXE_SCRIPT


def violations(page) -> list[dict]:
    """axe-core's findings on ``page`` at "serious" or "critical" impact."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(axe_script()))
    result = page.evaluate("async () => await axe.run(document)")
    return [finding for finding in result["violations"] if finding["impact"] in BLOCKING]


def describe(findings: list[dict]) -> str:
    """The findings, one line per rule with its help text and the first offending elements."""
    lines = []
    for finding in findings:
        lines.append(f"{finding['impact']}: {finding['id']} ({finding['help']})")
        for node in finding["nodes"][:5]:
            checks = node["any"] + node["all"] + node["none"]
            lines.append(f"  at {' '.join(map(str, node['target']))}: {checks[0]['message'] if checks else ''}"
                         f" ({node['html'][:160]})")
    return "\n".join(lines)


def assert_accessible(page, where: str) -> None:
    """Fail with the findings when ``page`` has serious or critical accessibility problems."""
    findings = violations(page)
    assert not findings, f"accessibility problems on {where}:\n{describe(findings)}"
