"""Call-side warnings (tools, commands, audio, admission), each from a real cause."""

from __future__ import annotations

import asyncio

from structlog.typing import EventDict

from callbridge.bridge.runner import NamedConnector
from callbridge.bridge.warnings import BridgeWarning, WarningCode, WarningSink
from callbridge.emulators.gemini_live import CallTool, GeminiLiveEmulator, Script, Speak, Turn
from callbridge.emulators.stack import LocalStack
from callbridge.emulators.telcoflow import (
    CallerScript,
    ConnectOutcome,
    HangUp,
    Say,
    TelcoflowEmulator,
    WaitForAgentAudio,
)
from callbridge.emulators.telcoflow import Pause as Silence
from callbridge.service.admission import admit_all
from callbridge.service.app import BridgeApp, build_connectors
from tests.e2e.scenarios import agent, caller_pcm
from tests.warnings.harness import SECRET, WarningProbe, probed_stack
from tests.warnings.receiver import WebhookReceiver

TOOLS = "tests.warnings.user_tools"


def lookup_script() -> Script:
    return Script(greeting=Turn([CallTool("lookup", {"order": "42"}), agent("agent_farewell")]))


async def test_tool_that_raises(logs: list[EventDict]) -> None:
    overrides = {"tools": {"custom": {"lookup": f"{TOOLS}:failing_lookup"}}}
    async with probed_stack(lookup_script(), logs, overrides=overrides) as (stack, probe):
        call = stack.place_call(CallerScript([WaitForAgentAudio(min_s=0.3), HangUp()]))
        got = await probe.expect(WarningCode.TOOL_CALL_FAILED)
        await call.ended(timeout=20)
    assert got.payload["details"]["tool"] == "lookup"
    assert "LookupError" in got.payload["description"]
    [response] = stack.gemini.sessions[0].tool_responses
    assert "order backend is unreachable" in response["response"]["error"]


async def test_slow_tool(logs: list[EventDict]) -> None:
    overrides = {
        "tools": {"custom": {"lookup": f"{TOOLS}:slow_lookup"}},
        "warnings": {"slow_tool_call_s": 0.3},
    }
    async with probed_stack(lookup_script(), logs, overrides=overrides) as (stack, probe):
        call = stack.place_call(CallerScript([WaitForAgentAudio(min_s=0.3), HangUp()]))
        got = await probe.expect(WarningCode.SLOW_TOOL_CALL)
        await call.ended(timeout=20)
    assert got.payload["details"]["tool"] == "lookup"
    [response] = stack.gemini.sessions[0].tool_responses
    assert response["response"]["status"] == "shipped", "the slow tool still answered"


async def test_unanswered_transfer_is_a_failed_command(logs: list[EventDict]) -> None:
    script = Script(
        greeting=Turn([CallTool("transfer_to_human", {"reason": "wants a person"})]),
    )
    overrides = {"model": {"greeting_prompt": "Greet."}, "tools": {"ring_time_s": 1}}
    async with probed_stack(script, logs, overrides=overrides) as (stack, probe):
        call = stack.place_call(CallerScript([]), connect_outcomes=[ConnectOutcome.unanswered()])
        got = await probe.expect(WarningCode.CALL_COMMAND_FAILED)
        await call.hang_up()
    details = got.payload["details"]
    assert details == {"command": "connect", "error_code": "CALL_UNANSWERED"}


async def test_failed_interrupt_after_barge_in(logs: list[EventDict]) -> None:
    script = Script(greeting=Turn([agent("agent_answer_long")]), fallback=Turn())
    async with probed_stack(script, logs) as (stack, probe):
        call = stack.place_call(
            CallerScript([WaitForAgentAudio(min_s=1.0), Say(caller_pcm("caller_bargein", 16000))])
        )
        call.fail_next("agent.interrupt", "INTERNAL_ERROR", "media server busy")
        got = await probe.expect(WarningCode.CALL_COMMAND_FAILED)
        await call.hang_up()
    assert got.payload["details"] == {"command": "agent.interrupt", "error_code": "INTERNAL_ERROR"}


async def test_model_bursting_past_the_pending_audio_bound(logs: list[EventDict]) -> None:
    """The model sends 15 s of speech at once while the call plays in real time.

    ``audio.max_pending_agent_audio_s`` is at its minimum (5 s) and the call's send buffer is
    kept small, so about 10 s of the oldest queued speech has to go.
    """
    long = agent("agent_answer_long")
    burst = Speak(long.pcm * 2, long.text + " " + long.text)
    gemini = GeminiLiveEmulator(script=Script(greeting=Turn([burst])), burst_speed=0)
    overrides = {"audio": {"max_pending_agent_audio_s": 5, "playout_high_water_s": 0.5}}
    async with probed_stack(Script(), logs, overrides=overrides, gemini=gemini) as (stack, probe):
        call = stack.place_call(CallerScript([]))
        got = await probe.expect(WarningCode.SEND_BUFFER_FULL)
        await call.hang_up()
    assert "oldest audio dropped" in got.payload["description"]
    assert stack.app is not None


class _LateSink:
    """The admission limiter needs a sink before the app (and its hub) exists."""

    target: WarningSink | None = None

    def submit(self, warning: BridgeWarning) -> None:
        assert self.target is not None
        self.target.submit(warning)


async def test_call_admission_delayed_by_the_connect_rate(logs: list[EventDict]) -> None:
    script = Script(greeting=Turn([agent("agent_farewell")]))
    async with (
        WebhookReceiver(SECRET) as receiver,
        GeminiLiveEmulator(script=script) as gemini,
        TelcoflowEmulator(api_key="k", connector_uuid="c") as telco,
    ):
        probe = WarningProbe(receiver, logs)
        config = LocalStack(script, gemini=gemini, telcoflow=telco).tenant_config()
        sink = _LateSink()
        named = build_connectors(config)
        wrapped, _, stats = admit_all(
            [n.connector for n in named], per_minute=120, burst=1, max_wait_s=3.0, sink=sink
        )
        app = BridgeApp(
            config,
            connectors=[NamedConnector(n.model, w) for n, w in zip(named, wrapped, strict=True)],
            warning_handlers=probe.handlers,
        )
        sink.target = app.warnings
        async with asyncio.TaskGroup() as group:
            task = group.create_task(app.run())
            async with asyncio.timeout(15):
                await app.source.ready.wait()
            first = telco.place_call(CallerScript([WaitForAgentAudio(min_s=0.3), HangUp()]))
            second = telco.place_call(CallerScript([WaitForAgentAudio(min_s=0.3), HangUp()]))
            got = await probe.expect(WarningCode.CALL_ADMISSION_DELAYED)
            records = [await first.ended(timeout=20), await second.ended(timeout=20)]
            app.stop_claiming()
            async with asyncio.timeout(20):
                await asyncio.shield(task)
    assert stats.delayed == 1 and stats.refused == 0
    assert 0 < got.payload["details"]["wait_s"] <= 0.5
    assert all(r.agent_audio_bytes > 0 for r in records), "the delayed call was still served"


async def test_caller_audio_dropped_while_a_blocking_tool_runs(logs: list[EventDict]) -> None:
    overrides = {
        "tools": {"custom": {"lookup": f"{TOOLS}:blocking_lookup"}},
        "model": {"non_blocking_tools": False},
        "audio": {"max_gated_caller_audio_s": 1},
    }
    async with probed_stack(lookup_script(), logs, overrides=overrides) as (stack, probe):
        call = stack.place_call(CallerScript([Silence(1.0), Say(caller_pcm("caller_bye", 16000))]))
        try:
            await probe.expect(WarningCode.CALLER_AUDIO_DROPPED, timeout=5)
        finally:
            await call.hang_up()


async def test_telephony_call_error_event(logs: list[EventDict]) -> None:
    script = Script(greeting=Turn([agent("agent_greeting")]))
    async with probed_stack(script, logs) as (stack, probe):
        call = stack.place_call(CallerScript([]))
        try:
            await call.answered()
            await asyncio.sleep(0.5)
            assert await call.inject_call_error("TTS_SESSION_ERROR", "tts backend reset")
            got = await probe.expect(WarningCode.TELEPHONY_CALL_ERROR, timeout=3)
            assert got.payload["details"]["error_code"] == "TTS_SESSION_ERROR"
        finally:
            await call.hang_up()
