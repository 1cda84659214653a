"""Confine this process before any module code runs: rlimits, then Landlock, then seccomp.

Raw system calls through ctypes (x86_64 numbers) keep the worker free of third-party packages.
ctypes is then dropped and its re-import refused: a module has no business calling libc, and if it
found a way anyway, seccomp and Landlock still bind it.
"""

from __future__ import annotations

import os
import resource
import struct
import sys
from collections.abc import Sequence

__all__ = ["SandboxRefusal", "apply", "block_imports"]

# x86_64 system call numbers.
_SYS = {
    "landlock_create_ruleset": 444,
    "landlock_add_rule": 445,
    "landlock_restrict_self": 446,
}
# Creating sockets, running programs, reading or steering other processes, new processes (threads
# stay allowed), namespaces, mounts, kernel keyrings and modules, io_uring (which would run socket
# operations outside the filter), BPF, perf, handle-based opens. Any of these kills the worker.
_DENIED = {
    "socket": 41, "socketpair": 53, "execve": 59, "execveat": 322,
    "fork": 57, "vfork": 58, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
    "kill": 62, "tkill": 200, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297,
    "pidfd_open": 434, "pidfd_send_signal": 424, "pidfd_getfd": 438,
    "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "mount_setattr": 442, "open_by_handle_at": 304, "name_to_handle_at": 303,
    "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321, "perf_event_open": 298,
    "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "init_module": 175, "finit_module": 313, "delete_module": 176, "kexec_load": 246,
    "kexec_file_load": 320, "reboot": 169, "swapon": 167, "swapoff": 168, "acct": 163,
    "personality": 135, "syslog": 103, "quotactl": 179,
}  # fmt: skip
_CLONE, _CLONE3, _CLONE_THREAD = 56, 435, 0x00010000
_AUDIT_ARCH_X86_64 = 0xC000003E
_RET_KILL_PROCESS, _RET_ALLOW, _RET_ERRNO = 0x80000000, 0x7FFF0000, 0x00050000
_ENOSYS = 38
_LD_W_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06

# Landlock filesystem rights (ABI 1..5), network rights (ABI 4) and scopes (ABI 6).
_FS_EXECUTE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 2, 1 << 3
_FS_RIGHTS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1}
_FS_ALL_V5 = (1 << 16) - 1
_NET_BIND_TCP, _NET_CONNECT_TCP = 1, 2
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1, 2
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 1, 38, 22, 2
_READ = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
_BLOCKED_MODULES = ("ctypes", "_ctypes")


class SandboxRefusal(PermissionError):
    """Raised where the sandbox refuses something Python itself could notice (an import)."""


def set_limits(limits: dict[str, int]) -> None:
    mib = 1024 * 1024
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"] + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_mb"] * mib,) * 2)
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"],) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"],) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_size_mb"] * mib,) * 2)


def _bpf(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def seccomp_program() -> bytes:
    """The filter: kill on a foreign architecture, a denied call or a non-thread clone."""
    prog = [
        _bpf(_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        _bpf(_JEQ, 1, 0, _AUDIT_ARCH_X86_64),
        _bpf(_RET, 0, 0, _RET_KILL_PROCESS),
        _bpf(_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        _bpf(_JGE, 0, 1, 0x40000000),  # the x32 ABI
        _bpf(_RET, 0, 0, _RET_KILL_PROCESS),
    ]
    for number in sorted(_DENIED.values()):
        prog += [_bpf(_JEQ, 0, 1, number), _bpf(_RET, 0, 0, _RET_KILL_PROCESS)]
    # clone3 passes its flags in memory the filter cannot read: ENOSYS makes libc fall back to clone.
    prog += [_bpf(_JEQ, 0, 1, _CLONE3), _bpf(_RET, 0, 0, _RET_ERRNO | _ENOSYS)]
    prog += [
        _bpf(_JEQ, 0, 3, _CLONE),
        _bpf(_LD_W_ABS, 0, 0, 16),  # args[0] (flags), low half
        _bpf(_JSET, 1, 0, _CLONE_THREAD),
        _bpf(_RET, 0, 0, _RET_KILL_PROCESS),
        _bpf(_RET, 0, 0, _RET_ALLOW),
    ]
    return b"".join(prog)


def apply(limits: dict[str, int], readable: Sequence[int], writable: Sequence[int]) -> int:
    """Confine the process; `readable`/`writable` are open directory fds. Returns the Landlock ABI.

    Raises:
        OSError: a step failed; the worker must not go on to run module code.
    """
    import ctypes  # only here: dropped again below

    libc = ctypes.CDLL(None, use_errno=True)
    syscall = libc.syscall
    syscall.restype = ctypes.c_long

    def check(result: int, what: str) -> int:
        if result < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")
        return result

    set_limits(limits)
    abi = check(syscall(_SYS["landlock_create_ruleset"], None, 0, 1), "landlock ABI")
    fs_rights = _FS_ALL_V5 if abi >= 5 else _FS_RIGHTS_BY_ABI[abi]
    net_rights = _NET_BIND_TCP | _NET_CONNECT_TCP if abi >= 4 else 0
    scopes = _SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL if abi >= 6 else 0
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    attr = ctypes.create_string_buffer(struct.pack("QQQ", fs_rights, net_rights, scopes)[:size], size)
    ruleset = check(syscall(_SYS["landlock_create_ruleset"], attr, ctypes.c_size_t(size), 0), "landlock ruleset")
    rules: list[tuple[int, int]] = [(fd, _READ) for fd in readable] + [(fd, fs_rights) for fd in writable]
    for fd, access in rules:
        beneath = ctypes.create_string_buffer(struct.pack("<Qi", access, fd), 12)
        check(syscall(_SYS["landlock_add_rule"], ruleset, 1, beneath, 0), "landlock rule")
    # No TCP rule at all: with the network rights handled, every bind and connect is refused.
    check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    check(syscall(_SYS["landlock_restrict_self"], ruleset, 0), "landlock restrict")
    os.close(ruleset)

    program = seccomp_program()
    filters = ctypes.create_string_buffer(program, len(program))

    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }, padded to 16 bytes.
    fprog = ctypes.create_string_buffer(struct.pack("HxxxxxxQ", len(program) // 8, ctypes.addressof(filters)), 16)
    check(libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, fprog, 0, 0), "seccomp")
    # The parent-death signal does not survive the uid change; set it again so that a worker
    # whose server died cannot outlive it (the full tier also has bubblewrap's --die-with-parent).
    check(libc.prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0), "pdeathsig")
    return int(abi)


class _Refuse:
    """A meta-path finder that refuses the blocked modules before any other finder sees them."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        root = name.split(".", 1)[0]
        if root in _BLOCKED_MODULES:
            raise SandboxRefusal(f"import of {name!r} is not allowed in a module")


def block_imports() -> None:
    for name in list(sys.modules):
        if name.split(".", 1)[0] in _BLOCKED_MODULES:
            del sys.modules[name]
    sys.meta_path.insert(0, _Refuse())
