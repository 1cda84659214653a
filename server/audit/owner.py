"""Which process owns an in-flight call, and whether that process is still alive.

A call's intent, quota reservation and idempotency claim carry the owner's identity so that, after
a crash, a restarted server (or a sibling process on the same host) can tell a call that is still
running from one whose process died: only the latter is reconciled. The identity is the pid plus
the process start time, so a recycled pid is not mistaken for the dead owner.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

__all__ = ["current_owner", "owner_alive"]


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The fields after the parenthesised command name (which may itself hold spaces): state first.
    return stat.rpartition(")")[2].split()


def _start_time(pid: int) -> str:
    fields = _stat_fields(pid)
    return fields[19] if fields is not None and len(fields) > 19 else "?"


@functools.cache
def _owner_for(pid: int) -> str:
    return f"{pid}:{_start_time(pid)}"


_current: str | None = None


def _forget_owner() -> None:
    global _current
    _current = None


os.register_at_fork(after_in_child=_forget_owner)


def current_owner() -> str:
    """This process's identity (recomputed after a fork, since the pid changes)."""
    global _current
    owner = _current
    if owner is None:
        owner = _current = _owner_for(os.getpid())
    return owner


def owner_alive(owner: str) -> bool:
    """Whether the process named by `owner` is still running (same host)."""
    pid_text, _, started = owner.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid == os.getpid():
        return owner == current_owner()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    fields = _stat_fields(pid)
    if fields is None:
        return started == "?"  # no /proc: trust kill(0)
    if fields[0] in ("Z", "X"):
        return False  # killed, not yet reaped by its parent
    return started == "?" or (len(fields) > 19 and fields[19] == started)
