"""The worker seam the module lifecycle builds on: report, enumeration, the module's own tests,
the frame protocol's caps."""

from __future__ import annotations

import asyncio
import struct

import pytest

from modules.sandbox import sandbox_report, start_worker
from modules.sandbox.protocol import FrameRejected, encode, read_frame
from tests.modules.sandbox.support import TIERS, report_for, spec_for


def test_the_report_names_a_tier_and_every_check_for_doctor() -> None:
    report = sandbox_report()

    lines = report.lines()

    assert lines[0].startswith(f"module sandbox: {report.tier}")
    assert any("landlock" in line for line in lines)
    assert report.tier == "refused" or report.interpreter is not None


@pytest.mark.anyio
@pytest.mark.parametrize("tier", TIERS)
async def test_a_worker_enumerates_declared_tools_and_runs_the_modules_own_tests(tier: str) -> None:
    worker = await start_worker(spec_for("benign"), report=report_for(tier))
    try:
        tools = await worker.tools()
        report = await worker.run_tests()
    finally:
        await worker.stop()

    assert [tool.name for tool in tools] == ["add"]
    assert tools[0].input_schema["required"] == ["a", "b"]
    assert worker.ready_ms < 2000
    outcomes = {case.name: case for case in report.cases}
    assert outcomes["tests/test_add.py::test_add_sums"].passed
    failed = outcomes["tests/test_add.py::test_add_is_wrong_on_purpose"]
    assert not failed.passed
    assert "AssertionError: one and one at tests/test_add.py:9" in failed.message
    assert not report.passed


async def frames(data: bytes, cap: int = 1024) -> list[dict[str, object]]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    out = []
    while (frame := await read_frame(reader, cap)) is not None:
        out.append(frame)
    return out


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(struct.pack(">I", 1 << 31) + b"{", "exceeds", id="oversized-length"),
        pytest.param(struct.pack(">I", 10) + b"{}", "truncated", id="truncated-body"),
        pytest.param(b"\x00\x00", "truncated", id="truncated-header"),
        pytest.param(struct.pack(">I", 2) + b"42", "not a JSON object", id="bare-value"),
        pytest.param(struct.pack(">I", 3) + b"NaN", "not JSON", id="nan"),
        pytest.param(struct.pack(">I", 2) + b"\xff\xfe", "not JSON", id="invalid-utf8"),
        pytest.param(struct.pack(">I", 600) + b"[" * 600, "not JSON", id="deep-nesting"),
    ],
)
async def test_a_hostile_frame_is_rejected(data: bytes, reason: str) -> None:
    with pytest.raises(FrameRejected, match=reason):
        await frames(data)


@pytest.mark.anyio
async def test_frames_round_trip() -> None:
    assert await frames(encode({"op": "log", "text": "é\u202e"}) + encode({"op": "x"})) == [
        {"op": "log", "text": "é\u202e"},
        {"op": "x"},
    ]
