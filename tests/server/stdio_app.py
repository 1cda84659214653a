"""A real `toolkiln` stdio server holding one tool named `vault`, hidden or absent.

Run by tests that compare raw wire bytes:

    python tests/server/stdio_app.py DATA_DIR hidden|absent
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from server.logs import configure_logging
from server.transports import serve
from tests.server.harness import HideTools, make_runtime, make_tool


def main() -> None:
    data_dir, variant = Path(sys.argv[1]), sys.argv[2]
    configure_logging("info")
    tools = [make_tool("echo")]
    if variant == "hidden":
        tools.append(make_tool("vault"))
    runtime = make_runtime(data_dir, tools, extra_steps=[HideTools("vault")])
    anyio.run(serve, runtime, "stdio")


if __name__ == "__main__":
    main()
