"""structlog JSON on stderr, never stdout (stdout belongs to the stdio transport).

The processor chain is the logging architecture: each step is one small testable function.
`scrub_secrets` removes values of secret-looking keys and every value registered in the
process-wide `SECRETS` set (credentials injected for the request being served).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["REDACTED", "SECRETS", "SecretValues", "configure_logging", "scrub_secrets"]

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|authorization|api[-_]?key|cookie|credential|private[-_]?key)", re.I
)
_MIN_SECRET_LEN = 4


class SecretValues:
    """Exact values to scrub wherever they appear in a log line. Thread-safe."""

    def __init__(self) -> None:
        self._values: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def add(self, *values: str) -> None:
        with self._lock:
            self._values = self._values | {v for v in values if len(v) >= _MIN_SECRET_LEN}
            self._pattern = _alternation(self._values)

    def discard(self, *values: str) -> None:
        with self._lock:
            self._values = self._values - set(values)
            self._pattern = _alternation(self._values)

    def scrub(self, text: str) -> str:
        pattern = self._pattern
        return text if pattern is None else pattern.sub(REDACTED, text)


def _alternation(values: Iterable[str]) -> re.Pattern[str] | None:
    ordered = sorted(values, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, ordered))) if ordered else None


SECRETS = SecretValues()
_extra_keys: re.Pattern[str] | None = None


# Rendered after scrubbing (tracebacks: see `_scrub_rendered`) or internal to structlog's stdlib bridge.
_RENDERED_LATER = frozenset({"exc_info", "stack_info", "_record", "_from_structlog"})
_MAX_DEPTH = 8
_TOO_DEEP = "[nested too deep]"
# Field names repeat on every line; remember the verdict instead of running two regexes per field.
_key_verdicts: dict[str, bool] = {}
_MAX_REMEMBERED_KEYS = 4096


def _scrub_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return SECRETS.scrub(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth > _MAX_DEPTH:
        # Past this depth nothing is checked, so nothing is shown.
        return _TOO_DEEP
    if isinstance(value, dict):
        return {_scrub_key(k): REDACTED if _is_secret_key(k) else _scrub_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v, depth + 1) for v in value]
    # The JSON renderer would print anything else (bytes, an exception, an object) with repr():
    # scrub that text, or a secret inside `error=exc` would reach the log.
    return SECRETS.scrub(repr(value))


def _scrub_key(key: object) -> object:
    return SECRETS.scrub(key) if isinstance(key, str) else key


def _is_secret_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    verdict = _key_verdicts.get(key)
    if verdict is None:
        verdict = bool(_SECRET_KEY.search(key) or (_extra_keys is not None and _extra_keys.search(key)))
        if len(_key_verdicts) >= _MAX_REMEMBERED_KEYS:
            _key_verdicts.clear()
        _key_verdicts[key] = verdict
    return verdict


def scrub_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Redact secret-named fields and known secret values, recursively."""
    for key, value in list(event_dict.items()):
        if key in _RENDERED_LATER:
            continue
        if _is_secret_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub_value(value)
    return event_dict


def _scrub_rendered(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    # Tracebacks are rendered into `exception` after the first pass; scrub them too.
    exc = event_dict.get("exception")
    if isinstance(exc, str):
        event_dict["exception"] = SECRETS.scrub(exc)
    return event_dict


def configure_logging(level: str = "info", *, stream: TextIO | None = None, redact_keys: Iterable[str] = ()) -> None:
    """Route structlog and stdlib logging (the SDK, uvicorn) to JSON lines on stderr."""
    global _extra_keys
    keys = [re.escape(k) for k in redact_keys]
    _extra_keys = re.compile("|".join(keys), re.I) if keys else None
    _key_verdicts.clear()
    out = stream or sys.stderr
    numeric = logging.getLevelName(level.upper())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        scrub_secrets,
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            _scrub_rendered,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _scrub_rendered,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO) if numeric < logging.INFO else numeric)
    for noisy in ("httpx", "httpcore", "httpx2", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
