"""Rebuilding OpenAPI sources in a running server: on a spec file change, or on `toolkiln reload`.

`toolkiln reload` reaches running servers through the operating system, not the network, so no
new endpoint or tool exists to abuse: each `toolkiln serve` with OpenAPI sources writes
`<data_dir>/run/serve-<pid>.pid` (directory mode 0700) and rebuilds its sources on SIGHUP. Only
the same user (or root) can signal the process. Before signalling, `signal_servers` checks that
the pid is alive and is a `toolkiln serve` (via /proc where there is one), so a stale file whose
pid was recycled never gets a signal; stale files are removed.

Both triggers land on one background thread, which does the rebuild (the event loop keeps
serving meanwhile; the registry swap is atomic and thread-safe).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import structlog

from tools.openapi.source import OpenApiSource

__all__ = ["RUN_DIR_NAME", "Reloader", "pid_files", "signal_servers"]

RUN_DIR_NAME = "run"
log = structlog.get_logger("toolkiln.openapi.reload")


class Reloader:
    """Watches the sources' spec files and answers SIGHUP, rebuilding on one worker thread."""

    def __init__(
        self, sources: Sequence[OpenApiSource], *, run_dir: Path | None = None, poll_interval_s: float = 1.0
    ) -> None:
        self.sources = list(sources)
        self.run_dir = run_dir
        self.poll_interval_s = poll_interval_s
        self.pid_file: Path | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._previous_handler: Any = None
        # Set after every completed reload round (requested or on a file change).
        self.round_done = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="openapi-reload", daemon=True)
        self._thread.start()
        if hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGHUP, self._on_signal)
            # The pid file is the promise that SIGHUP is handled here; never write it otherwise.
            self._write_pid_file()

    def request_reload(self) -> None:
        """Rebuild every source now (from any thread, or a signal handler)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._previous_handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, self._previous_handler)
            self._previous_handler = None
        if self.pid_file is not None:
            with contextlib.suppress(OSError):
                self.pid_file.unlink()
            self.pid_file = None

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self._wake.set()

    def _write_pid_file(self) -> None:
        if self.run_dir is None:
            return
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = self.run_dir / f"serve-{os.getpid()}.pid"
            path.write_text(f"{os.getpid()}\n", encoding="ascii")
        except OSError as exc:
            log.warning("reload_pid_file_not_written", error=str(exc))
            return
        self.pid_file = path

    def _run(self) -> None:
        watched = [s for s in self.sources if s.settings.watch and s.spec_path is not None]
        while not self._stop.is_set():
            requested = self._wake.wait(timeout=self.poll_interval_s if watched else None)
            if self._stop.is_set():
                return
            if requested:
                self._wake.clear()
                log.info("openapi_reload_requested", sources=[s.name for s in self.sources])
                for source in self.sources:
                    source.reload()
                self.round_done.set()
                continue
            changed = [source for source in watched if source.changed_on_disk()]
            for source in changed:
                log.info("openapi_spec_changed", source=source.name, spec=str(source.spec_path))
                source.reload()
            if changed:
                self.round_done.set()


def pid_files(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("serve-*.pid")) if run_dir.is_dir() else []


def _is_toolkiln_serve(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: never ours to signal
    cmdline = Path(f"/proc/{pid}/cmdline")
    if sys.platform.startswith("linux") and cmdline.exists():
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            return False
        return b"serve" in argv and any(b"toolkiln" in part or part == b"server" for part in argv)
    return True


def signal_servers(run_dir: Path) -> tuple[list[int], list[Path]]:
    """SIGHUP every live `toolkiln serve` registered in `run_dir`; returns (pids, stale files removed)."""
    signalled: list[int] = []
    stale: list[Path] = []
    if not hasattr(signal, "SIGHUP"):
        return signalled, stale  # no SIGHUP on this platform: servers there watch their files only
    for path in pid_files(run_dir):
        try:
            pid = int(path.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            pid = -1
        if pid <= 0 or not _is_toolkiln_serve(pid):
            with contextlib.suppress(OSError):
                path.unlink()
            stale.append(path)
            continue
        os.kill(pid, signal.SIGHUP)
        signalled.append(pid)
    return signalled, stale
