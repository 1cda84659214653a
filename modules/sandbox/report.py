"""Which sandbox tier this host offers, decided once at start-up and printed by `toolkiln doctor`.

- `full`: a distinct uid, bubblewrap namespaces, rlimits, Landlock and seccomp;
- `fallback`: the same without namespaces (no bubblewrap, or user namespaces are disabled);
- `refused`: neither is possible, and modules are not run at all.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["SandboxReport", "TierName", "landlock_abi", "sandbox_report"]

TierName = Literal["full", "fallback", "refused"]

_LANDLOCK_CREATE_RULESET = 444
_PROBE_TIMEOUT_S = 10.0
# The worker runs on a system interpreter under /usr: it needs nothing but the standard library,
# and /usr is what the sandbox exposes read-only.
_INTERPRETERS = ("/usr/bin/python3", "/usr/local/bin/python3")


@dataclass(frozen=True, slots=True)
class SandboxReport:
    tier: TierName
    interpreter: str | None
    landlock_abi: int
    checks: tuple[tuple[str, bool, str], ...]  # (what, ok, detail)

    @property
    def problems(self) -> list[str]:
        return [f"{what}: {detail}" for what, ok, detail in self.checks if not ok]

    def lines(self) -> list[str]:
        """Human-readable lines for `toolkiln doctor`."""
        head = {
            "full": "module sandbox: full (distinct uid, bubblewrap namespaces, rlimits, Landlock, seccomp)",
            "fallback": "module sandbox: fallback (distinct uid, rlimits, Landlock, seccomp; no namespaces)",
            "refused": "module sandbox: refused (modules will not run on this host)",
        }[self.tier]
        return [head] + [f"  [{'ok' if ok else '--'}] {what}: {detail}" for what, ok, detail in self.checks]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return 0
    libc.syscall.restype = ctypes.c_long
    version = int(libc.syscall(_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), 1))
    return max(version, 0)


def _interpreter() -> tuple[str | None, str]:
    for candidate in _INTERPRETERS:
        if not os.access(candidate, os.X_OK):
            continue
        try:
            out = subprocess.run(  # noqa: S603 - a fixed interpreter path, no shell
                [candidate, "-I", "-S", "-c", "import sys; print(sys.version_info >= (3, 11))"],
                capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S, env={}, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.stdout.strip() == "True":
            return candidate, candidate
    return None, "no Python >= 3.11 under /usr (install python3)"


def _probe_bwrap(interpreter: str) -> tuple[bool, str]:
    from modules.sandbox.launch import SDK_DIR, Launch, fresh_uid, worker_command
    from modules.sandbox.spec import WorkerSpec

    if shutil.which("bwrap") is None:
        return False, "bubblewrap is not installed (apt-get install bubblewrap)"
    fds = (os.open(SDK_DIR, os.O_RDONLY | os.O_DIRECTORY), os.open(SDK_DIR, os.O_RDONLY | os.O_DIRECTORY))
    try:
        spec = WorkerSpec(name="probe", version="0", module_dir=SDK_DIR, entry="-")
        argv = worker_command(spec, Launch("full", fresh_uid(), 0, fds[0], fds[1], interpreter))
        probe = [*argv[: argv.index("--") + 1], interpreter, "-I", "-S", "-c", "pass"]
        result = subprocess.run(  # noqa: S603 - our own argv, no shell
            probe, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S, env={}, pass_fds=fds, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"bubblewrap probe failed: {exc}"
    finally:
        for fd in fds:
            os.close(fd)
    if result.returncode != 0:
        return False, f"bubblewrap cannot create namespaces here: {result.stderr.strip()[:300]}"
    return True, "user, PID, network, IPC and UTS namespaces"


@functools.cache
def sandbox_report() -> SandboxReport:
    """Probe the host once (a few tens of milliseconds) and remember the answer."""
    checks: list[tuple[str, bool, str]] = []
    linux = platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")
    checks.append(("platform", linux, f"{platform.system()} {platform.machine()} (needs Linux x86_64)"))
    abi = landlock_abi() if linux else 0
    checks.append(("landlock", abi >= 1, f"ABI {abi}" if abi else "not enabled in this kernel"))
    seccomp = linux and Path("/proc/self/status").read_text().find("Seccomp:") >= 0
    checks.append(("seccomp", seccomp, "filter mode" if seccomp else "not available"))
    root = os.geteuid() == 0
    setpriv = shutil.which("setpriv") is not None
    uid_detail = "setpriv as root" if root and setpriv else "needs root and setpriv (util-linux) to switch uid"
    checks.append(("distinct uid", root and setpriv, uid_detail))
    interpreter, detail = _interpreter() if linux else (None, "no supported platform")
    checks.append(("interpreter", interpreter is not None, detail))
    base = all(ok for _, ok, _ in checks)
    if not base or interpreter is None:
        return SandboxReport("refused", interpreter, abi, tuple(checks))
    namespaces, why = _probe_bwrap(interpreter)
    checks.append(("namespaces", namespaces, why))
    return SandboxReport("full" if namespaces else "fallback", interpreter, abi, tuple(checks))
