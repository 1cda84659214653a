"""THREATS I K1/K2: SIGKILL in the middle of audited, quota-charged calls loses nothing silently.

K1 runs a loop of real processes on a real SQLite file: a launcher process (imported once) forks a
serving child per iteration; the child makes audited, charged calls with idempotency keys, eight
at a time, and reports each call whose result it received; the launcher kills it with SIGKILL
after a random number of reports (zero included, so some die while opening the ledger). The next
child's start-up reconciles what the dead one left. At the end the database must be intact, the
chain must verify, every acknowledged call must have its outcome, no intent may dangle, and the
quota used must equal the charges recorded in the audit log.

K2 kills a real `python` process while its executor's request is held by a fake upstream on
loopback: the intent becomes `outcome_unknown` and is charged once; a retry with the same
idempotency key runs again but is not charged again, and a further retry replays the result.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest

from server.audit.ledger import LedgerPaths
from server.audit.verify import verify_chain
from tests.server.audit.support import records, settings_for

COST = 2
UNITS = 1_000_000

_LAUNCHER = textwrap.dedent(
    """
    import asyncio, json, os, random, signal, sys
    from server.logs import configure_logging
    from server.config import Settings
    from server.runtime import Runtime
    from tools.model import CallContext, Principal, Tool, ToolResult

    data_dir, iterations, synchronous, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    configure_logging("error")
    SCHEMA = {"type": "object", "properties": {"idempotency_key": {"type": "string"}, "n": {"type": "integer"}}}

    async def work(arguments, context):
        await asyncio.sleep(0)
        return ToolResult.text("done " + arguments["idempotency_key"])

    def child(iteration, out):
        async def main():
            settings = Settings.model_validate({
                "server": {"data_dir": data_dir},
                "quotas": {"daily": 1e9},
                "audit": {"synchronous": synchronous},
            })
            runtime = Runtime(settings)
            tool = Tool(name="work", description="w", input_schema=SCHEMA, executor=work, source="t", cost=%(cost)s)
            runtime.registry.replace_source("t", [tool])
            context = lambda: CallContext(principal=Principal(id="crash", roles=("admin",)))
            async with runtime.running():
                # Retry the previous child's first keys: done ones replay, dangling ones resume.
                keys = [f"{iteration - 1}-{n}" for n in range(4)] + [f"{iteration}-{n}" for n in range(10_000)]
                queue = iter(keys)

                async def worker():
                    for key in queue:
                        result = await runtime.pipeline.call_tool("work", {"idempotency_key": key}, context())
                        if not result.is_error:
                            os.write(out, (key + "\\n").encode())

                await asyncio.gather(*(worker() for _ in range(8)))

        asyncio.run(main())

    rng = random.Random(seed)
    acknowledged = []
    for iteration in range(iterations):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            try:
                child(iteration, write_end)
            finally:
                os._exit(0)
        os.close(write_end)
        reader = os.fdopen(read_end, "r")
        wanted = rng.randint(0, 24)
        for _ in range(wanted):
            line = reader.readline()
            if not line:
                break
            acknowledged.append(line.strip())
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        acknowledged.extend(line.strip() for line in reader.read().splitlines())  # sent before death
        reader.close()
    print(json.dumps(acknowledged))
    """
) % {"cost": COST}


def _db_rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _reconcile(data_dir: Path) -> int:
    """Open the ledger once more, as a restarted server would, and return what it reconciled."""
    from server.audit.ledger import Ledger

    ledger = Ledger(settings_for(data_dir, quotas={"daily": 1e9}))
    ledger.open()
    ledger.close()
    return ledger.reconciled


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("synchronous", "iterations"),
    [pytest.param("normal", 200, id="wal-normal-200"), pytest.param("full", 60, id="wal-full-60")],
)
def test_sigkill_at_random_points_leaves_an_intact_verifiable_ledger_whose_quota_matches_the_audit(
    synchronous: str, iterations: int, tmp_path: Path
) -> None:
    launcher = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, str(tmp_path), str(iterations), synchronous, "4242"],
        capture_output=True,
        text=True,
        timeout=55,
    )
    assert launcher.returncode == 0, launcher.stderr[-3000:]
    acknowledged = set(json.loads(launcher.stdout))
    _reconcile(tmp_path)
    db = tmp_path / "audit.db"

    assert _db_rows(db, "PRAGMA integrity_check") == [("ok",)]
    paths = LedgerPaths.from_settings(settings_for(tmp_path))
    report = verify_chain(paths.db, paths.key, paths.head)
    assert report.ok, report.summary()

    bodies = records(db)
    intents = {b["call_id"]: b for b in bodies if b["kind"] == "intent"}
    outcomes = {b["call_id"]: b for b in bodies if b["kind"] == "outcome"}
    assert set(intents) == set(outcomes), "every intent has its outcome (dangling ones reconciled)"
    assert len(outcomes) == len([b for b in bodies if b["kind"] == "outcome"]), "one outcome per call"
    assert _db_rows(db, "SELECT count(*) FROM audit_open_calls") == [(0,)]
    assert _db_rows(db, "SELECT count(*) FROM quota_reservations WHERE state = 'reserved'") == [(0,)]
    unknown = [o for o in outcomes.values() if o["status"] == "outcome_unknown"]
    assert unknown, "the kills should have caught calls between intent and outcome"

    # Every call whose result a client received has its successful outcome on disk.
    done_keys = {
        intents[call_id]["arguments"]["idempotency_key"]
        for call_id, outcome in outcomes.items()
        if outcome["status"] == "allowed"
    }
    assert acknowledged <= done_keys

    audited_units = round(sum(o["cost"] for o in outcomes.values()) * UNITS)
    (quota_units,) = _db_rows(db, "SELECT coalesce(sum(used), 0) FROM quota_usage WHERE period LIKE 'd:%'")[0]
    (charged_units,) = _db_rows(db, "SELECT coalesce(sum(units), 0) FROM quota_reservations WHERE state = 'charged'")[0]
    assert quota_units == audited_units == charged_units
    assert audited_units > 0


class _Upstream:
    """A fake upstream on loopback that holds the first request open and answers later ones."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.first_arrived = threading.Event()
        self.release = threading.Event()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                upstream.requests.append(body)
                if len(upstream.requests) == 1:
                    upstream.first_arrived.set()
                    upstream.release.wait(30)  # the caller is killed while we hold this
                    return
                payload = json.dumps({"created": body}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/orders"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Upstream:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


_TOOL_SOURCE = textwrap.dedent(
    """
    import httpx
    from tools.model import Tool, ToolResult

    SCHEMA = {"type": "object", "properties": {"idempotency_key": {"type": "string"}, "item": {"type": "string"}}}

    def order_tool(url):
        async def create_order(arguments, context):
            async with httpx.AsyncClient(timeout=30) as client:
                response = await client.post(url, content=arguments["item"])
            return ToolResult.text(response.text)

        return Tool(name="create_order", description="c", input_schema=SCHEMA, executor=create_order,
                    source="shop", cost=%(cost)s)
    """
) % {"cost": COST}

_SERVING_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    sys.path.insert(0, sys.argv[3])
    from order_tool import order_tool
    from server.config import Settings
    from server.logs import configure_logging
    from server.runtime import Runtime
    from tools.model import CallContext, Principal

    async def main():
        configure_logging("error")
        settings = Settings.model_validate({"server": {"data_dir": sys.argv[1]}, "quotas": {"daily": 100}})
        runtime = Runtime(settings)
        runtime.registry.replace_source("shop", [order_tool(sys.argv[2])])
        context = CallContext(principal=Principal(id="buyer", roles=("admin",)))
        async with runtime.running():
            await runtime.pipeline.call_tool("create_order", {"idempotency_key": "order-1", "item": "book"}, context)

    asyncio.run(main())
    """
)


@pytest.fixture
def order_module(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "mod"
    folder.mkdir()
    (folder / "order_tool.py").write_text(_TOOL_SOURCE, encoding="utf-8")
    sys.path.insert(0, str(folder))
    try:
        yield folder
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("order_tool", None)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_kill_after_the_upstream_request_leaves_outcome_unknown_and_a_retry_is_not_charged_twice(
    tmp_path: Path, order_module: Path
) -> None:
    data_dir = tmp_path / "data"
    with _Upstream() as upstream:
        child = subprocess.Popen(
            [sys.executable, "-c", _SERVING_CHILD, str(data_dir), upstream.url, str(order_module)],
            stderr=subprocess.PIPE,
        )
        try:
            assert upstream.first_arrived.wait(30), "the executor never reached the upstream"
            child.send_signal(signal.SIGKILL)
        finally:
            child.wait(10)
            assert child.stderr is not None
            child.stderr.close()
        assert child.returncode == -signal.SIGKILL

        from order_tool import order_tool  # type: ignore[import-not-found]

        from server.runtime import Runtime
        from tools.model import CallContext, Principal, ToolResult

        runtime = Runtime(settings_for(data_dir, quotas={"daily": 100}))
        runtime.registry.replace_source("shop", [order_tool(upstream.url)])
        context = CallContext(principal=Principal(id="buyer", roles=("admin",)))
        retry_arguments = {"idempotency_key": "order-1", "item": "book"}

        async def restart_and_retry() -> tuple[Any, Any, tuple[int, int]]:
            async with runtime.running():
                first = await runtime.pipeline.call_tool("create_order", dict(retry_arguments), context)
                second = await runtime.pipeline.call_tool("create_order", dict(retry_arguments), context)
                used = await runtime.ledger.quota.used("buyer")  # type: ignore[union-attr]
            return first, second, used

        first, second, used = anyio.run(restart_and_retry)
        assert runtime.ledger.reconciled == 1

    assert isinstance(first, ToolResult)
    assert isinstance(second, ToolResult)
    assert not first.is_error
    assert second.content == first.content  # replayed, not re-run
    assert len(upstream.requests) == 2  # the killed call's and the one retry
    outcomes = [b for b in records(data_dir / "audit.db") if b["kind"] == "outcome"]
    assert [(o["status"], o["cost"], o.get("idempotency")) for o in outcomes] == [
        ("outcome_unknown", COST, None),
        ("allowed", 0, "resumed"),
        ("allowed", 0, "replayed"),
    ]
    assert used == (COST * UNITS, COST * UNITS)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_running_server_reconciles_a_sibling_process_that_died_mid_call(tmp_path: Path, order_module: Path) -> None:
    data_dir = tmp_path / "data"
    from server.runtime import Runtime

    runtime = Runtime(settings_for(data_dir, quotas={"daily": 100}))

    async def scenario(upstream: _Upstream) -> int:
        async with runtime.running():
            child = subprocess.Popen(
                [sys.executable, "-c", _SERVING_CHILD, str(data_dir), upstream.url, str(order_module)],
                stderr=subprocess.DEVNULL,
            )
            try:
                assert await anyio.to_thread.run_sync(upstream.first_arrived.wait, 30)
                child.send_signal(signal.SIGKILL)
            finally:
                await anyio.to_thread.run_sync(child.wait, 10)
            return await runtime.ledger.reconcile_now()

    with _Upstream() as upstream:
        closed = anyio.run(scenario, upstream)
    assert closed == 1
    outcomes = [b for b in records(data_dir / "audit.db") if b["kind"] == "outcome"]
    assert [(o["status"], o["cost"]) for o in outcomes] == [("outcome_unknown", COST)]
    assert _db_rows(data_dir / "audit.db", "SELECT state FROM idempotency") == [("orphaned",)]
