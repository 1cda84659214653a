"""What lives outside the audit database: the HMAC key and the signed chain head.

Someone who can only write the database can recompute every hash of a rewritten chain, and can
drop the newest records together with the checkpoint rows that mention them. Neither works against
state they cannot reach: the key (a 0600 file beside, not inside, the database) signs checkpoints,
and the newest signed head is kept in a second file. `verify` compares the chain with both.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

import structlog

from server.audit.canonical import checkpoint_mac
from tools.errors import SetupError

__all__ = ["AuditKeyMissing", "SignedHead", "load_key", "read_head", "write_head"]

log = structlog.get_logger("toolkiln.audit")
_KEY_BYTES = 32


class AuditKeyMissing(SetupError):
    """The audit database has records but its checkpoint key is gone; never silently replaced."""


def load_key(path: Path, *, create: bool) -> bytes:
    """Read the key, creating it (mode 0600, never overwriting) when `create` is true.

    Raises:
        AuditKeyMissing: the file does not exist and `create` is false.
        SetupError: the file exists but does not hold a key.
    """
    if create:
        _create_once(path)
    try:
        text = path.read_text(encoding="ascii").strip()
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise AuditKeyMissing(
            f"audit key {path} is missing while the audit log has records; restore it (a new key "
            "would make the existing checkpoints unverifiable)"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("audit_key_permissions", path=str(path), mode=oct(mode & 0o777), expected="0o600")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise SetupError(f"audit key {path} is not a hex key") from None
    if len(key) < 16:
        raise SetupError(f"audit key {path} is too short")
    return key


def _create_once(path: Path) -> None:
    """Create the key file with its content in one step, never replacing an existing one.

    Written to a private temporary name first and then hard-linked into place: `link` fails if the
    key exists, and a process racing to start never sees a half-written key.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(_KEY_BYTES) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class SignedHead:
    seq: int
    hash: str
    mac: str

    def valid(self, key: bytes) -> bool:
        return secrets.compare_digest(self.mac, checkpoint_mac(key, self.seq, self.hash))


def read_head(path: Path) -> SignedHead | None:
    """The newest signed head, or `None` when none was written yet (or it is unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="ascii"))
        return SignedHead(seq=int(data["seq"]), hash=str(data["hash"]), mac=str(data["mac"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return SignedHead(seq=-1, hash="", mac="")  # present but mangled: verify reports it


def write_head(path: Path, key: bytes, seq: int, record_hash: str) -> None:
    """Record `(seq, hash)` as the signed head unless a newer one is already there.

    Several processes append to one chain; a lock file makes read-compare-replace atomic so the
    head only ever moves forward.
    """
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            current = read_head(path)
            if current is not None and current.seq >= seq:
                return
            body = json.dumps({"seq": seq, "hash": record_hash, "mac": checkpoint_mac(key, seq, record_hash)})
            tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
            tmp.write_text(body + "\n", encoding="ascii")
            os.replace(tmp, path)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
