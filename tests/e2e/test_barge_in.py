"""Barge-in, hang-up and credential errors, asserted on what the emulators recorded."""

from __future__ import annotations

import asyncio

import pytest

from callbridge.adapters.telcoflow.source import TelcoflowCallSource, TelephonyUnavailable
from callbridge.bridge.audio import rms
from callbridge.bridge.config import TelcoflowSettings
from callbridge.emulators.gemini_live import Script, Turn
from callbridge.emulators.stack import LocalStack
from callbridge.emulators.telcoflow import (
    CallerScript,
    HangUp,
    Pause,
    Say,
    TelcoflowEmulator,
    WaitForAgentAudio,
)
from tests.e2e.scenarios import agent, caller_pcm

LONG_ANSWER = Script(
    greeting=None,
    turns=[
        Turn([agent("agent_answer_long")], input_transcript="Hello"),
        Turn([agent("agent_farewell")], input_transcript="Wait"),
    ],
)


async def test_barge_in_clears_and_no_stale_audio_is_pulled_after_interrupt() -> None:
    async with LocalStack(LONG_ANSWER, overrides={"model": {"greeting_prompt": None}}) as stack:
        call = stack.place_call(
            CallerScript(
                [
                    Pause(0.5),
                    Say(caller_pcm("caller_greeting", 16000)),
                    WaitForAgentAudio(min_s=1.5, timeout_s=15),
                    Say(caller_pcm("caller_bargein", 16000)),
                    WaitForAgentAudio(min_s=0.5, timeout_s=15),
                    Pause(0.5),
                    HangUp(),
                ]
            )
        )
        record = await call.ended(timeout=60)
    gemini = stack.gemini.sessions[0]
    assert len(gemini.interrupted_at) == 1
    assert len(record.interrupts) == 1, "the bridge must send exactly one agent.interrupt"
    interrupt_sent = gemini.interrupted_at[0]
    interrupt_received = record.interrupts[0]
    assert interrupt_received >= interrupt_sent
    # Nothing of the interrupted turn is pulled once agent.interrupt has arrived: the next
    # turn cannot start before the caller's barge-in utterance has ended (> 1 s later).
    window_end = interrupt_received + 1.0
    stale = [
        frame
        for frame in record.pulls
        if interrupt_received < frame.t < window_end and rms(frame.pcm) > 200
    ]
    assert stale == [], f"{sum(len(f.pcm) for f in stale)} B of stale agent audio pulled"
    # And the answer after the barge-in was heard.
    assert any(frame.t > window_end and rms(frame.pcm) > 200 for frame in record.pulls)


async def test_caller_hang_up_mid_answer_ends_model_session_and_tasks() -> None:
    async with LocalStack(LONG_ANSWER, overrides={"model": {"greeting_prompt": None}}) as stack:
        call = stack.place_call(
            CallerScript(
                [
                    Pause(0.5),
                    Say(caller_pcm("caller_greeting", 16000)),
                    WaitForAgentAudio(min_s=1.0, timeout_s=15),
                    HangUp(),
                ]
            )
        )
        record = await call.ended(timeout=60)
        assert record.end_reason == "caller_hangup"
        assert stack.app is not None
        async with asyncio.timeout(5):
            while stack.app.source.active_calls:
                await asyncio.sleep(0.02)
        session = stack.gemini.sessions[0]
        async with asyncio.timeout(5):
            while session.closed_at is None:
                await asyncio.sleep(0.02)
        assert session.closed_at >= record.ended_at - 0.5
        assert stack.app.runner.live == {}


async def test_bad_telcoflow_key_gives_a_clear_error() -> None:
    async with TelcoflowEmulator(api_key="right", connector_uuid="c") as emu:
        settings = TelcoflowSettings(base_url=emu.base_url, api_key="wrong", connector_uuid="c")

        async def never(_: object) -> None:
            raise AssertionError("no call expected")

        source = TelcoflowCallSource(
            settings, sample_rate=16000, handle_call=never, max_concurrent_calls=1
        )
        with pytest.raises(TelephonyUnavailable, match="invalid api key or connector uuid"):
            await source.run()
