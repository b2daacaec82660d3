"""An unmodified ADK Runner through AdkSession against the Gemini Live emulator.

Both model families: a greeting, a caller turn answered with a tool ADK executes (once, with
its result reaching the emulator and no ``ToolCall`` for the bridge), a barge-in surfacing as
``Interrupted``, and the ADK session found in the database by a fresh service afterwards.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from google.adk.agents import Agent
from google.adk.sessions.database_session_service import DatabaseSessionService
from google.adk.tools.function_tool import FunctionTool

from callbridge.adapters.adk import AdkConnector
from callbridge.bridge.events import (
    Interrupted,
    ModelAudio,
    ToolCall,
    Transcript,
    TurnComplete,
    Usage,
)
from callbridge.emulators.gemini_live import CallTool, GeminiLiveEmulator, Script, Turn
from callbridge.emulators.voices import load_phrase
from tests.adk.helpers import (
    CALL_ID,
    FAMILIES,
    Recorder,
    audio_of,
    expected_user,
    request,
    say,
    speak,
    tenant_config,
)

ORDER = {"status": "shipped", "eta": "Thursday"}


@pytest.mark.parametrize("model", FAMILIES)
async def test_greeting_turn_tool_barge_in_and_persistence(model: str, tmp_path: Path) -> None:
    lookups: list[str] = []

    async def lookup_order(order_id: str) -> dict[str, str]:
        """Look up an order by its id."""
        lookups.append(order_id)
        return ORDER

    tool = FunctionTool(lookup_order)
    agent = Agent(name="order_desk", instruction="Help the caller.", tools=[tool])
    greeting, answer, farewell = (
        speak("agent_greeting", 1.0),
        speak("agent_answer_long"),
        speak("agent_farewell", 0.8),
    )
    lookup = CallTool("lookup_order", {"order_id": "A1"})
    script = Script(
        greeting=Turn([greeting]),
        turns=[
            Turn(
                [speak("agent_transfer", 0.4), lookup, answer],
                input_transcript=load_phrase("caller_question").text,
            ),
            Turn([farewell], input_transcript=load_phrase("caller_bargein").text),
        ],
    )
    db = tmp_path / "adk.sqlite"
    async with GeminiLiveEmulator(script=script) as emu:
        config = tenant_config(emu, model, db)
        async with AdkConnector(config, agent=agent) as connector:
            async with connector.open(request()) as session:
                rec = Recorder(session.events())
                async with asyncio.TaskGroup() as tg:
                    reader = tg.create_task(rec.run())
                    await session.send_text("The caller is connected. Greet them.")
                    await rec.wait_for(lambda ev: rec.count(TurnComplete) >= 1)
                    greeted = len(rec.events)

                    await say(session.send_audio, emu, "caller_question")
                    await rec.wait_for(lambda ev: "Your" in rec.said(greeted))
                    await say(session.send_audio, emu, "caller_bargein")
                    await rec.wait_for(lambda ev: "goodbye" in rec.said(greeted))
                    await rec.wait_for(lambda ev: isinstance(ev[-1], TurnComplete))
                    reader.cancel()
            app_name = connector.runner.app_name
        log = emu.sessions[0]

    events = rec.events
    # Greeting: exactly the scripted audio and words, then the turn ends.
    assert audio_of(events[:greeted]) == greeting.pcm
    assert rec.said(0, greeted) == greeting.text
    assert isinstance(events[greeted - 1], TurnComplete)
    # The caller's words once (the finished utterance), the tool once, no ToolCall for the bridge.
    heard = [e for e in events if isinstance(e, Transcript) and e.speaker == "caller"]
    assert [h.text for h in heard] == [
        load_phrase("caller_question").text,
        load_phrase("caller_bargein").text,
    ]
    assert all(h.finished for h in heard)
    assert lookups == ["A1"]
    assert not any(isinstance(e, ToolCall) for e in events)
    assert len(log.tool_calls) == 1 and len(log.tool_responses) == 1
    assert log.tool_responses[0]["id"] == log.tool_calls[0]["id"]
    assert log.tool_responses[0]["response"] == ORDER
    # Barge-in: one Interrupted, during the long answer, before the farewell.
    assert rec.count(Interrupted) == 1
    interrupted = rec.index_of(lambda e: isinstance(e, Interrupted))
    assert "Your" in rec.said(greeted, interrupted)
    assert "goodbye" in rec.said(interrupted)
    assert rec.count(ModelAudio) > 0 and rec.count(Usage) > 0
    assert log.model == f"models/{model}" and log.close_code != 1008
    assert "v1alpha" in log.path

    # A new service on the same file (as after a restart) finds the call's ADK session.
    service = DatabaseSessionService(db_url=f"sqlite+aiosqlite:///{db}")
    try:
        stored = await service.get_session(
            app_name=app_name, user_id=expected_user(), session_id=CALL_ID
        )
    finally:
        await service.close()
    assert stored is not None
    calls = [c.name for e in stored.events for c in e.get_function_calls()]
    answers = [r.response for e in stored.events for r in e.get_function_responses()]
    assert calls == ["lookup_order"] and answers == [ORDER]
    texts = [p.text for e in stored.events if e.content for p in e.content.parts or () if p.text]
    assert "The caller is connected. Greet them." in texts
