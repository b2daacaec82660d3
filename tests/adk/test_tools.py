"""Call-control tools for ADK agents: declarations per model family, and real calls through an
unmodified ADK Runner against the emulator (same handlers as the raw back end, follow-up work
after the tool has returned, caller audio held while a BLOCKING transfer rings)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import pytest
from google.adk.agents import Agent, LlmAgent
from google.adk.agents.base_agent import BaseAgent
from google.adk.tools.tool_context import ToolContext as AdkToolContext
from google.genai import types

from callbridge.adapters.adk import AdkConnector, call_control_tools
from callbridge.adapters.adk.agent import prepare_agent
from callbridge.adapters.adk.calls import CallRegistry
from callbridge.adapters.adk.tools import CallControlTool, run_call_control
from callbridge.bridge.config import ModelSettings
from callbridge.bridge.errors import CallGone
from callbridge.bridge.ports import CallCommand, CommandOutcome
from callbridge.bridge.tools import end_call, transfer_to_human
from callbridge.emulators.gemini_live import CallTool, GeminiLiveEmulator, Script, Turn
from callbridge.emulators.voices import load_phrase
from tests.adk.helpers import (
    FAMILIES,
    FRAME,
    MODEL_3X,
    MODEL_25,
    FakeCall,
    FakeControl,
    ListSink,
    Recorder,
    request,
    say,
    speak,
    tenant_config,
    tool_context,
)


def _settings(model: str, **extra: Any) -> ModelSettings:
    return ModelSettings(backend="adk", adk_agent="x:y", model=model, **extra)


def _declared(agent: BaseAgent) -> dict[str, CallControlTool]:
    assert isinstance(agent, LlmAgent)
    return {t.name: t for t in agent.tools if isinstance(t, CallControlTool)}


def test_call_control_tools_are_declared_per_model_family() -> None:
    agent = Agent(name="desk", instruction="Help.", tools=[*call_control_tools()])
    originals = list(agent.tools)

    tools_25 = _declared(prepare_agent(agent, _settings(MODEL_25)).root)
    prepared_3x = prepare_agent(agent, _settings(MODEL_3X))
    tools_3x = _declared(prepared_3x.root)
    forced_settings = _settings(MODEL_3X, non_blocking_tools=True)
    forced = _declared(prepare_agent(agent, forced_settings).root)

    assert set(tools_25) == {"transfer_to_human", "end_call", "set_agent_mode"}
    for tool in tools_25.values():
        assert tool.behavior is types.Behavior.NON_BLOCKING
        assert tool.response_scheduling is types.FunctionResponseScheduling.WHEN_IDLE
    for tool in tools_3x.values():
        assert tool.behavior is types.Behavior.BLOCKING and tool.response_scheduling is None
    assert all(t.behavior is types.Behavior.NON_BLOCKING for t in forced.values())
    assert prepared_3x.non_blocking_tools == frozenset()
    # The user's agent and tools are untouched; an explicit choice is kept on any family.
    assert agent.tools == originals and agent.model == ""
    assert all(t.behavior is None for t in _declared(agent).values())
    pinned = Agent(name="pinned", tools=[*call_control_tools(non_blocking=False)])
    assert all(
        t.behavior is types.Behavior.BLOCKING
        for t in _declared(prepare_agent(pinned, _settings(MODEL_25)).root).values()
    )
    # The declaration is the bridge's own (same words and schema as the raw back end).
    declaration = tools_25["transfer_to_human"]._get_declaration()
    assert declaration is not None and declaration.parameters_json_schema is not None
    assert declaration.parameters_json_schema["required"] == ["reason"]


class _AdkContext:
    """Just enough of ADK's ToolContext for ``run_call_control`` (custom_metadata)."""

    def __init__(self, call_id: str) -> None:
        self.custom_metadata: Mapping[str, Any] = {"call_id": call_id}


def _adk(call_id: str) -> AdkToolContext:
    return cast(AdkToolContext, _AdkContext(call_id))


async def test_prepared_tools_act_on_their_connectors_calls_only(tmp_path: Path) -> None:
    """``prepare_agent`` binds copies of the call-control tools to the connector's live calls;
    the embedder's own tools stay unbound and answer "unavailable" wherever they run."""
    mine = call_control_tools(non_blocking=False)
    agent = Agent(name="desk", instruction="Help.", tools=[*mine])
    ours, theirs = CallRegistry(), CallRegistry()
    tools = _declared(prepare_agent(agent, _settings(MODEL_25), calls=ours).root)
    async with GeminiLiveEmulator() as emu:
        config = tenant_config(emu, MODEL_25, tmp_path / "db.sqlite")
    call, other = FakeCall(call_id="ours"), FakeCall(call_id="theirs")
    ours.bind("ours", tool_context(config, call, FakeControl(), ListSink()))
    theirs.bind("theirs", tool_context(config, other, FakeControl(), ListSink()))
    tool, args = tools["end_call"], {"reason": "done"}
    assert tool.calls is ours and tool is not mine[1]
    foreign = await tool.run_async(args=args, tool_context=_adk("theirs"))
    assert foreign["status"] == "unavailable"
    assert (await tool.run_async(args=args, tool_context=_adk("ours")))["status"] == "ending_call"
    assert call.sent() == [CallCommand.DISCONNECT] and other.sent() == []
    unbound = await mine[1].run_async(args=args, tool_context=_adk("ours"))
    assert unbound["status"] == "unavailable"


async def test_tool_outside_a_call_answers_unavailable() -> None:
    calls = CallRegistry()
    for registry in (calls, None):  # a call it does not know; a tool no connector bound
        result = await run_call_control(registry, "end_call", end_call, {}, _adk("no-such-call"))
        assert result["status"] == "unavailable"


@pytest.mark.parametrize(
    ("failure", "expected"),
    [(CallGone("gone"), "caller_gone"), (RuntimeError("boom"), "error")],
)
async def test_tool_failures_become_results(
    failure: Exception, expected: str, tmp_path: Path
) -> None:
    class Failing(FakeCall):
        async def command(
            self, command: CallCommand, *, ring_time_s: int | None = None
        ) -> CommandOutcome:
            raise failure

    async with GeminiLiveEmulator() as emu:
        config = tenant_config(emu, MODEL_25, tmp_path / "db.sqlite")
    call, control, sink = Failing(call_id="failing"), FakeControl(), ListSink()
    calls = CallRegistry()
    calls.bind("failing", tool_context(config, call, control, sink))
    result = await run_call_control(
        calls, "transfer_to_human", transfer_to_human, {"reason": "x"}, _adk("failing")
    )
    if expected == "caller_gone":
        assert result == {"status": "caller_gone"}
        assert control.finished == [("caller_hangup", "none")]
    else:
        assert result["error"] == "RuntimeError: boom"
        assert sink.codes() == ["TOOL_CALL_FAILED"]


@pytest.mark.parametrize("model", FAMILIES)
async def test_end_call_hangs_up_after_the_result_reached_the_model(
    model: str, tmp_path: Path
) -> None:
    script = Script(
        greeting=Turn([speak("agent_farewell", 0.5), CallTool("end_call", {"reason": "done"})])
    )
    agent = Agent(name="desk", instruction="Help.", tools=[*call_control_tools()])
    async with GeminiLiveEmulator(script=script) as emu:
        config = tenant_config(emu, model, tmp_path / "adk.sqlite")
        call, sink = FakeCall(), ListSink()
        # The hang-up waits until the emulator has the tool's result: had the follow-up run
        # inside the tool, ADK could never send that result and this would time out.
        control = FakeControl(played=lambda: bool(emu.sessions[0].tool_responses))
        ctx = tool_context(config, call, control, sink)
        async with (
            AdkConnector(config, agent=agent) as connector,
            connector.open(request()) as session,
        ):
            session.bind_call(ctx)
            rec = Recorder(session.events())
            async with asyncio.TaskGroup() as tg:
                reader = tg.create_task(rec.run())
                await session.send_text("Say goodbye.")
                async with asyncio.timeout(20):
                    await control.done.wait()
                reader.cancel()
        log = emu.sessions[0]

    assert call.sent() == [CallCommand.DISCONNECT]
    assert control.finished == [("agent_hangup", "none")]
    (response,) = log.tool_responses
    assert response["name"] == "end_call" and response["response"] == {"status": "ending_call"}
    declared = {
        d["name"]: d.get("behavior")
        for tool in log.setup["tools"]
        for d in tool["function_declarations"]
    }
    if model == MODEL_25:
        # callbridge.bridge.scheduling: an ended call needs no reaction (set as ADK sends the
        # result).
        assert declared["end_call"] == "NON_BLOCKING" and response["scheduling"] == "SILENT"
    else:
        assert declared["end_call"] == "BLOCKING" and "scheduling" not in response
    tool_entries = [(e.data["name"], e.data["status"]) for e in ctx.record.events("tool")]
    assert tool_entries == [("end_call", "started"), ("end_call", "done")]
    assert [e.data["command"] for e in ctx.record.events("command")] == ["disconnect"]


@pytest.mark.parametrize("model", FAMILIES)
async def test_transfer_rings_while_caller_audio_keeps_flowing(model: str, tmp_path: Path) -> None:
    """2.5: the transfer runs NON_BLOCKING, caller audio reaches the model while it rings.
    3.x: it is BLOCKING, so the audio is held (the emulator closes 1008 on audio while a
    BLOCKING call is pending, like the real service) and released once the result is sent."""
    script = Script(
        turns=[
            Turn(
                [
                    speak("agent_transfer", 0.3),
                    CallTool("transfer_to_human", {"reason": "wants a person"}),
                    speak("agent_unanswered", 0.5),
                ],
                input_transcript=load_phrase("caller_bargein").text,
            )
        ]
    )
    agent = Agent(name="desk", instruction="Help.", tools=[*call_control_tools()])
    async with GeminiLiveEmulator(script=script) as emu:
        config = tenant_config(emu, model, tmp_path / "adk.sqlite")
        call = FakeCall(connect_outcome="CALL_UNANSWERED", ring_s=0.6)
        sink = ListSink()
        ctx = tool_context(config, call, FakeControl(), sink)
        async with (
            AdkConnector(config, agent=agent) as connector,
            connector.open(request()) as session,
        ):
            session.bind_call(ctx)
            rec = Recorder(session.events())
            async with asyncio.TaskGroup() as tg:
                reader = tg.create_task(rec.run())
                await say(session.send_audio, emu, "caller_bargein")
                async with asyncio.timeout(20):
                    await call.ringing.wait()
                # The caller's line keeps sending (silence) in real time while it rings.
                while "sorry" not in rec.said():
                    await session.send_audio(bytes(FRAME))
                    await asyncio.sleep(0.02)
                reader.cancel()
            held = session.queue.held_total_bytes
        log = emu.sessions[0]

    (response,) = log.tool_responses
    assert response["response"]["status"] == "unanswered"
    assert response["response"]["error_code"] == "CALL_UNANSWERED"
    assert call.sent() == [CallCommand.CONNECT]
    assert "CALL_COMMAND_FAILED" in sink.codes()
    assert log.close_code != 1008 and not any("1008" in note for note in log.notes)
    rang_at = call.commands[0][0]
    answered_at = next(t for t, kind in log.sent if kind == "audio" and t > rang_at + 0.6)
    during = [t for t, _ in log.audio_in if rang_at + 0.1 < t < answered_at - 0.1]
    if model == MODEL_25:
        assert held == 0 and during, "caller audio should reach the model while it rings"
    else:
        assert held > 0 and not during, "caller audio must be held during a BLOCKING call"
        assert any(t > answered_at for t, _ in log.audio_in), "held audio is released after"
