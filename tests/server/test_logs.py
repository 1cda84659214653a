"""Logging: JSON lines on stderr only, with secret-named fields and registered secret values scrubbed."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog

from server.logs import REDACTED, SECRETS, configure_logging
from tests.support.servers import toolkiln_command

CANARY = "canary-7f3a9c2e-SECRET"


@contextmanager
def _logging_to(buffer: io.StringIO, level: str = "info") -> Iterator[None]:
    """Configure logging onto `buffer`; afterwards put back the root handlers and the defaults."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging(level, stream=buffer, redact_keys=["x-tenant-key"])
    try:
        yield
    finally:
        configure_logging("info")  # forgets the extra redact keys and their cached verdicts
        structlog.reset_defaults()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Logging configured onto a StringIO with the canary registered."""
    buffer = io.StringIO()
    with _logging_to(buffer):
        SECRETS.add(CANARY)
        try:
            yield buffer
        finally:
            SECRETS.discard(CANARY)


def _lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_every_line_is_one_json_object_with_level_and_utc_timestamp(stream: io.StringIO) -> None:
    structlog.get_logger("toolkiln.test").info("started", port=8765)
    logging.getLogger("uvicorn.error").warning("from the stdlib: %s", "uvicorn")
    first, second = _lines(stream)
    assert first["event"] == "started"
    assert first["port"] == 8765
    assert first["level"] == "info"
    assert first["timestamp"].endswith("Z")
    assert second == {
        "event": "from the stdlib: uvicorn",
        "logger": "uvicorn.error",
        "level": "warning",
        "timestamp": second["timestamp"],
    }


def test_lines_below_the_configured_level_are_dropped() -> None:
    buffer = io.StringIO()
    with _logging_to(buffer, "warning"):
        structlog.get_logger("t").info("quiet")
        logging.getLogger("mcp.x").info("quiet too")
        structlog.get_logger("t").warning("loud")
    assert [line["event"] for line in _lines(buffer)] == ["loud"]


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("password", id="password"),
        pytest.param("passwd", id="passwd"),
        pytest.param("client_secret", id="client_secret"),
        pytest.param("access_token", id="access_token"),
        pytest.param("Authorization", id="Authorization"),
        pytest.param("api_key", id="api_key"),
        pytest.param("X-Api-Key", id="X-Api-Key"),
        pytest.param("cookie", id="cookie"),
        pytest.param("credential", id="credential"),
        pytest.param("private_key", id="private_key"),
        pytest.param("x-tenant-key", id="configured-redact-key"),
    ],
)
def test_secret_named_fields_are_redacted_at_any_depth(stream: io.StringIO, key: str) -> None:
    structlog.get_logger("t").info("request", **{key: "hunter2"}, headers={key: "hunter2"}, items=[{key: "hunter2"}])
    (line,) = _lines(stream)
    assert line[key] == REDACTED
    assert line["headers"] == {key: REDACTED}
    assert line["items"] == [{key: REDACTED}]
    assert "hunter2" not in stream.getvalue()


def test_harmless_fields_are_kept_as_they_are(stream: io.StringIO) -> None:
    structlog.get_logger("t").info("call", tool="echo", ms=1.5, ok=True, count=3, missing=None, tags=["a"])
    (line,) = _lines(stream)
    assert {k: line[k] for k in ("tool", "ms", "ok", "count", "missing", "tags")} == {
        "tool": "echo",
        "ms": 1.5,
        "ok": True,
        "count": 3,
        "missing": None,
        "tags": ["a"],
    }


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"note": f"upstream said {CANARY}"}, id="inside-a-string"),
        pytest.param({"body": {"echo": {"headers": {"x-forwarded": CANARY}}}}, id="nested-dict"),
        pytest.param({"values": ("a", [CANARY])}, id="tuple-and-list"),
        pytest.param({"raw": CANARY.encode()}, id="bytes"),
        pytest.param({"error": ValueError(f"bad token {CANARY}")}, id="exception-object"),
        pytest.param({"headers": {CANARY: "as-a-key"}}, id="as-a-dict-key"),
    ],
)
def test_registered_secret_values_never_appear_whatever_their_shape(
    stream: io.StringIO, fields: dict[str, Any]
) -> None:
    # THREATS C1
    structlog.get_logger("t").warning("upstream_failed", **fields)
    assert CANARY not in stream.getvalue()
    assert REDACTED in stream.getvalue()


def test_a_secret_in_the_event_text_is_scrubbed(stream: io.StringIO) -> None:
    structlog.get_logger("t").info(f"connecting with {CANARY}")
    logging.getLogger("httpx2").warning("retrying %s", CANARY)
    assert CANARY not in stream.getvalue()
    assert [line["event"] for line in _lines(stream)] == [f"connecting with {REDACTED}", f"retrying {REDACTED}"]


def test_a_secret_inside_a_traceback_is_scrubbed_from_structlog_and_stdlib_loggers(stream: io.StringIO) -> None:
    # THREATS C1: tracebacks are rendered after the first scrubbing pass.
    def fail() -> None:
        raise RuntimeError(f"auth failed for {CANARY}")

    try:
        fail()
    except RuntimeError:
        structlog.get_logger("t").exception("tool_crashed")
        logging.getLogger("mcp.server").exception("handler raised")
    lines = _lines(stream)
    assert CANARY not in stream.getvalue()
    assert len(lines) == 2
    for line in lines:
        assert "Traceback (most recent call last)" in line["exception"]
        assert f"RuntimeError: auth failed for {REDACTED}" in line["exception"]


def test_nesting_deeper_than_checked_is_not_shown(stream: io.StringIO) -> None:
    deep: dict[str, Any] = {}
    cursor = deep
    for _ in range(12):
        cursor["k"] = {}
        cursor = cursor["k"]
    cursor["password"] = "hunter2"
    structlog.get_logger("t").info("deep", data=deep)
    assert "hunter2" not in stream.getvalue()
    assert "[nested too deep]" in stream.getvalue()


def test_short_values_are_not_registered_and_discarded_ones_are_shown_again(stream: io.StringIO) -> None:
    SECRETS.add("abc")  # too short to scrub without mangling ordinary words
    SECRETS.add("temporary-secret-value")
    structlog.get_logger("t").info("one", a="abc", b="temporary-secret-value")
    SECRETS.discard("temporary-secret-value")
    structlog.get_logger("t").info("two", b="temporary-secret-value")
    first, second = _lines(stream)
    assert first["a"] == "abc"
    assert first["b"] == REDACTED
    assert second["b"] == "temporary-secret-value"


def test_logging_writes_json_to_stderr_and_nothing_to_stdout() -> None:
    script = textwrap.dedent(
        """
        import logging, structlog
        from server.logs import configure_logging
        configure_logging("info")
        structlog.get_logger("toolkiln.t").info("from_structlog", n=1)
        logging.getLogger("uvicorn.error").info("from_stdlib")
        try:
            raise ValueError("boom")
        except ValueError:
            structlog.get_logger("toolkiln.t").exception("with_traceback")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    events = [json.loads(line)["event"] for line in done.stderr.splitlines()]
    assert events == ["from_structlog", "from_stdlib", "with_traceback"]


def test_a_real_stdio_server_keeps_stdout_for_the_protocol_and_logs_json_on_stderr(tmp_path: Path) -> None:
    # `toolkiln call` launches `toolkiln serve` over stdio; the child's stderr is inherited, so
    # the server's log lines reach ours while its stdout carries only JSON-RPC to the client.
    env = {**_clean_env(), "TOOLKILN_LOG_LEVEL": "info"}
    done = subprocess.run(
        toolkiln_command("call", "test_simple_text", "--conformance-fixtures"),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "This is a simple text response for testing.\n"
    server_lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [line for line in done.stderr.splitlines() if not line.startswith("{")] == []
    calls = [line for line in server_lines if line.get("event") == "tool_call"]
    assert [(c["tool"], c["outcome"]) for c in calls] == [("test_simple_text", "ok")]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TOOLKILN_")}
