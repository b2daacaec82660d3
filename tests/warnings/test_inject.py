"""``BridgedCall.inject``: refused (with a warning) while someone speaks, sent otherwise."""

from __future__ import annotations

import asyncio

from structlog.typing import EventDict

from callbridge.bridge.warnings import WarningCode
from callbridge.emulators.gemini_live import Script, Turn
from callbridge.emulators.telcoflow import CallerScript, Say
from callbridge.emulators.telcoflow import Pause as Silence
from tests.e2e.scenarios import agent, caller_pcm
from tests.warnings.harness import live_call, probed_stack

NO_GREETING = {"model": {"greeting_prompt": None}}
TEXT = "Your parcel left the depot at nine."


async def test_refused_while_the_agent_speaks(logs: list[EventDict]) -> None:
    script = Script(greeting=Turn([agent("agent_answer_long")]))
    async with probed_stack(script, logs) as (stack, probe):
        call = stack.place_call(CallerScript([]))
        bridged = await live_call(stack, call)
        async with asyncio.timeout(10):
            while not bridged.agent_speaking:
                await asyncio.sleep(0.01)
        assert await bridged.inject(TEXT) is False
        got = await probe.expect(WarningCode.INJECT_MESSAGE_DURING_AGENT_SPEECH)
        await call.hang_up()
    assert got.payload["call_id"] == call.call_id
    assert TEXT not in " ".join(stack.gemini.sessions[0].texts_in)


async def test_refused_while_the_caller_speaks(logs: list[EventDict]) -> None:
    async with probed_stack(Script(), logs, overrides=NO_GREETING) as (stack, probe):
        call = stack.place_call(
            CallerScript([Silence(0.3), Say(caller_pcm("caller_bargein", 16000))])
        )
        bridged = await live_call(stack, call)
        async with asyncio.timeout(10):
            while not bridged.caller.speaking:
                await asyncio.sleep(0.01)
        assert await bridged.inject(TEXT) is False
        await probe.expect(WarningCode.INJECT_MESSAGE_DURING_USER_SPEECH)
        await call.hang_up()
    assert TEXT not in " ".join(stack.gemini.sessions[0].texts_in)


async def test_sent_to_the_model_when_nobody_speaks(logs: list[EventDict]) -> None:
    script = Script(fallback=Turn([agent("agent_farewell")]))
    async with probed_stack(script, logs, overrides=NO_GREETING) as (stack, probe):
        call = stack.place_call(CallerScript([]))
        bridged = await live_call(stack, call)
        await asyncio.sleep(0.3)
        assert not bridged.caller.speaking and not bridged.agent_speaking
        assert await bridged.inject(TEXT) is True
        session = stack.gemini.sessions[0]
        async with asyncio.timeout(10):
            while not any(TEXT in text for text in session.texts_in):
                await asyncio.sleep(0.02)
            while call.record.agent_audio_bytes == 0:  # and the model said it
                await asyncio.sleep(0.02)
        await call.hang_up()
    assert probe.hooked == [], "a successful inject raises no warning"
