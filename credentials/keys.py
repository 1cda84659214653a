"""The Fernet keys: from the environment or a 0600 key file, newest first.

The first key encrypts; every key decrypts (`MultiFernet`), which is what makes rotation possible
without downtime. A key file is one key per line; it is created once (`toolkiln init`, or the first
`toolkiln credentials set`), never over an existing one, and only rewritten by `rotate-key`.
A key file other users can read is refused rather than trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet

from credentials.errors import CredentialSetupError
from credentials.settings import ENV_KEY

__all__ = ["KeyRing", "create_key_file", "key_id", "load_keys", "write_key_file"]


def key_id(key: bytes) -> str:
    """A short public fingerprint of a key, stored beside each row it encrypted."""
    return hashlib.sha256(b"toolkiln-credential-key\0" + key).hexdigest()[:16]


@dataclass(frozen=True)
class KeyRing:
    """The usable keys, primary first, and where they came from (for messages)."""

    keys: tuple[bytes, ...]
    origin: str

    @property
    def primary_id(self) -> str:
        return key_id(self.keys[0])

    @cached_property
    def fernet(self) -> MultiFernet:
        return MultiFernet([Fernet(key) for key in self.keys])


def _parse(text: str, origin: str, separator: str) -> KeyRing:
    keys = []
    for raw in text.split(separator):
        item = raw.strip()
        if not item or item.startswith("#"):
            continue
        try:
            Fernet(item.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise CredentialSetupError(f"{origin} holds something that is not a Fernet key") from None
        keys.append(item.encode("ascii"))
    if not keys:
        raise CredentialSetupError(f"{origin} holds no key")
    return KeyRing(tuple(dict.fromkeys(keys)), origin)


def load_keys(path: Path) -> KeyRing | None:
    """The key ring from `$TOOLKILN_CREDENTIALS_KEY`, else from `path`; `None` when neither exists.

    Raises:
        CredentialSetupError: the variable or file holds no valid key, or the file is readable by
            other users (it must be 0600).
    """
    env = os.environ.get(ENV_KEY)
    if env:
        return _parse(env, f"${ENV_KEY}", ",")
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialSetupError(
            f"credential key file {path} is readable by other users (mode {oct(mode & 0o777)}); chmod 600 it"
        )
    return _parse(path.read_text(encoding="ascii"), f"key file {path}", "\n")


def _write_private(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return tmp


def create_key_file(path: Path) -> bool:
    """Create `path` (0600) with one fresh key; `False` if it already existed (it is left alone).

    Written under a private name and hard-linked into place, so a racing process never sees a
    half-written key and an existing key is never replaced.
    """
    if path.exists():
        return False
    tmp = _write_private(path, Fernet.generate_key().decode("ascii") + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return True


def write_key_file(path: Path, keys: tuple[bytes, ...]) -> None:
    """Replace the key file atomically (rotation): newest key first, one per line."""
    tmp = _write_private(path, "".join(key.decode("ascii") + "\n" for key in keys))
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
