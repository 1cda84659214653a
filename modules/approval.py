"""What an approval pins: the SHA-256 of every file of a module version and of each tool definition.

A human approves exactly these bytes. Before a version is loaded (at start-up, on activation, and
periodically while it serves) the files are hashed again and compared; the tool definitions the
worker reports are compared too. Any difference disables the version until it is approved again.

The walk refuses what could make "the files" ambiguous: symbolic links (they could point anywhere),
devices, FIFOs and sockets, and more files or bytes than the manifest's limits allow. Nothing is
excluded from the hash, `__pycache__` included: a planted `.pyc` could shadow its source.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.errors import SetupError

__all__ = ["FilesRefused", "Pins", "canonical", "drift", "hash_files", "hash_tools"]


class FilesRefused(SetupError):
    """The module directory holds something that cannot be pinned (a link, a device, too much)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("module files refused: " + "; ".join(problems))
        self.problems = problems


def canonical(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same definition always hashes the same."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_files(directory: Path, *, max_files: int = 64, max_file_bytes: int = 1024 * 1024) -> dict[str, str]:
    """Relative POSIX path → SHA-256 of every regular file under `directory`.

    Raises:
        FilesRefused: a symlink or special file, more than `max_files` files, or a file larger
            than `max_file_bytes`.
    """
    found: dict[str, str] = {}
    problems: list[str] = []
    for root, dirs, files in os.walk(directory, followlinks=False):
        dirs.sort()
        for name in dirs:
            if os.path.islink(os.path.join(root, name)):
                problems.append(f"{_rel(directory, root, name)} is a symbolic link")
        dirs[:] = [name for name in dirs if not os.path.islink(os.path.join(root, name))]
        for name in sorted(files):
            full = os.path.join(root, name)
            relative = _rel(directory, root, name)
            info = os.lstat(full)
            if stat.S_ISLNK(info.st_mode):
                problems.append(f"{relative} is a symbolic link")
                continue
            if not stat.S_ISREG(info.st_mode):
                problems.append(f"{relative} is not a regular file")
                continue
            if info.st_size > max_file_bytes:
                problems.append(f"{relative} is larger than {max_file_bytes} bytes")
                continue
            if len(found) >= max_files:
                problems.append(f"more than {max_files} files")
                break
            found[relative] = _hash_file(full, max_file_bytes)
    if problems:
        raise FilesRefused(problems)
    return found


def _rel(directory: Path, root: str, name: str) -> str:
    return Path(os.path.relpath(os.path.join(root, name), directory)).as_posix()


def _hash_file(path: str, limit: int) -> str:
    digest = hashlib.sha256()
    # O_NOFOLLOW: the file may have been swapped for a link since the walk looked at it.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        read = 0
        while chunk := handle.read(65536):
            read += len(chunk)
            if read > limit:
                raise FilesRefused([f"{path} grew past {limit} bytes while being hashed"])
            digest.update(chunk)
    return digest.hexdigest()


def hash_tools(definitions: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Tool name → SHA-256 of its canonical definition (description, schemas, annotations)."""
    return {str(item["name"]): _sha256(canonical(dict(item))) for item in definitions}


@dataclass(frozen=True, slots=True)
class Pins:
    """What was approved, and by whom."""

    files: Mapping[str, str]
    tools: Mapping[str, str]
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """One hash over files and tools: what an elicitation answer is bound to."""
        return _sha256(canonical({"files": dict(self.files), "tools": dict(self.tools)}))

    def to_json(self) -> str:
        return json.dumps({"files": dict(self.files), "tools": dict(self.tools), "meta": dict(self.meta)})

    @classmethod
    def from_json(cls, text: str) -> Pins:
        data = json.loads(text)
        return cls(files=dict(data["files"]), tools=dict(data["tools"]), meta=dict(data.get("meta") or {}))


def drift(pinned: Mapping[str, str], current: Mapping[str, str], what: str) -> list[str]:
    """Each difference between two name → hash maps, as a sentence (`file changed: module.py`)."""
    changed = [name for name in sorted(pinned) if name in current and current[name] != pinned[name]]
    problems = [f"{what} changed: {name}" for name in changed]
    problems += [f"{what} removed: {name}" for name in sorted(set(pinned) - set(current))]
    problems += [f"{what} added: {name}" for name in sorted(set(current) - set(pinned))]
    return problems
