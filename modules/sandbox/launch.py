"""The command line that starts one worker in a given tier.

Both tiers drop to a distinct, otherwise unused uid with `setpriv` first: `RLIMIT_NPROC` binds
only a non-root uid, and a process of another uid can neither read the server's `/proc/<pid>/mem`
or `environ` nor signal it. The full tier then enters bubblewrap (new user, PID, network, IPC and
UTS namespaces; read-only `/usr`; a size-capped private tmpfs; an empty environment). The worker itself applies
rlimits, Landlock and seccomp before the module's code is imported (`toolkiln_worker.confine`).

Directories are handed over as open fds rather than paths: the server's data dir may sit below a
directory the worker's uid cannot traverse (mode 0700), and an fd needs no path walk.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from modules.sandbox.spec import WorkerSpec

__all__ = ["SDK_DIR", "UID_BASE", "Launch", "Tier", "fresh_uid", "worker_command"]

Tier = Literal["full", "fallback"]

SDK_DIR = Path(__file__).resolve().parent.parent / "sdk"
# A high range no distribution hands out, wide enough that two servers on one host rarely meet.
UID_BASE = 1_800_000_000
_UID_SPAN = 1 << 24
_ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def fresh_uid() -> int:
    return UID_BASE + secrets.randbelow(_UID_SPAN)


@dataclass(frozen=True, slots=True)
class Launch:
    """Everything `worker_command` needs besides the spec: the fds the child inherits."""

    tier: Tier
    uid: int
    channel_fd: int
    module_fd: int
    sdk_fd: int
    interpreter: str


def _python_args(interpreter: str, sdk: str, config: dict[str, Any]) -> list[str]:
    # -I: no user site, no environment, no script dir on sys.path; -S: no site hooks at all.
    return [interpreter, "-I", "-S", "-B", "-X", "utf8", f"{sdk}/run_worker.py", json.dumps(config)]


def _root_links() -> list[str]:
    args: list[str] = []
    for name in _ROOT_LINKS:
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            args += ["--ro-bind", str(path), f"/{name}"]
    return args


def worker_command(spec: WorkerSpec, launch: Launch) -> list[str]:
    """argv for the worker of `spec`; the caller passes `launch`'s fds to the child."""
    limits = spec.limits
    setpriv = shutil.which("setpriv") or "setpriv"
    drop = [setpriv, f"--reuid={launch.uid}", f"--regid={launch.uid}", "--clear-groups", "--no-new-privs"]
    config: dict[str, Any] = {
        "channel_fd": launch.channel_fd,
        "entry": spec.entry,
        "name": spec.label,
        "limits": {
            "cpu_s": limits.cpu_s,
            "memory_mb": limits.memory_mb,
            "processes": limits.processes,
            "open_files": limits.open_files,
            "file_size_mb": limits.file_size_mb,
            "result_kb": limits.result_kb,
            "log_kb_per_call": limits.log_kb_per_call,
        },
    }
    # Both tiers reach the module and the worker library through the inherited fds (bubblewrap's
    # --ro-bind-fd resolves the fd as the sandbox uid after entering the namespaces, and fails when
    # an ancestor directory is private); the worker's Landlock rules make them read-only.
    config.update(module=f"/proc/self/fd/{launch.module_fd}", sdk=f"/proc/self/fd/{launch.sdk_fd}", scratch=None)
    if launch.tier == "fallback":
        # No mount namespace, so no private tmpfs to bound writes: no writable place at all.
        return [*drop, *_python_args(launch.interpreter, config["sdk"], config)]
    scratch = "/tmp"  # noqa: S108 - the sandbox's own private tmpfs, not the host's
    config.update(scratch=scratch)
    bwrap = shutil.which("bwrap") or "bwrap"
    sandbox = [
        bwrap,
        "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
        "--unshare-cgroup-try", "--disable-userns",
        "--die-with-parent", "--new-session", "--clearenv",
        "--uid", str(launch.uid), "--gid", str(launch.uid), "--hostname", "module",
        "--ro-bind", "/usr", "/usr", *_root_links(),
        "--proc", "/proc", "--dev", "/dev",
        "--size", str(limits.file_size_mb * 1024 * 1024), "--tmpfs", scratch,
        "--remount-ro", "/",
        "--",
    ]  # fmt: skip
    return [*drop, *sandbox, *_python_args(launch.interpreter, config["sdk"], config)]
