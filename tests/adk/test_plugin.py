"""CallbridgePlugin on a user's App: tool outcomes and warnings reach the call's record while an
unmodified ADK Runner runs the tools (a failing one and a slow one) against the emulator."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from google.adk.agents import Agent
from google.adk.apps.app import App
from google.adk.plugins.base_plugin import BasePlugin

from callbridge.adapters.adk import AdkConnector, CallbridgePlugin
from callbridge.bridge.events import TurnComplete
from callbridge.emulators.gemini_live import CallTool, GeminiLiveEmulator, Script, Turn
from tests.adk.helpers import (
    FAMILIES,
    FakeCall,
    FakeControl,
    ListSink,
    Recorder,
    request,
    speak,
    tenant_config,
    tool_context,
)


class OtherPlugin(BasePlugin):
    """A plugin of the user's own, which must be kept."""

    def __init__(self) -> None:
        super().__init__(name="other")


async def boom(item: str) -> dict[str, Any]:
    """A tool that fails."""
    raise RuntimeError(f"no such item {item}")


async def slow_lookup(item: str) -> dict[str, Any]:
    """A tool that takes a while."""
    await asyncio.sleep(0.4)
    return {"item": item, "stock": 3}


@pytest.mark.parametrize("model", FAMILIES)
async def test_plugin_records_tools_warns_and_answers_errors(model: str, tmp_path: Path) -> None:
    plugin = CallbridgePlugin(slow_tool_after_s=0.15, record_transcripts=True)
    other = OtherPlugin()
    agent = Agent(name="shop", instruction="Help.", tools=[boom, slow_lookup])
    app = App(name="shop_app", root_agent=agent, plugins=[other, plugin])
    farewell = speak("agent_farewell", 0.6)
    script = Script(
        greeting=Turn(
            [
                speak("agent_greeting", 0.4),
                CallTool("boom", {"item": "x"}),
                CallTool("slow_lookup", {"item": "y"}),
                farewell,
            ]
        )
    )
    async with GeminiLiveEmulator(script=script) as emu:
        config = tenant_config(emu, model, tmp_path / "adk.sqlite")
        sink = ListSink()
        ctx = tool_context(config, FakeCall(), FakeControl(), sink)
        async with (
            AdkConnector(config, agent=app) as connector,
            connector.open(request()) as session,
        ):
            session.bind_call(ctx)
            rec = Recorder(session.events())
            async with asyncio.TaskGroup() as tg:
                reader = tg.create_task(rec.run())
                await session.send_text("Go.")
                await rec.wait_for(
                    lambda ev: "goodbye" in rec.said() and isinstance(ev[-1], TurnComplete)
                )
                reader.cancel()
        log = emu.sessions[0]

    # The App's plugins are kept, in order, and no second CallbridgePlugin is added.
    assert connector.app.plugins == [other, plugin]
    assert connector.app.name == "shop_app"
    entries = [(e.data["name"], e.data["status"]) for e in ctx.record.events("tool")]
    assert entries == [
        ("boom", "started"),
        ("boom", "failed"),
        ("slow_lookup", "started"),
        ("slow_lookup", "done"),
    ]
    done = ctx.record.events("tool")[-1].data
    assert done["response"] == {"item": "y", "stock": 3} and done["elapsed_s"] > 0
    assert sorted(sink.codes()) == ["SLOW_TOOL_CALL", "TOOL_CALL_FAILED"]
    # The failure went back to the model as a result, and the conversation went on.
    responses = {r["name"]: r["response"] for r in log.tool_responses}
    assert "no such item x" in responses["boom"]["error"]
    assert responses["slow_lookup"] == {"item": "y", "stock": 3}
    # Finished transcripts (on 3.x the whole turn is one utterance: no turnComplete at tools).
    speaker, text = ctx.record.transcripts()[-1]
    assert speaker == "agent" and text.endswith(farewell.text)
    assert plugin.counters["tool_calls"] == 2 and plugin.counters["tool_errors"] == 1
    assert plugin.counters["slow_tools"] == 1 and plugin.counters["audio_chunks"] > 0
    assert plugin.counters["function_calls"] == 2


async def test_connector_adds_the_plugin_to_a_bare_agent(tmp_path: Path) -> None:
    async with GeminiLiveEmulator() as emu:
        config = tenant_config(emu, FAMILIES[0], tmp_path / "adk.sqlite")
        bare = Agent(name="bare", instruction="Hi.")
        async with AdkConnector(config, agent=bare) as connector:
            (added,) = connector.app.plugins
    assert isinstance(added, CallbridgePlugin) and connector.app.name == "bare"
    assert connector.calls is added.calls


async def test_each_app_has_its_own_live_calls_held_by_its_plugin(tmp_path: Path) -> None:
    """No process-wide registry: the connector uses the live calls of its App's plugin (the
    embedder's own, if the App has one), its sessions register calls there, and another App's
    connector sees none of them."""
    plugin = CallbridgePlugin()
    app = App(name="shop_app", root_agent=Agent(name="shop", instruction="Hi."), plugins=[plugin])
    async with GeminiLiveEmulator() as emu:
        config = tenant_config(emu, FAMILIES[0], tmp_path / "adk.sqlite")
        bare = Agent(name="bare", instruction="Hi.")
        async with (
            AdkConnector(config, agent=app) as connector,
            AdkConnector(config, agent=bare) as other,
        ):
            assert connector.calls is plugin.calls and other.calls is not plugin.calls
            async with connector.open(request("call-a")):
                assert plugin.calls.get("call-a") is not None
                assert other.calls.get("call-a") is None
            assert len(plugin.calls) == 0, "a closed session leaves nothing behind"
