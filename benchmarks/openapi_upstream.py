"""The local upstream the OpenAPI benchmark calls through both servers: `openapi_upstream_spec.json`.

    python benchmarks/openapi_upstream.py --port N

A Starlette app under uvicorn on 127.0.0.1, in its own process so it never competes with the
client for the benchmark's interpreter. Bodies are built once at start-up, so the upstream's own
cost is the same tiny constant for every caller: `GET /items/{id}` answers ~90 bytes of JSON,
`GET /reports/{id}` 50 KB (`LARGE_BYTES`, ± a row).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["LARGE_BYTES", "app", "large_body", "small_body"]

LARGE_BYTES = 50_000


def small_body(item_id: int) -> bytes:
    item = {"id": item_id, "name": "widget", "price": 9.5, "tags": ["hardware", "blue"]}
    return json.dumps(item, separators=(",", ":")).encode()


def large_body(report_id: int) -> bytes:
    rows: list[dict[str, Any]] = []
    report: dict[str, Any] = {"id": report_id, "generated": "2026-11-22T00:00:00Z", "rows": rows}
    while True:
        n = len(rows)
        rows.append(
            {
                "id": n,
                "sku": f"SKU-{n:06d}",
                "description": f"Replacement part number {n} for the model {n % 17} assembly",
                "quantity": (n * 7) % 500,
                "price": round(1.25 + n * 0.37, 2),
                "in_stock": n % 3 != 0,
            }
        )
        body = json.dumps(report, separators=(",", ":")).encode()
        if len(body) >= LARGE_BYTES:
            return body


_JSON = "application/json"
_SMALL = small_body(1)
_LARGE = large_body(1)


async def get_item(request: Request) -> Response:
    return Response(_SMALL, media_type=_JSON)


async def get_report(request: Request) -> Response:
    return Response(_LARGE, media_type=_JSON)


app = Starlette(routes=[Route("/items/{item_id}", get_item), Route("/reports/{report_id}", get_report)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
