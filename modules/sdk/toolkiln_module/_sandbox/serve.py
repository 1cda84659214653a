"""The worker's loop: import the module, report its tools, then answer calls until told to stop."""

from __future__ import annotations

import errno
import importlib.util
import json
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

# Relative: the package is top-level inside the worker and `modules.sdk.…` to the type checker.
from .. import _channel, registered, testing  # noqa: TID252

__all__ = ["describe_error", "load_entry", "serve"]

_MESSAGE_CHARS = 2000
_LIMIT_ERRNOS = {errno.EFBIG: "file_size", errno.ENOSPC: "disk", errno.EDQUOT: "disk", errno.EMFILE: "open_files"}
_DENIED_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}


class Output:
    """stdout/stderr for module code: sent to the server as log frames, capped per call."""

    def __init__(self, chan: _channel.Channel, stream: str, budget: list[int]) -> None:
        self._chan = chan
        self._stream = stream
        self._budget = budget  # [bytes left, bytes dropped], shared by both streams
        self.encoding = "utf-8"

    def write(self, text: str) -> int:
        data = text.encode("utf-8", "replace")
        left = self._budget[0]
        if left > 0:
            kept = data[:left]
            self._chan.send({"op": "log", "stream": self._stream, "text": kept.decode("utf-8", "ignore")})
            self._budget[0] -= len(kept)
        self._budget[1] += max(0, len(data) - max(left, 0))
        return len(text)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return False


def _where(exc: BaseException, module_root: str) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(module_root)]
    if not frames:
        return ""
    last = frames[-1]
    return f" at {last.filename[len(module_root) :].lstrip('/')}:{last.lineno}"


def describe_error(exc: BaseException, module_root: str) -> dict[str, Any]:
    """What the server needs to classify a failure: a kind, and an actionable message."""
    kind = "error"
    if isinstance(exc, MemoryError):
        kind = "limit:memory"
    elif isinstance(exc, RecursionError):
        kind = "error"
    elif isinstance(exc, OSError) and exc.errno in _LIMIT_ERRNOS:
        kind = f"limit:{_LIMIT_ERRNOS[exc.errno]}"
    elif isinstance(exc, PermissionError) or (isinstance(exc, OSError) and exc.errno in _DENIED_ERRNOS):
        kind = "denied"
    message = f"{type(exc).__name__}: {exc}"[:_MESSAGE_CHARS]
    return {"kind": kind, "message": message + _where(exc, module_root)}


def load_entry(module_root: str, entry: str) -> ModuleType:
    path = Path(module_root) / entry
    spec = importlib.util.spec_from_file_location(Path(entry).stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load entry {entry!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _result(value: Any, limit: int) -> dict[str, Any]:
    if isinstance(value, str) and len(value) > limit:  # without building a second copy first
        return {"ok": False, "kind": "limit:result", "message": f"result of {len(value)} characters exceeds {limit}"}
    result: dict[str, Any] = {"text": value} if isinstance(value, str) else {"json": value}
    size = len(json.dumps(result, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    if size > limit:
        return {"ok": False, "kind": "limit:result", "message": f"result of {size} bytes exceeds {limit}"}
    return {"ok": True, **result}


def _call(message: dict[str, Any], module_root: str, limit: int) -> dict[str, Any]:
    tools = registered()
    name = message.get("tool")
    definition = tools.get(name) if isinstance(name, str) else None
    if definition is None:
        return {"ok": False, "kind": "error", "message": f"the module has no tool {name!r}"}
    arguments = message.get("arguments") or {}
    try:
        value = definition.function(**arguments)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the worker keeps serving
        return {"ok": False, **describe_error(exc, module_root)}
    try:
        return _result(value, limit)
    except (TypeError, ValueError, RecursionError) as exc:
        return {"ok": False, "kind": "error", "message": f"the tool returned a value that is not JSON: {exc}"}
    except MemoryError:
        return {"ok": False, "kind": "limit:memory", "message": "the result does not fit in the memory limit"}


def _run_tests(module_root: str) -> dict[str, Any]:
    cases: list[dict[str, Any]] = []
    test_dir = Path(module_root) / "tests"
    files = sorted(test_dir.glob("test_*.py")) if test_dir.is_dir() else []
    for index, path in enumerate(files):
        spec = importlib.util.spec_from_file_location(f"_module_tests_{index}_{path.stem}", path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except BaseException as exc:
            cases.append({"name": f"tests/{path.name}", "passed": False, **_failure(exc, module_root)})
            continue
        for name, function in vars(module).items():
            if not name.startswith("test_") or not callable(function):
                continue
            testing.reset()
            try:
                function()
            except BaseException as exc:
                cases.append({"name": f"tests/{path.name}::{name}", "passed": False, **_failure(exc, module_root)})
            else:
                cases.append({"name": f"tests/{path.name}::{name}", "passed": True, "message": ""})
            finally:
                testing.reset(enabled=False)
    return {"ok": True, "cases": cases}


def _failure(exc: BaseException, module_root: str) -> dict[str, str]:
    return {"message": describe_error(exc, module_root)["message"]}


def serve(chan: _channel.Channel, module_root: str, limits: dict[str, int]) -> None:
    result_limit = limits["result_kb"] * 1024
    log_limit = limits["log_kb_per_call"] * 1024
    budget = [log_limit, 0]
    sys.stdout = Output(chan, "stdout", budget)
    sys.stderr = Output(chan, "stderr", budget)
    while True:
        try:
            message = chan.recv()
        except _channel.ChannelClosed:
            return
        op = message.get("op")
        budget[0], budget[1] = log_limit, 0
        if op == "call":
            answer = _call(message, module_root, result_limit)
        elif op == "run_tests":
            answer = _run_tests(module_root)
        elif op == "stop":
            return
        else:
            answer = {"ok": False, "kind": "error", "message": f"unknown op {op!r}"}
        answer.update(op="result", id=message.get("id"), log_dropped=budget[1])
        chan.send(answer)
