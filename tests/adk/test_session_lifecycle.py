"""AdkSession's life cycle against the emulator: a model that cannot be had fails the open (so
the runner can fall back), ADK's own reconnects surface as notices, a fatal close ends the event
stream with ModelUnavailable, and nothing of the call is left in the connector's live calls."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from google.adk.sessions.database_session_service import DatabaseSessionService

from callbridge.adapters.adk import AdkConnector
from callbridge.bridge.errors import ModelUnavailable
from callbridge.bridge.events import SessionNotice, TurnComplete
from callbridge.bridge.ports import CallCommand
from callbridge.emulators.gemini_live import CallTool, Fault, GeminiLiveEmulator, Script, Turn
from tests.adk.helpers import (
    MODEL_25,
    FakeCall,
    FakeControl,
    ListSink,
    Recorder,
    audio_of,
    request,
    speak,
    tenant_config,
    tool_context,
)


def _kinds(rec: Recorder) -> list[str]:
    return [e.kind for e in rec.events if isinstance(e, SessionNotice)]


async def test_open_fails_when_the_model_rejects_the_setup(tmp_path: Path) -> None:
    async with GeminiLiveEmulator() as emu:
        config = tenant_config(emu, "not-a-gemini-model", tmp_path / "adk.sqlite")
        async with AdkConnector(config) as connector:
            with pytest.raises(ModelUnavailable) as info:
                async with connector.open(request()):
                    pytest.fail("the session must not open")
    assert info.value.close_code == 1008
    assert len(connector.calls) == 0


async def test_open_fails_when_nothing_listens(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with GeminiLiveEmulator() as emu:
        config = tenant_config(
            emu, MODEL_25, tmp_path / "adk.sqlite", base_url=f"https://127.0.0.1:{port}"
        )
        async with AdkConnector(config) as connector:
            with pytest.raises(ModelUnavailable, match="cannot connect"):
                async with connector.open(request()):
                    pytest.fail("the session must not open")


@pytest.mark.parametrize(
    ("fault", "notices"),
    [
        (Fault.go_away(0.3, time_left_s=1.0, on_connection=0), ["go_away", "rotated"]),
        (Fault.close(0.3, code=1011, on_connection=0), ["reconnected"]),
    ],
)
async def test_adk_reconnects_are_reported_and_the_call_goes_on(
    fault: Fault, notices: list[str], tmp_path: Path
) -> None:
    greeting = speak("agent_greeting", 0.5)
    script = Script(greeting=Turn([greeting]), faults=[fault])
    async with GeminiLiveEmulator(script=script) as emu:
        config = tenant_config(emu, MODEL_25, tmp_path / "adk.sqlite")
        async with (
            AdkConnector(config) as connector,
            connector.open(request()) as session,
        ):
            rec = Recorder(session.events())
            async with asyncio.TaskGroup() as tg:
                reader = tg.create_task(rec.run())
                await emu.wait_sessions(2)
                await emu.sessions[0].wait_closed()
                await session.send_text("Greet the caller.")
                await rec.wait_for(lambda ev: rec.count(TurnComplete) >= 1)
                reader.cancel()
            assert session.connections == 2
    assert _kinds(rec) == notices
    assert emu.sessions[1].resumed_from is not None
    assert audio_of(rec.events) == greeting.pcm


async def test_a_fatal_close_ends_the_events_with_model_unavailable(tmp_path: Path) -> None:
    script = Script(faults=[Fault.close(0.3, code=1007, reason="Request contains an invalid")])
    async with GeminiLiveEmulator(script=script) as emu:
        config = tenant_config(emu, MODEL_25, tmp_path / "adk.sqlite", session_resumption=False)
        async with (
            AdkConnector(config) as connector,
            connector.open(request()) as session,
        ):
            with pytest.raises(ModelUnavailable) as info:
                async with asyncio.timeout(20):
                    async for _ in session.events():
                        pass
    assert info.value.close_code == 1007
    assert len(connector.calls) == 0


async def test_concurrent_calls_keep_their_own_tools_and_sessions(tmp_path: Path) -> None:
    """One connector, three calls at once: each call's end_call hangs up that call only, and
    each conversation is its own ADK session."""
    script = Script(greeting=Turn([speak("agent_farewell", 0.3), CallTool("end_call", {})]))
    async with GeminiLiveEmulator(script=script) as emu:
        config = tenant_config(emu, MODEL_25, tmp_path / "adk.sqlite")
        calls = {f"call-{i}": FakeCall(call_id=f"call-{i}") for i in range(3)}
        controls = {call_id: FakeControl() for call_id in calls}

        async def one_call(connector: AdkConnector, call_id: str) -> None:
            ctx = tool_context(config, calls[call_id], controls[call_id], ListSink())
            async with connector.open(request(call_id)) as session:
                session.bind_call(ctx)
                await session.send_text("Say goodbye.")
                async with asyncio.timeout(20):
                    await controls[call_id].done.wait()

        async with AdkConnector(config) as connector, asyncio.TaskGroup() as tg:
            for call_id in calls:
                tg.create_task(one_call(connector, call_id))
        app_name = connector.runner.app_name

    assert all(call.sent() == [CallCommand.DISCONNECT] for call in calls.values())
    assert all(c.finished == [("agent_hangup", "none")] for c in controls.values())
    assert len(emu.sessions) == 3 and len(connector.calls) == 0
    reopened = DatabaseSessionService(db_url=f"sqlite+aiosqlite:///{tmp_path / 'adk.sqlite'}")
    try:
        listed = await reopened.list_sessions(app_name=app_name)
    finally:
        await reopened.close()
    assert sorted(s.id for s in listed.sessions) == sorted(calls)
