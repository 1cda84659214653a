"""Cold start to the first complete `tools/list`, peak RSS and list size, per spec, toolkiln and FastMCP.

Every run is a fresh server process driven over stdio by a minimal JSON-RPC client (initialize,
then `tools/list` page by page; see `openapi_measure.raw_cold_list`); the clock runs from just before
the spawn to the last byte of the last page, and peak RSS (VmHWM) is read from the server's /proc
entry right after that, before it is stopped. List sizes are exact wire bytes. toolkiln's cold runs each get a fresh
data dir (no conversion cache); its warm runs reuse the last cold run's data dir, once that run has
written the cache. A server that fails or times out is recorded with its error, never fatal.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from openapi_measure import raw_cold_list

__all__ = [
    "SpecResult",
    "fastmcp_argv",
    "measure_spec",
    "set_toolkiln_src",
    "toolkiln_argv",
    "toolkiln_env",
    "write_toolkiln_config",
]

HERE = Path(__file__).resolve().parent
FASTMCP_SERVER = HERE / "openapi_fastmcp_server.py"
# Never contacted: listing tools makes no upstream request. `.invalid` cannot resolve anywhere.
PLACEHOLDER_BASE_URL = "https://upstream.invalid"


def write_toolkiln_config(root: Path, spec: Path, base_url: str, *, allow_loopback: bool = False) -> Path:
    """A toolkiln.toml in `root` serving `spec`, with its data dir at `root/data`."""
    lines = [
        "[server]",
        'data_dir = "data"',
        "",
        "[[sources]]",
        f"spec = {json.dumps(str(spec))}",
        f"base_url = {json.dumps(base_url)}",
    ]
    if allow_loopback:
        lines.append('allow_private_hosts = ["127.0.0.1"]')
    path = root / "toolkiln.toml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# Where toolkiln's packages are imported from: the installed (editable) tree unless set. A frozen
# copy (`git archive HEAD server tools adapters modules credentials | tar -x -C DIR`) keeps a long
# run on one version of the code while the working tree changes under it.
_TOOLKILN_SRC: Path | None = None


def set_toolkiln_src(path: Path | None) -> None:
    global _TOOLKILN_SRC
    _TOOLKILN_SRC = path


def toolkiln_env() -> dict[str, str]:
    env = dict(os.environ)
    if _TOOLKILN_SRC is not None:
        # Ahead of the editable install's finder, which only answers what sys.path does not.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(_TOOLKILN_SRC), env.get("PYTHONPATH"))))
    return env


def toolkiln_argv(config: Path) -> list[str]:
    # -P: no working directory at the front of sys.path, so `--toolkiln-src` decides what is imported.
    return [sys.executable, "-P", "-m", "server", "serve", "--config", str(config)]


def fastmcp_argv(spec: Path, base_url: str) -> list[str]:
    return [sys.executable, str(FASTMCP_SERVER), str(spec), "--base-url", base_url]


@dataclass
class Run:
    cold_s: float
    peak_rss_bytes: int | None
    tools: int
    list_bytes: int
    pages: int


@dataclass
class Side:
    """One server's runs on one spec; `error` set when a run failed (later runs are then skipped)."""

    runs: list[Run] = field(default_factory=list)
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        if not self.runs:
            return {"ok": False, "error": self.error}
        rss = [r.peak_rss_bytes for r in self.runs if r.peak_rss_bytes is not None]
        last = self.runs[-1]
        return {
            "ok": self.error is None,
            "error": self.error,
            "runs": len(self.runs),
            "to_list_s": round(statistics.median(r.cold_s for r in self.runs), 3),
            "to_list_s_all": [round(r.cold_s, 3) for r in self.runs],
            "peak_rss_mb": round(statistics.median(rss) / 1e6, 1) if rss else None,
            "tools": last.tools,
            "list_bytes": last.list_bytes,
            "list_pages": last.pages,
        }


@dataclass
class SpecResult:
    spec: str
    spec_bytes: int
    toolkiln_cold: Side = field(default_factory=Side)
    toolkiln_warm: Side = field(default_factory=Side)
    fastmcp: Side = field(default_factory=Side)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"spec": self.spec, "spec_bytes": self.spec_bytes}
        for name in ("toolkiln_cold", "toolkiln_warm", "fastmcp"):
            out[name] = getattr(self, name).summary()
        return out


async def one_run(argv: list[str], timeout_s: float, log_path: Path, env: dict[str, str] | None = None) -> Run:
    """Start, list every tool, read VmHWM, stop.

    Raises:
        RuntimeError: the server failed, exited or did not answer within `timeout_s` (message
            includes the end of its stderr).
    """
    with log_path.open("w", encoding="utf-8") as errlog:
        try:
            with anyio.fail_after(timeout_s):
                listed = await raw_cold_list(argv, errlog, env)
                return Run(listed.elapsed_s, listed.peak_rss_bytes, listed.tools, listed.wire_bytes, listed.pages)
        except TimeoutError:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s") from None
        except Exception as exc:  # the server's own failure, reported rather than raised
            raise RuntimeError(f"{_describe(exc)}; stderr: {_tail(log_path)}") from None


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"[:300]


def _tail(log_path: Path, limit: int = 400) -> str:
    """The exception line of a traceback in the log (else its last line), shortened."""
    try:
        lines = [line for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(none)"
    if not lines:
        return "(empty)"
    errors = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception)\b", line)]
    return (errors or lines)[-1][:limit]


async def _record(
    side: Side, argv: list[str], timeout_s: float, log_path: Path, env: dict[str, str] | None = None
) -> None:
    if side.error is not None:
        return
    try:
        side.runs.append(await one_run(argv, timeout_s, log_path, env))
    except RuntimeError as exc:
        side.error = str(exc)


async def measure_spec(
    spec: Path, *, repeats: int, timeout_s: float, fastmcp_repeat_under_s: float, progress: bool = True
) -> SpecResult:
    """Cold runs of both servers taking turns, then toolkiln's warm runs."""
    result = SpecResult(spec=spec.name, spec_bytes=spec.stat().st_size)
    with tempfile.TemporaryDirectory(prefix="toolkiln-bench-openapi-") as tmp:
        root = Path(tmp)
        last_config: Path | None = None
        for attempt in range(repeats):
            config = write_toolkiln_config(root / f"cold-{attempt}", spec, PLACEHOLDER_BASE_URL)
            tk_log = root / f"tk-{attempt}.log"
            await _record(result.toolkiln_cold, toolkiln_argv(config), timeout_s, tk_log, toolkiln_env())
            last_config = config
            fm = result.fastmcp
            # FastMCP's large specs take tens of seconds and gigabytes: measured once.
            if attempt == 0 or (fm.runs and fm.runs[0].cold_s < fastmcp_repeat_under_s):
                argv = fastmcp_argv(spec, PLACEHOLDER_BASE_URL)
                await _record(fm, argv, timeout_s, root / f"fm-{attempt}.log")
        assert last_config is not None
        cache = last_config.parent / "data" / "cache" / "openapi"
        if result.toolkiln_cold.error is not None:
            result.toolkiln_warm.error = "not run: the cold runs failed"
        elif not any(cache.glob("*.json")):
            result.toolkiln_warm.error = "the cold run wrote no conversion cache"
        for attempt in range(repeats):
            warm_log = root / f"warm-{attempt}.log"
            await _record(result.toolkiln_warm, toolkiln_argv(last_config), timeout_s, warm_log, toolkiln_env())
    if progress:
        _print_progress(result)
    return result


def _print_progress(result: SpecResult) -> None:
    parts = [f"{result.spec:<36}"]
    for label, side in (
        ("toolkiln", result.toolkiln_cold),
        ("warm", result.toolkiln_warm),
        ("fastmcp", result.fastmcp),
    ):
        s = side.summary()
        parts.append(f"{label} {s['to_list_s']:.2f}s" if s["ok"] else f"{label} FAILED")
    print("  " + "  ".join(parts), file=sys.stderr, flush=True)
