"""The official MCP conformance suite (npm `@modelcontextprotocol/conformance`) against toolkiln.

Three runs against one `toolkiln serve --transport http --conformance-fixtures`: every scenario
of the 2025-11-25 and of the 2026-07-28 revision passes with no failure and no warning, and
the bare `--suite all` fails only what tests/conformance/expected-failures.yml lists (the
runner itself rejects a stale entry).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import CLIENTS_DIR, RunningServer, node_env

BASELINE = Path(__file__).with_name("expected-failures.yml")
_RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")
_NOT_CLEAN = ("FAILURE", "WARNING")

pytestmark = [pytest.mark.npm, pytest.mark.slow]


@dataclass
class SuiteRun:
    returncode: int
    output: str
    seconds: float
    checks: dict[str, list[dict[str, object]]]

    @property
    def summary(self) -> str:
        start = self.output.find("=== SUMMARY ===")
        return self.output[start:] if start >= 0 else self.output[-6000:]

    def unclean(self) -> dict[str, list[str]]:
        """Scenario → the ids of its failed or warned checks."""
        found = {
            scenario: [f"{check['status']} {check['id']}" for check in checks if check["status"] in _NOT_CLEAN]
            for scenario, checks in self.checks.items()
        }
        return {scenario: bad for scenario, bad in found.items() if bad}

    def explain(self) -> str:
        """The summary plus every failed or warned check with its message and details."""
        lines = [self.summary]
        for scenario, checks in sorted(self.checks.items()):
            for check in checks:
                if check["status"] in _NOT_CLEAN:
                    details = json.dumps(check.get("details"))[:800]
                    lines.append(f"{scenario}: {check['status']} {check['id']}: {check.get('errorMessage')} {details}")
        return "\n".join(lines)


def run_suite(server: RunningServer, out_dir: Path, *args: str) -> SuiteRun:
    command = ["conformance", "server", "--url", server.url, "--suite", "all", "-o", str(out_dir), *args]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=540, env=node_env(), cwd=CLIENTS_DIR)
    seconds = time.monotonic() - started
    checks: dict[str, list[dict[str, object]]] = {}
    for path in out_dir.glob("*/checks.json"):
        match = _RESULT_DIR.match(path.parent.name)
        assert match is not None, f"unexpected result directory {path.parent.name}"
        checks[match["scenario"]] = json.loads(path.read_text())
    run = SuiteRun(done.returncode, done.stdout + done.stderr, seconds, checks)
    print(f"conformance {' '.join(args)}: {len(checks)} scenarios in {seconds:.1f} s\n{run.summary}")
    return run


def baseline_entries() -> list[str]:
    entries = re.findall(r"^\s*-\s*([\w.-]+)\s*#\s*\S", BASELINE.read_text(), flags=re.MULTILINE)
    assert entries, "the baseline lists no scenario (or an entry lacks its reason)"
    return entries


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("spec_version", "scenario_count"),
    [pytest.param("2025-11-25", 33, id="2025-11-25"), pytest.param("2026-07-28", 40, id="2026-07-28")],
)
def test_every_scenario_of_the_revision_passes_without_warnings(
    fixture_server: RunningServer, tmp_path: Path, spec_version: str, scenario_count: int
) -> None:
    run = run_suite(fixture_server, tmp_path, "--spec-version", spec_version)

    assert run.returncode == 0, run.explain()
    assert len(run.checks) == scenario_count, sorted(run.checks)
    assert run.unclean() == {}, run.explain()


@pytest.mark.timeout(600)
def test_bare_suite_fails_only_the_baselined_tasks_extension_scenarios(
    fixture_server: RunningServer, tmp_path: Path
) -> None:
    run = run_suite(fixture_server, tmp_path, "--expected-failures", str(BASELINE))

    assert run.returncode == 0, run.explain()
    expected = baseline_entries()
    assert all(entry.startswith("tasks-") for entry in expected), expected
    assert sorted(run.unclean()) == sorted(expected), run.explain()
    skills = [scenario for scenario in run.checks if scenario.startswith("sep-2640-skills-")]
    assert len(skills) == 3, sorted(run.checks)
