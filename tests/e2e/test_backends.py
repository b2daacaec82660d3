"""One behavioural suite, run on every model back end: raw Gemini Live and ADK (2.5 and 3.x).

The same calls, scripts and assertions; only the tenant's ``model`` section differs. Each
scenario runs through the unmodified telcoflow, google-genai and google-adk clients.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from callbridge.bridge.audio import rms
from callbridge.emulators.gemini_live import CallTool, Script, Turn
from callbridge.emulators.stack import LocalStack
from callbridge.emulators.telcoflow import (
    CallerScript,
    ConnectOutcome,
    HangUp,
    Pause,
    Say,
    WaitForAgentAudio,
)
from tests.e2e.scenarios import agent, caller_pcm

MODEL_25 = "gemini-2.5-flash-native-audio-preview-12-2025"
MODEL_3X = "gemini-3.1-flash-live-preview"

BACKENDS = [
    pytest.param({"backend": "gemini", "model": MODEL_25}, id="gemini-2.5"),
    pytest.param({"backend": "adk", "model": MODEL_25}, id="adk-2.5"),
    pytest.param({"backend": "adk", "model": MODEL_3X}, id="adk-3.x"),
]


@pytest.fixture(params=BACKENDS)
def model_section(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    section: dict[str, Any] = dict(request.param)
    if section["backend"] == "adk":
        section["adk_agent"] = "tests.e2e.adk_agent:root_agent"
        section["adk_session_db"] = f"sqlite+aiosqlite:///{tmp_path}/adk.sqlite"
    section["greeting_prompt"] = "Greet the caller."
    return section


def overrides(model: dict[str, Any]) -> dict[str, Any]:
    return {"model": model, "tools": {"ring_time_s": 2}}


def after_greeting() -> list[Any]:
    """Let the greeting play out: about half of a phrase's frames are voiced."""
    return [WaitForAgentAudio(min_s=1.6, timeout_s=20), Pause(2.0)]


def voiced_after(pulls: list[Any], t: float) -> list[Any]:
    return [p for p in pulls if p.t > t and rms(p.pcm) > 200]


async def test_greeting_turn_and_barge_in(model_section: dict[str, Any]) -> None:
    script = Script(
        greeting=Turn([agent("agent_greeting")]),
        turns=[
            Turn([agent("agent_answer_long")], input_transcript="Where is my order?"),
            Turn([agent("agent_farewell")], input_transcript="Wait."),
        ],
    )
    async with LocalStack(script, overrides=overrides(model_section)) as stack:
        call = stack.place_call(
            CallerScript(
                [
                    *after_greeting(),
                    Say(caller_pcm("caller_greeting", 16000)),
                    WaitForAgentAudio(min_s=1.0, timeout_s=20),
                    Say(caller_pcm("caller_bargein", 16000)),
                    WaitForAgentAudio(min_s=0.4, timeout_s=20),
                    Pause(0.5),
                    HangUp(),
                ]
            )
        )
        record = await call.ended(timeout=90)
    assert record.end_reason == "caller_hangup"
    assert len(record.interrupts) == 1, "one barge-in, one buffer clear"
    cleared_at = record.interrupts[0]
    stale = [p for p in voiced_after(record.pulls, cleared_at) if p.t < cleared_at + 1.0]
    assert stale == [], "no audio of the interrupted turn after agent.interrupt"
    assert voiced_after(record.pulls, cleared_at + 1.0), "the answer after the barge-in is heard"


async def test_tool_then_transfer_unanswered_then_answered(model_section: dict[str, Any]) -> None:
    args = {"reason": "wants a person", "summary": "Order question."}
    script = Script(
        greeting=Turn([agent("agent_greeting")]),
        turns=[
            Turn(
                [
                    CallTool("lookup_order", {"order_id": "A-1"}),
                    agent("agent_transfer"),
                    CallTool("transfer_to_human", args),
                    agent("agent_unanswered"),
                    CallTool("transfer_to_human", args),
                ],
                input_transcript="Please put me through.",
            ),
        ],
    )
    section = dict(model_section)
    if section["backend"] == "gemini":
        section_tools = {"custom": {"lookup_order": "tests.e2e.adk_agent:lookup_order"}}
    else:
        section_tools = {}
    async with LocalStack(
        script, overrides={"model": section, "tools": {"ring_time_s": 2, **section_tools}}
    ) as stack:
        call = stack.place_call(
            CallerScript(
                [
                    *after_greeting(),
                    Say(caller_pcm("caller_bargein", 16000)),
                    Pause(40),
                ]
            ),
            connect_outcomes=[ConnectOutcome.unanswered(), ConnectOutcome.answered(after_s=0.5)],
        )
        record = await call.ended(timeout=90)
    connects = record.commands_named("call.connect")
    assert [c.error_code for c in connects] == ["CALL_UNANSWERED", None]
    assert record.end_reason == "agent_close", "the agent leaves; caller and human stay"
    responses = [r for s in stack.gemini.sessions for r in s.tool_responses]
    lookup = [r for r in responses if r.get("name") == "lookup_order"]
    assert lookup and lookup[0]["response"]["status"] == "shipped"
    if not (section["backend"] == "adk" and section["model"] == MODEL_3X):
        # Async tools (2.5 family): caller audio keeps reaching the model while phones ring.
        ring_start, ring_end = connects[0].t, connects[0].responded_at
        assert ring_end is not None
        received = [t for s in stack.gemini.sessions for t, _ in s.audio_in]
        during = [t for t in received if ring_start <= t <= ring_end]
        gaps = [b - a for a, b in itertools.pairwise(during)]
        assert during and max(gaps) < 0.5, "caller audio kept flowing during the ring"


async def test_end_call_plays_the_farewell_first(model_section: dict[str, Any]) -> None:
    script = Script(
        greeting=Turn([agent("agent_greeting")]),
        turns=[
            Turn(
                [agent("agent_farewell"), CallTool("end_call", {"reason": "done"})],
                input_transcript="Thanks, bye.",
            ),
        ],
    )
    async with LocalStack(script, overrides=overrides(model_section)) as stack:
        call = stack.place_call(
            CallerScript(
                [
                    *after_greeting(),
                    Say(caller_pcm("caller_bye", 16000)),
                    Pause(40),
                ]
            )
        )
        record = await call.ended(timeout=90)
        assert stack.config is not None
    assert record.end_reason == "agent_disconnect"
    hang_up = record.commands_named("call.disconnect")[0].t
    farewell_start = stack.gemini.sessions[-1].turn_audio_first_sent[-1]
    farewell = [p for p in record.pulls if p.t >= farewell_start and rms(p.pcm) > 200]
    farewell_s = sum(len(p.pcm) for p in farewell) / (2 * 16000)
    assert farewell and all(p.t < hang_up for p in farewell)
    assert farewell_s > 0.5, "the farewell was pulled in full before the hang-up"
    if model_section["backend"] == "adk":
        # The conversation is in ADK's database afterwards.
        url = model_section["adk_session_db"].replace("+aiosqlite", "")
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as conn:
            ids = [r[0] for r in conn.execute(sqlalchemy.text("SELECT id FROM sessions"))]
        engine.dispose()
        assert record.call_id in ids
