"""Rate limiting: a condition raised 100 times a second is delivered a bounded number of
times, each delivery saying how many were held back since the previous one."""

from __future__ import annotations

import asyncio
import math
import time

from structlog.typing import EventDict

from callbridge.bridge.warnings import BridgeWarning, CallWarner, RateLimiter, WarningCode
from callbridge.emulators.gemini_live import Script, Turn
from callbridge.emulators.telcoflow import CallerScript
from tests.e2e.scenarios import agent
from tests.warnings.harness import live_call, probed_stack

CODE = WarningCode.INJECT_MESSAGE_DURING_AGENT_SPEECH


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_admits_once_per_interval_and_counts_the_rest() -> None:
    clock = _Clock()
    limiter = RateLimiter(1.0, clock=clock)
    admitted: list[int] = []
    for i in range(100):  # 100 in one second
        clock.now = i / 100
        result = limiter.admit(WarningCode.SEND_BUFFER_FULL)
        if result is not None:
            admitted.append(result)
    assert admitted == [0]
    assert limiter.admit(WarningCode.SLOW_TOOL_CALL) == 0, "codes are limited separately"
    clock.now = 1.0
    assert limiter.admit(WarningCode.SEND_BUFFER_FULL) == 99
    assert limiter.take_suppressed() == {}


def test_flush_reports_what_the_limiter_still_holds() -> None:
    sent: list[BridgeWarning] = []

    class Sink:
        def submit(self, warning: BridgeWarning) -> None:
            sent.append(warning)

    recorded: list[BridgeWarning] = []
    warner = CallWarner(
        call_id="c1", tenant="t", sink=Sink(), on_record=recorded.append, min_interval_s=60
    )
    for _ in range(5):
        warner.warn(WarningCode.SEND_BUFFER_FULL, "queue over 5 s")
    warner.warn(WarningCode.SLOW_TOOL_CALL, "tool slow")
    assert len(sent) == 2 and warner.counts[WarningCode.SEND_BUFFER_FULL] == 5
    warner.flush_suppressed()
    [summary] = sent[2:]
    assert summary.code == WarningCode.SEND_BUFFER_FULL
    assert summary.details["suppressed_since_last"] == 4
    assert recorded == sent
    warner.flush_suppressed()
    assert len(sent) == 3, "nothing left to flush"


async def test_a_hundred_refusals_in_a_second_are_delivered_a_bounded_number_of_times(
    logs: list[EventDict],
) -> None:
    interval = 0.25
    script = Script(greeting=Turn([agent("agent_answer_long")]))
    overrides = {"warnings": {"min_interval_s": interval}}
    async with probed_stack(script, logs, overrides=overrides) as (stack, probe):
        call = stack.place_call(CallerScript([]))
        bridged = await live_call(stack, call)
        async with asyncio.timeout(10):
            while not bridged.agent_speaking:
                await asyncio.sleep(0.01)
        started = time.monotonic()
        for _ in range(100):
            assert await bridged.inject("now!") is False
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - started
        assert bridged.agent_speaking, "every inject was refused for the same reason"
        assert stack.app is not None
        assert await stack.app.warnings.drain(5)
        await call.hang_up()
    delivered = probe.raised(CODE)
    # At call end the runner flushes what the limiter still held back, as one summary.
    raised = [w for w in delivered if not w.details.get("summary")]
    bound = 1 + math.ceil(elapsed / interval)
    assert 2 <= len(raised) <= bound, (len(raised), elapsed)
    assert len(delivered) - len(raised) <= 1
    assert bridged.warner.counts[CODE] == 100
    suppressed = [w.details.get("suppressed_since_last", 0) for w in delivered]
    assert suppressed[0] == 0 and all(n > 0 for n in suppressed[1:])
    # Every refusal is accounted for exactly once: delivered, or counted as suppressed.
    assert len(raised) + sum(suppressed) == 100
    # Every channel saw the same, bounded, number of deliveries.
    assert probe.count(CODE) == len(delivered)
    assert sum(e["event"] == "bridge_warning" and e["code"] == CODE for e in logs) == len(delivered)
    posted = [r for r in probe.receiver.received if r.code == CODE]
    assert [r.payload.get("details", {}).get("suppressed_since_last", 0) for r in posted] == (
        suppressed
    )
