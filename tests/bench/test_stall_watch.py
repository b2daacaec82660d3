"""The benchmark's stall watch names the code that held the event loop."""

from __future__ import annotations

import asyncio
import time

from callbridge.bench.stall_watch import StallWatch


def hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # blocking on purpose: the stall the watch must catch


async def watched(work: float) -> StallWatch:
    watch = StallWatch(stall_s=0.015, tick_s=0.002)
    async with asyncio.TaskGroup() as group:
        task = group.create_task(watch.run())
        await asyncio.sleep(0.02)
        if work:
            hold_the_loop(work)
        await asyncio.sleep(0.03)
        task.cancel()
    return watch


async def test_a_callback_that_holds_the_loop_is_caught_with_its_stack() -> None:
    watch = await watched(0.08)
    report = watch.export()
    assert report["stalls"] >= 1
    assert report["longest_ms"] >= 60
    assert any("hold_the_loop" in stack for _, stack in report["stacks"])
