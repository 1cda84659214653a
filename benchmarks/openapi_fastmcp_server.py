"""FastMCP's OpenAPI server over stdio, the reference the OpenAPI benchmark compares toolkiln with.

Run as a script by `bench_openapi.py`:

    python benchmarks/openapi_fastmcp_server.py SPEC --base-url URL

Built the way FastMCP documents it: the spec loaded into a dict (JSON, or YAML with libyaml's
loader when present, the fastest a user could pick), `FastMCP.from_openapi(openapi_spec=...,
client=httpx2.AsyncClient(base_url=...))`, then `run("stdio")`. No banner and no update check
(the benchmark has no network; both would only add noise).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path
from typing import Any

# Read by FastMCP's settings at import time.
os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")
os.environ.setdefault("FASTMCP_SHOW_SERVER_BANNER", "false")
os.environ.setdefault("FASTMCP_LOG_LEVEL", "WARNING")


def load_spec(path: Path) -> dict[str, Any]:
    text = path.read_bytes()
    if path.suffix.lower() == ".json":
        loaded = json.loads(text)
    else:
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        loaded = yaml.load(text, Loader=loader)  # a safe loader (libyaml when present), chosen for speed
    if not isinstance(loaded, dict):
        raise SystemExit(f"{path}: not an OpenAPI document")
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("spec", type=Path)
    parser.add_argument("--base-url", required=True)
    args = parser.parse_args()

    import httpx2
    from fastmcp import FastMCP

    spec = load_spec(args.spec)
    client = httpx2.AsyncClient(base_url=args.base_url, timeout=30.0)
    server = FastMCP.from_openapi(openapi_spec=spec, client=client, name="fastmcp-openapi")
    del spec
    with contextlib.suppress(KeyboardInterrupt):
        server.run("stdio", show_banner=False)


if __name__ == "__main__":
    main()
