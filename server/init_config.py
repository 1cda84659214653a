"""`toolkiln init`: write a commented example config that loads as-is."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["EXAMPLE_CONFIG", "write_example"]

EXAMPLE_CONFIG = """\
# toolkiln configuration. Every key is optional; the values shown are the defaults.
# Read once at start-up; unknown keys are errors, so a typo never falls back silently.

[server]
# Name shown to MCP clients.
name = "toolkiln"
# Where state lives (SQLite database, keys, modules). Relative to the working directory.
data_dir = ".toolkiln"
# Every tool call is cancelled after this many seconds and reported as a timeout.
call_timeout_s = 60.0

[http]
# Used by `toolkiln serve --transport http|sse`. Binding anything but loopback exposes the
# server: set allowed_hosts / allowed_origins explicitly when you do.
host = "127.0.0.1"
port = 8765
# Streamable HTTP endpoint path.
path = "/mcp"
# Requests larger than this are refused with 413 before they are parsed.
max_body_bytes = 4194304
# Host and Origin headers accepted (DNS-rebinding protection). Empty = loopback only.
allowed_hosts = []
allowed_origins = []
# Answer POSTs with plain JSON instead of an SSE stream.
json_response = false

[stdio]
# Who a local stdio client is (hosts launching toolkiln over stdio are trusted locally).
principal = "local"
roles = ["admin"]

[logging]
# JSON lines on stderr: debug, info, warning or error.
level = "info"
# Extra field names whose values are always redacted (secret-looking names already are).
redact_keys = []
"""


def write_example(path: Path, *, force: bool = False) -> int:
    if path.exists() and not force:
        print(f"toolkiln: {path} exists; use --force to overwrite", file=sys.stderr)
        return 2
    path.write_text(EXAMPLE_CONFIG, encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)
    return 0
