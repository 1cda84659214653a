"""Settings: one TOML file read once into a frozen object.

Secure defaults live here (loopback bind, Origin/Host checks, body caps, timeouts). Unknown keys
are errors, so a typo never silently falls back to a default. A bad file raises `ConfigError`
naming the file, the line and the key.
"""

from __future__ import annotations

import json
import re
import tomllib
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from credentials.settings import CredentialSettings
from server.identity.settings import HttpAuthSettings
from server.policy.model import PolicySettings
from tools.errors import ConfigError
from tools.openapi.settings import OpenApiSourceSettings

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "AuditSettings",
    "HttpSettings",
    "IdempotencySettings",
    "LimitRule",
    "LimitSettings",
    "LoggingSettings",
    "ModulesSettings",
    "QuotaBudget",
    "QuotaSettings",
    "ServerSettings",
    "Settings",
    "StdioSettings",
    "load_settings",
]

DEFAULT_CONFIG_NAME = "toolkiln.toml"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerSettings(_Frozen):
    name: str = "toolkiln"
    data_dir: Path = Path(".toolkiln")
    call_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    instructions: str | None = None


class HttpSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    path: str = "/mcp"
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    # Empty lists mean "loopback only" (derived from host/port at start-up).
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    json_response: bool = False


class StdioSettings(_Frozen):
    principal: str = "local"
    roles: tuple[str, ...] = ("admin",)


class LoggingSettings(_Frozen):
    level: Literal["debug", "info", "warning", "error"] = "info"
    # Extra argument and field names whose values are always scrubbed from logs.
    redact_keys: tuple[str, ...] = ()


_RULE_NAME = r"^[A-Za-z0-9_.:-]{1,64}$"
# A cost is finite, never negative and bounded, so budgets cannot be gamed with NaN, inf or 1e30.
ToolCost = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)]
Budget = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)]


class LimitRule(_Frozen):
    """One rate limit: `limit` calls per `period_s` (bursts up to `burst`), per bucket of `per`."""

    name: str = Field(pattern=_RULE_NAME)
    per: Literal["principal_tool", "principal", "source", "global"] = "principal_tool"
    tools: tuple[str, ...] = ("*",)
    sources: tuple[str, ...] = ("*",)
    limit: int = Field(ge=1, le=1_000_000)
    period_s: float = Field(gt=0, le=31_536_000, allow_inf_nan=False)
    burst: int | None = Field(default=None, ge=1, le=1_000_000)


class LimitSettings(_Frozen):
    backend: Literal["memory", "sqlite"] = "sqlite"
    # Count and report what would be refused, but refuse nothing.
    shadow: bool = False
    rules: tuple[LimitRule, ...] = ()


class QuotaBudget(_Frozen):
    daily: Budget | None = None
    monthly: Budget | None = None


class QuotaSettings(_Frozen):
    backend: Literal["memory", "sqlite"] = "sqlite"
    shadow: bool = False
    # Budgets per principal per UTC day and month; unset means unlimited.
    daily: Budget | None = None
    monthly: Budget | None = None
    principals: dict[str, QuotaBudget] = Field(default_factory=dict)
    # Per-tool cost overrides; a tool's own cost (default 1) applies otherwise.
    costs: dict[str, ToolCost] = Field(default_factory=dict)


class AuditSettings(_Frozen):
    enabled: bool = True
    # Default: audit.db and audit.key in the data directory.
    path: Path | None = None
    key_path: Path | None = None
    synchronous: Literal["normal", "full"] = "normal"
    max_string_chars: int = Field(default=256, ge=16, le=65_536)


class IdempotencySettings(_Frozen):
    ttl_s: float = Field(default=86_400, gt=0, le=30 * 86_400, allow_inf_nan=False)
    argument: str | None = "idempotency_key"
    meta_key: str = "io.toolkiln/idempotency-key"
    max_result_bytes: int = Field(default=1024 * 1024, ge=1024)


class ModulesSettings(_Frozen):
    """`[modules]`: sandboxed adapter modules in `<data_dir>/modules/<name>/<version>/`."""

    enabled: bool = True
    # The modules_* management tools over MCP (admins only). Off by default so a server that only
    # proxies APIs lists only those; the `toolkiln modules` CLI works either way.
    management_tools: bool = False
    # How often a server looks for registry changes (CLI approvals) and re-hashes loaded modules.
    poll_interval_s: float = Field(default=1.0, gt=0, le=3600, allow_inf_nan=False)
    # Auto-disable once failure points reach this: each failed call is 1 point (a success
    # clears them), each sandbox violation `violation_weight` points (never cleared).
    failure_threshold: int = Field(default=5, ge=1, le=1000)
    violation_weight: int = Field(default=5, ge=1, le=1000)
    # Let an admin approve through an MCP elicitation to the host, besides the CLI.
    approve_by_elicitation: bool = True
    max_files: int = Field(default=64, ge=1, le=4096)
    max_file_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)


class Settings(_Frozen):
    """Everything toolkiln reads from its config file; immutable after start-up."""

    server: ServerSettings = ServerSettings()
    http: HttpSettings = HttpSettings()
    stdio: StdioSettings = StdioSettings()
    logging: LoggingSettings = LoggingSettings()
    limits: LimitSettings = LimitSettings()
    quotas: QuotaSettings = QuotaSettings()
    audit: AuditSettings = AuditSettings()
    idempotency: IdempotencySettings = IdempotencySettings()
    # The encrypted store of upstream credentials and its key (see `credentials.settings`).
    credentials: CredentialSettings = CredentialSettings()
    # Who HTTP/SSE callers are (API tokens, JWT); off = the local profile, loopback only.
    auth: HttpAuthSettings = HttpAuthSettings()
    # Roles and permissions; the defaults let the local `admin` profile call everything.
    policy: PolicySettings = PolicySettings()
    # OpenAPI documents served as tools: one `[[sources]]` table each.
    sources: tuple[OpenApiSourceSettings, ...] = ()
    conformance_fixtures: bool = False
    modules: ModulesSettings = ModulesSettings()
    # Where the settings came from, for messages; not a config key.
    source_path: Path | None = Field(default=None, exclude=True)


def load_settings(path: Path | None) -> Settings:
    """Read `path` (or defaults when `None`).

    Raises:
        ConfigError: the file is missing, not TOML, or has an unknown or invalid key.
    """
    if path is None:
        return Settings()
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(shown, f"cannot read the file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(shown, "the file is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _line_of_decode_error(str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError(shown, f"not valid TOML: {message}", line=line) from None
    _check_plain_values(shown, text, data)
    try:
        # Strict, from JSON: no coercion ("yes" is not a boolean, "80" is not a port), while
        # strings still become paths and arrays tuples, as a TOML author would expect.
        settings = Settings.model_validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(str(part) for part in first["loc"])
        key = ".".join(loc)
        problem = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        count = exc.error_count()
        if count > 1:
            problem += f" (and {count - 1} more problem{'s' if count > 2 else ''})"
        raise ConfigError(shown, problem, line=_line_of_key(text, loc), key=key) from None
    data_dir = settings.server.data_dir
    if not data_dir.is_absolute():
        # Hosts start servers in arbitrary working directories; the config file's folder is stable.
        server = settings.server.model_copy(update={"data_dir": path.parent / data_dir})
        settings = settings.model_copy(update={"server": server})
    return settings.model_copy(update={"source_path": path})


def _check_plain_values(shown: str, text: str, data: dict[str, Any]) -> None:
    """Refuse what no setting accepts but JSON cannot carry: TOML dates and times; `source_path`."""
    if "source_path" in data:
        raise ConfigError(shown, "unknown key", line=_line_of_key(text, ("source_path",)), key="source_path")

    def walk(value: object, loc: tuple[str, ...]) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*loc, str(key)))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, (*loc, str(index)))
        elif isinstance(value, date | time):
            line = _line_of_key(text, loc)
            raise ConfigError(shown, "a date or time is not valid here", line=line, key=".".join(loc))

    walk(data, ())


def _line_of_decode_error(message: str) -> int | None:
    match = re.search(r"at line (\d+)", message)
    return int(match.group(1)) if match else None


_TABLE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("?)([A-Za-z0-9_.-]+)\1\s*=""")


def _line_of_key(text: str, loc: tuple[str, ...]) -> int | None:
    """Best-effort line of the dotted key `loc`: the key's own line, else its table's header."""
    table: tuple[str, ...] = ()
    table_line: int | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        header = _TABLE.match(raw)
        if header:
            table = tuple(part.strip().strip('"') for part in header.group(1).split("."))
            if table == loc:
                table_line = number
            continue
        key = _KEY.match(raw)
        if key and (*table, *key.group(2).split(".")) == loc:
            return number
    if table_line is not None:
        return table_line
    return _line_of_key(text, loc[:-1]) if len(loc) > 1 else None


def config_as_dict(settings: Settings) -> dict[str, Any]:
    return settings.model_dump(mode="json")
