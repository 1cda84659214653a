"""Loading the policy, and reloading its file without ever opening up.

The policy is the built-ins, the inline `[policy]` table of toolkiln.toml and, optionally, a
separate policy file (`policy.file`, relative to the config file's folder). At start-up any
problem is a `ConfigError`: the server refuses to start. While running, the file is re-checked
at most every `reload_interval_s` (a `stat`, on the calling path, so no background task can die
silently); a changed file that fails to parse or validate is logged and the last good policy
stays in force. A deleted file counts as a bad file, not as "no policy".
"""

from __future__ import annotations

import json
import os
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from pydantic import ValidationError

from server.policy.engine import Policy, PolicyError
from server.policy.model import PolicyFile, PolicySettings
from tools.errors import ConfigError

if TYPE_CHECKING:  # server.config imports the policy schema; importing it back here would cycle
    from server.config import Settings

__all__ = ["PolicyHolder", "load_policy_file"]

log = structlog.get_logger("toolkiln.policy")

_Stamp = tuple[int, int, int]


def load_policy_file(path: Path) -> PolicyFile:
    """Read and validate one policy file.

    Raises:
        ConfigError: unreadable, not TOML, or an unknown or invalid key (with its line).
    """
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(shown, f"cannot read the policy file ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(shown, f"not valid TOML: {exc}") from None
    try:
        encoded = json.dumps(data)
    except TypeError:
        raise ConfigError(shown, "a date or time is not valid in a policy file") from None
    try:
        # Strict, as toolkiln.toml is read: `"1"` is not 1 and `"yes"` is not true.
        return PolicyFile.model_validate_json(encoded, strict=True)
    except ValidationError as exc:
        from server.config import _line_of_key

        first = exc.errors()[0]
        loc = tuple(str(part) for part in first["loc"])
        problem = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(shown, problem, line=_line_of_key(text, loc), key=".".join(loc)) from None


def _stamp(path: Path) -> _Stamp | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


class PolicyHolder:
    """Holds the policy in force; `current` is what every list and call consults."""

    def __init__(
        self,
        settings: PolicySettings,
        *,
        config_path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Compile the policy once.

        Raises:
            ConfigError: the inline policy or the policy file is invalid (refuse to start).
        """
        self._inline = PolicyFile(roles=settings.roles, rules=settings.rules, principals=settings.principals)
        self._config_origin = str(config_path) if config_path is not None else "toolkiln.toml"
        self._file = None if settings.file is None else _resolve(settings.file, config_path)
        self._interval = settings.reload_interval_s
        self._clock = clock
        self._listeners: list[Callable[[Policy], None]] = []
        self._checked_at = clock()
        self._stamp = None if self._file is None else _stamp(self._file)
        self.last_error: str | None = None
        self._policy = self._build(version=1)

    @classmethod
    def from_settings(cls, settings: Settings) -> PolicyHolder:
        return cls(settings.policy, config_path=settings.source_path)

    @property
    def file(self) -> Path | None:
        return self._file

    @property
    def current(self) -> Policy:
        if self._file is not None and self._clock() - self._checked_at >= self._interval:
            self._maybe_reload()
        return self._policy

    def subscribe(self, listener: Callable[[Policy], None]) -> None:
        """Call `listener` after each successful reload (e.g. to send tools/list_changed)."""
        self._listeners.append(listener)

    def _build(self, *, version: int) -> Policy:
        parts = [(self._inline, self._config_origin)]
        if self._file is not None:
            parts.append((load_policy_file(self._file), str(self._file)))
        try:
            return Policy(parts, version=version)
        except PolicyError as exc:
            where = exc.origin or (str(self._file) if self._file is not None else self._config_origin)
            raise ConfigError(where, str(exc), key=exc.key) from None

    def _maybe_reload(self) -> None:
        assert self._file is not None
        self._checked_at = self._clock()
        stamp = _stamp(self._file)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        self.reload()

    def reload(self) -> bool:
        """Re-read the policy file now. Returns whether the new policy took effect."""
        try:
            if self._file is not None and not self._file.exists():
                raise ConfigError(str(self._file), "the policy file is missing")
            policy = self._build(version=self._policy.version + 1)
        except ConfigError as exc:
            self.last_error = exc.message
            log.error("policy_reload_rejected", error=exc.message, kept_version=self._policy.version)
            return False
        self._policy = policy
        self.last_error = None
        log.info("policy_reloaded", version=policy.version, rules=len(policy.rules))
        for listener in self._listeners:
            listener(policy)
        return True


def _resolve(path: Path, config_path: Path | None) -> Path:
    if path.is_absolute() or config_path is None:
        return path
    return config_path.parent / path
