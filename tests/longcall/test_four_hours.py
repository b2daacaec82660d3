"""A 4-hour call, compressed: Gemini Live ends each connection after a while (goAway), so a
long call is a chain of rotations. 24 connections stand for 4 hours of 10-minute ones; each
goAway comes a second into its connection instead of ten minutes. Across the chain the
bridge's task count and traced memory stay flat, and every rotation is clean: resumed from
the latest handle, the old connection closed by the bridge (1000), no warning.
"""

from __future__ import annotations

import asyncio
import itertools
import tracemalloc
from pathlib import Path

from callbridge.bridge.warnings import WarningCode
from callbridge.emulators.gemini_live import Fault, Script, Turn
from callbridge.emulators.telcoflow import CallerScript, HangUp, Pause
from tests.faults.kit import agent_says, fault_stack, notices

ROTATIONS = 24
REPO = Path(__file__).resolve().parents[2]
BRIDGE_CODE = [
    tracemalloc.Filter(True, str(REPO / "bridge" / "*")),
    tracemalloc.Filter(True, str(REPO / "adapters" / "*")),
]
"""Allocation sites in the bridge itself: the emulators in this process record every frame
of the call (by design), which is not the bridge's memory."""


def bridge_bytes() -> int:
    snapshot = tracemalloc.take_snapshot().filter_traces(BRIDGE_CODE)
    return sum(stat.size for stat in snapshot.statistics("filename"))


async def test_four_hours_of_rotations_keep_memory_and_tasks_flat() -> None:
    script = Script(
        greeting=Turn([agent_says(0.3, "Hello.")]),
        faults=[Fault.go_away(after_s=1.0, time_left_s=8.0)],  # every connection
    )
    samples: list[tuple[int, int, int]] = []  # (rotation, tasks, traced bytes)
    tracemalloc.start()
    try:
        async with fault_stack(script) as fs:
            call = fs.stack.place_call(CallerScript([Pause(600), HangUp()]))
            await call.answered(timeout=15)
            for count in range(2, ROTATIONS + 2):
                await fs.wait_sessions(count, timeout=20)
                await asyncio.sleep(0.3)
                samples.append((count, len(asyncio.all_tasks()), bridge_bytes()))
            fs.stack.app.runner.live[call.call_id].finish("ended_by_operator", hang_up="disconnect")
            await call.ended(timeout=30)
            record = await fs.finished(call)
            sessions = fs.sessions
    finally:
        tracemalloc.stop()
    rotated = [n for n in notices(record) if n == "rotated"]
    assert len(rotated) >= ROTATIONS
    for before, after in itertools.pairwise(sessions):
        assert before.close_code == 1000, "the bridge left each connection itself"
        assert after.resumed_from == before.handles_issued[-1], "resumed from the latest handle"
    assert not fs.warned(WarningCode.MODEL_REQUEST_FAILED)
    # Flat: compare the last quarter with the second (after warm-up), not the first.
    warm = samples[len(samples) // 4 : len(samples) // 2]
    late = samples[-len(samples) // 4 :]
    assert max(t for _, t, _ in late) <= max(t for _, t, _ in warm), samples
    growth = min(b for _, _, b in late) - min(b for _, _, b in warm)
    assert growth < 256_000, f"bridge memory grew {growth} B over the chain: {samples}"
