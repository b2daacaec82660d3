"""A webhook receiver that stalls or is down must not delay a single audio frame."""

from __future__ import annotations

import asyncio
import itertools
from typing import Literal

import pytest
from structlog.typing import EventDict

from callbridge.bridge.warnings import WarningCode
from callbridge.emulators.gemini_live import Script, Turn
from callbridge.emulators.telcoflow import CallerScript, PulledFrame
from callbridge.service.webhook import RetryPolicy
from tests.e2e.scenarios import agent
from tests.warnings.harness import SECRET, live_call, probed_stack
from tests.warnings.receiver import WebhookReceiver, free_port

CODE = WarningCode.INJECT_MESSAGE_DURING_AGENT_SPEECH
MAX_GAP_S = 0.2
"""Frames are 20 ms apart (measured: under 30 ms); one stalled webhook attempt is 5 s."""


def max_gap(times: list[float]) -> float:
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


@pytest.mark.parametrize("receiver_state", ["stalls", "down"])
async def test_warnings_to_a_stuck_webhook_do_not_touch_the_audio(
    logs: list[EventDict], receiver_state: Literal["stalls", "down"]
) -> None:
    script = Script(greeting=Turn([agent("agent_answer_long")]))
    async with WebhookReceiver(SECRET, delay_s=5.0) as receiver:
        url = None if receiver_state == "stalls" else f"http://127.0.0.1:{free_port()}/w"
        probe_kwargs = {
            "url": url,
            "webhook_timeout_s": 5.0,  # the product default: each attempt may hang 5 s
            "retry": RetryPolicy(max_attempts=4, base_delay_s=0.5),
        }
        async with probed_stack(
            script,
            logs,
            overrides={"warnings": {"min_interval_s": 0}},
            receiver=receiver,
            probe_kwargs=probe_kwargs,
        ) as (stack, probe):
            call = stack.place_call(CallerScript([]))
            bridged = await live_call(stack, call)
            async with asyncio.timeout(10):
                while not bridged.agent_speaking:
                    await asyncio.sleep(0.01)
            window_start = asyncio.get_running_loop().time()
            for _ in range(40):  # 40 warnings over ~2 s, every one delivered (no rate limit)
                assert await bridged.inject("now!") is False
                await asyncio.sleep(0.05)
            window_end = asyncio.get_running_loop().time()
            # The hub handed every warning to the log, counter and hook meanwhile...
            async with asyncio.timeout(2):
                while len(probe.raised(CODE)) < 40:
                    await asyncio.sleep(0.01)
            # ...while the webhook is still stuck on its first one.
            assert probe.webhook.stats.delivered == 0
            assert probe.webhook.pending >= 38
            await call.hang_up()
        record = call.record
    if receiver_state == "stalls":
        assert len(receiver.received) >= 1, "the receiver really was holding a request"
    # Caller audio reached the model frame by frame (20 ms each) all through the window,
    frames = (window_end - window_start) / 0.02
    session = stack.gemini.sessions[0]
    received = [t for t, _ in session.audio_in if window_start <= t <= window_end]
    assert len(received) >= 0.8 * frames
    assert max_gap(received) < MAX_GAP_S
    # and the platform pulled agent audio steadily, never finding the bridge behind.
    pulls: list[PulledFrame] = [p for p in record.pulls if window_start <= p.t <= window_end]
    assert len(pulls) >= 0.8 * frames
    assert max_gap([p.t for p in pulls]) < MAX_GAP_S
    assert record.underruns == 0
