"""THREATS U3: 500 concurrent calls from two processes make one linear, verifiable chain."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from server.audit.ledger import LedgerPaths
from server.audit.verify import verify_chain
from tests.server.audit.support import chain_rows, records, settings_for

CALLS_PER_PROCESS = 250

_WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from server.config import Settings
    from server.logs import configure_logging
    from server.runtime import Runtime
    from tools.model import CallContext, Principal, Tool, ToolResult

    async def work(arguments, context):
        await asyncio.sleep(0)  # yield, so calls from both processes interleave
        return ToolResult.text("done")

    async def main():
        configure_logging("warning")
        settings = Settings.model_validate({"server": {"data_dir": sys.argv[1]}})
        runtime = Runtime(settings)
        tool = Tool(name="work", description="w", input_schema={"type": "object"}, executor=work, source="t")
        runtime.registry.replace_source("t", [tool])
        async with runtime.running():
            sys.stdout.write("ready\\n"); sys.stdout.flush()
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            context = lambda: CallContext(principal=Principal(id=sys.argv[2], roles=("admin",)))
            results = await asyncio.gather(
                *(runtime.pipeline.call_tool("work", {}, context()) for _ in range(int(sys.argv[3])))
            )
        print(sum(not r.is_error for r in results))

    asyncio.run(main())
    """
)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_five_hundred_concurrent_calls_across_two_processes_form_one_linear_chain(tmp_path: Path) -> None:
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(tmp_path), f"worker-{index}", str(CALLS_PER_PROCESS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for index in range(2)
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready"
    for worker in workers:  # the barrier: both start their calls together
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    done = [int(worker.communicate(timeout=50)[0].strip()) for worker in workers]
    assert done == [CALLS_PER_PROCESS, CALLS_PER_PROCESS]

    rows = chain_rows(tmp_path / "audit.db")
    assert [seq for seq, _, _ in rows] == list(range(1, 2 * 2 * CALLS_PER_PROCESS + 1))
    for (_, _, previous), (_, link, _) in itertools.pairwise(rows):
        assert link == previous
    paths = LedgerPaths.from_settings(settings_for(tmp_path))
    report = verify_chain(paths.db, paths.key, paths.head)
    assert report.ok, report.summary()
    bodies = records(tmp_path / "audit.db")
    by_worker = {f"worker-{i}": [b for b in bodies if b["principal"] == f"worker-{i}"] for i in range(2)}
    assert all(len(mine) == 2 * CALLS_PER_PROCESS for mine in by_worker.values())
    # Genuinely concurrent: each process's records straddle some of the other's (every call needs
    # two commits, intent then outcome, so neither process can finish in one batch).
    owners = [b["principal"] for b in bodies]
    switches = sum(1 for a, b in itertools.pairwise(owners) if a != b)
    assert switches >= 2
