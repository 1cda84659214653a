"""The suite's canary credential (THREATS C1) and the check that it leaked nowhere.

`canary` is the upstream credential every credential test stores and injects; `leak_watch`
takes what a test saw (server log lines, tools/list, tool results, metrics, reprs) for the
final scan. After the run, the canary — raw, URL-encoded, or inside any base64 — must appear in
no captured output, log record or traceback of any test, in nothing a test handed to
`leak_watch`, and in no file the run left under its temporary directory (audit and state
databases, logs, data dirs). A hit fails the session and names where it was.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

CANARY = f"tkcanary-{secrets.token_hex(12)}"
_MAX_FILE_BYTES = 64 * 1024 * 1024


def needles(secret: str) -> list[bytes]:
    """Byte strings whose presence proves `secret` leaked: itself, URL-encoded, and the part of
    its base64 that is the same whatever bytes come before or after it (three alignments)."""
    raw = secret.encode()
    found = {raw, quote(secret, safe="").encode()}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw + b"\0\0")
        first = -(-8 * shift // 6)  # the first character made only of the secret's bits
        last = (8 * (shift + len(raw))) // 6  # one past the last such character
        found.add(encoded[first:last])
    return sorted(found)


def find_leaks(secret: str, texts: Iterable[tuple[str, str | bytes]]) -> list[str]:
    """The labels of `texts` that contain `secret` in any form."""
    patterns = needles(secret)
    hits = []
    for label, text in texts:
        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
        if any(pattern in data for pattern in patterns):
            hits.append(label)
    return hits


def files_under(root: Path) -> Iterator[tuple[str, bytes]]:
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            try:
                if path.is_symlink() or path.stat().st_size > _MAX_FILE_BYTES:
                    continue
                yield str(path), path.read_bytes()
            except OSError:
                continue


class LeakWatch:
    """What tests saw, kept for the scan at the end of the session."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.seen: list[tuple[str, str]] = []
        self.reports: list[tuple[str, str]] = []
        self.basetemp: Path | None = None

    def observe(self, label: str, value: Any) -> None:
        """Keep `value` (text, or anything JSON- or repr-able) for the final scan."""
        if not isinstance(value, str):
            try:
                value = json.dumps(value, default=repr)
            except (TypeError, ValueError):
                value = repr(value)
        self.seen.append((label, value))

    def leaks(self) -> list[str]:
        texts: list[tuple[str, str | bytes]] = [*self.seen, *self.reports]
        if self.basetemp is not None and self.basetemp.exists():
            texts += list(files_under(self.basetemp))
        return find_leaks(self.secret, texts)


_WATCH = LeakWatch(CANARY)


@pytest.fixture(scope="session")
def leak_watch(tmp_path_factory: pytest.TempPathFactory) -> LeakWatch:
    _WATCH.basetemp = tmp_path_factory.getbasetemp()
    return _WATCH


@pytest.fixture(scope="session")
def canary(leak_watch: LeakWatch) -> str:
    """The upstream credential of the whole suite; it must never be seen outside the upstream."""
    return CANARY


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Captured stdout/stderr, log records and the traceback of every phase of every test.
    sections = [(f"{report.nodeid} [{report.when}] {name}", text) for name, text in report.sections]
    if report.longrepr is not None:
        sections.append((f"{report.nodeid} [{report.when}] traceback", report.longreprtext))
    for label, text in sections:
        if find_leaks(CANARY, [(label, text)]):
            _WATCH.reports.append((label, text))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _WATCH.basetemp is None and not _WATCH.reports:
        return  # no credential test ran
    leaks = _WATCH.leaks()
    if leaks:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = ["THREATS C1: the canary credential leaked into:", *(f"  {label}" for label in leaks)]
        if reporter is not None:
            reporter.write_line("\n".join(lines), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
