"""Model-side warnings, each from a real cause through both emulators and the real clients."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from structlog.typing import EventDict

from callbridge.bridge.warnings import WarningCode
from callbridge.emulators.gemini_live import Fault, Pause, Script, Turn
from callbridge.emulators.stack import DEFAULT_MODEL
from callbridge.emulators.telcoflow import CallerScript, HangUp, Say, WaitForAgentAudio
from callbridge.emulators.telcoflow import Pause as Silence
from tests.e2e.scenarios import agent, caller_pcm
from tests.warnings.harness import probed_stack

NO_GREETING = {"greeting_prompt": None}
HANG_UP_SOON = CallerScript([Silence(0.3), HangUp()])


async def test_prompt_too_long_truncates_and_warns(logs: list[EventDict]) -> None:
    overrides = {
        "model": {**NO_GREETING, "system_instruction": "Be helpful. " * 30},
        "limits": {"max_prompt_chars": 100},
    }
    async with probed_stack(Script(), logs, overrides=overrides) as (stack, probe):
        call = stack.place_call(HANG_UP_SOON)
        got = await probe.expect(WarningCode.PROMPT_TOO_LONG)
        await call.ended(timeout=15)
    assert "360 characters; truncated to 100" in got.payload["description"]
    setup = stack.gemini.sessions[0].setup
    parts = setup["system_instruction"]["parts"]
    assert sum(len(p["text"]) for p in parts) == 100


async def test_unknown_model_without_fallback_ends_the_call_cleanly(
    logs: list[EventDict],
) -> None:
    overrides = {"model": {**NO_GREETING, "model": "no-such-model"}}
    async with probed_stack(Script(), logs, overrides=overrides) as (stack, probe):
        call = stack.place_call(CallerScript([]))
        got = await probe.expect(WarningCode.MODEL_REQUEST_FAILED)
        record = await call.ended(timeout=15)
    assert "no-such-model" in got.payload["description"]
    assert "ending the call" in got.payload["description"]
    assert stack.gemini.sessions[0].close_code == 1008
    assert record.end_reason == "agent_disconnect"
    assert [c.name for c in record.commands] == ["call.answer", "call.disconnect"]
    assert record.agent_audio_bytes == 0, "nothing is played when no model connects"


def _model_section(backend: str, tmp_path: Path, **model: Any) -> dict[str, Any]:
    """The tenant's model section for the raw back end or the same call through ADK."""
    if backend == "adk":
        model |= {
            "backend": "adk",
            "adk_agent": "tests.e2e.adk_agent:root_agent",  # names no model: the tenant's
            "adk_session_db": f"sqlite+aiosqlite:///{tmp_path}/adk.sqlite",
        }
    return model


@pytest.mark.parametrize("backend", ["gemini", "adk"])
async def test_neither_primary_nor_fallback_connects_ends_the_call_cleanly(
    logs: list[EventDict], backend: str, tmp_path: Path
) -> None:
    model = _model_section(
        backend, tmp_path, **NO_GREETING, model="bad-primary", fallback_model="bad-spare"
    )
    overrides = {"model": model}
    async with probed_stack(Script(), logs, overrides=overrides) as (stack, probe):
        call = stack.place_call(CallerScript([]))
        got = await probe.expect(WarningCode.MODEL_REQUEST_FAILED)
        record = await call.ended(timeout=15)
    description = got.payload["description"]
    assert "bad-primary" in description and "bad-spare" in description
    assert [s.close_code for s in stack.gemini.sessions] == [1008, 1008]
    assert record.end_reason == "agent_disconnect"
    assert [c.name for c in record.commands] == ["call.answer", "call.disconnect"]
    assert record.agent_audio_bytes == 0
    assert probe.raised(WarningCode.FALLBACK_MODEL_USED) == []


@pytest.mark.parametrize("backend", ["gemini", "adk"])
async def test_fallback_model_serves_the_call_when_the_primary_is_rejected(
    logs: list[EventDict], backend: str, tmp_path: Path
) -> None:
    script = Script(greeting=Turn([agent("agent_farewell")]))
    model = _model_section(backend, tmp_path, model="retired-model", fallback_model=DEFAULT_MODEL)
    overrides = {"model": model}
    async with probed_stack(script, logs, overrides=overrides) as (stack, probe):
        call = stack.place_call(CallerScript([WaitForAgentAudio(min_s=0.5), HangUp()]))
        got = await probe.expect(WarningCode.FALLBACK_MODEL_USED)
        record = await call.ended(timeout=20)
    assert got.payload["details"]["model"] == DEFAULT_MODEL
    assert "retired-model" in got.payload["description"]
    first, second = stack.gemini.sessions[:2]
    assert first.close_code == 1008 and second.model.endswith(DEFAULT_MODEL)
    assert record.agent_audio_bytes > 0, "the fallback model's greeting was heard"
    if backend == "adk":  # the agent itself was run again on the fallback
        parts = second.setup["system_instruction"]["parts"]
        assert "phone_agent" in "".join(p["text"] for p in parts)


async def test_model_connection_drop_mid_call_is_reported(logs: list[EventDict]) -> None:
    script = Script(faults=[Fault.close(0.5, code=1011, on_connection=0)])
    async with probed_stack(script, logs, overrides={"model": NO_GREETING}) as (stack, probe):
        call = stack.place_call(CallerScript([Silence(3.0), HangUp()]))
        got = await probe.expect(WarningCode.MODEL_REQUEST_FAILED)
        await call.ended(timeout=20)
    assert got.payload["details"]["close_code"] == 1011
    assert got.payload["details"]["action"] in ("reconnected", "resume_rejected")


async def test_slow_model_response(logs: list[EventDict]) -> None:
    script = Script(turns=[Turn([Pause(2.0), agent("agent_farewell")])])
    overrides = {"model": NO_GREETING, "warnings": {"slow_model_response_s": 0.5}}
    async with probed_stack(script, logs, overrides=overrides) as (stack, probe):
        call = stack.place_call(
            CallerScript(
                [
                    Silence(0.3),
                    Say(caller_pcm("caller_question", 16000)),
                    WaitForAgentAudio(min_s=0.3),
                    HangUp(),
                ]
            )
        )
        got = await probe.expect(WarningCode.SLOW_MODEL_RESPONSE)
        record = await call.ended(timeout=20)
    assert "after the caller stopped speaking" in got.payload["description"]
    assert record.agent_audio_bytes > 0, "the slow answer still arrived"


async def test_model_turn_stalled_mid_answer(logs: list[EventDict]) -> None:
    script = Script(greeting=Turn([agent("agent_transfer"), Pause(2.5), agent("agent_farewell")]))
    overrides = {"warnings": {"model_turn_stall_s": 0.5}}
    async with probed_stack(script, logs, overrides=overrides) as (stack, probe):
        call = stack.place_call(CallerScript([WaitForAgentAudio(min_s=0.5, timeout_s=10)]))
        got = await probe.expect(WarningCode.MODEL_TURN_INCOMPLETE)
        await call.hang_up()
    assert "stalled" in got.payload["description"]


async def test_model_turn_without_audio(logs: list[EventDict]) -> None:
    script = Script(
        turns=[Turn([agent("agent_farewell")], input_transcript="When does it arrive?")],
        faults=[Fault.turn_without_audio(0)],
    )
    async with probed_stack(script, logs, overrides={"model": NO_GREETING}) as (stack, probe):
        call = stack.place_call(
            CallerScript([Silence(0.3), Say(caller_pcm("caller_question", 16000))])
        )
        try:
            async with asyncio.timeout(10):
                while not stack.gemini.sessions or not stack.gemini.sessions[0].turn_started_at:
                    await asyncio.sleep(0.02)
            got = await probe.expect(WarningCode.MODEL_TURN_INCOMPLETE, timeout=5)
        finally:
            await call.hang_up()
    assert "without any audio" in got.payload["description"]
