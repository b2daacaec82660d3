"""A model that goes quiet in three different ways, and what the bridge does about each.

- its server stops answering pings: the keepalive notices, the bridge reconnects;
- it ends a turn without saying anything: ``MODEL_TURN_INCOMPLETE`` and one nudge, after
  which the answer comes;
- it cancels a tool call it is waiting for (the caller barged in): the tool stops and no
  stale result is sent back.
"""

from __future__ import annotations

from callbridge.bridge.call import NUDGE
from callbridge.bridge.warnings import WarningCode
from callbridge.emulators.gemini_live import CallTool, Fault, Script, Turn
from callbridge.emulators.telcoflow import CallerScript, HangUp, Pause, Say, WaitForAgentAudio
from tests.faults.kit import (
    NO_GREETING,
    agent_lines,
    agent_says,
    fault_stack,
    notices,
)
from tests.kit import caller_says


async def test_server_that_stops_answering_pings_is_left_and_resumed() -> None:
    script = Script(
        turns=[Turn([agent_says(0.6, "Yes, it shipped.")], input_transcript="Is it shipped?")],
        faults=[Fault.stop_pongs(after_s=0.3, on_connection=0)],
    )
    keepalive = {"model": {"keepalive_interval_s": 0.3, "keepalive_timeout_s": 0.5}}
    caller = CallerScript(
        [Pause(2.0), Say(caller_says(0.6)), WaitForAgentAudio(min_s=0.5, timeout_s=8), HangUp()]
    )
    async with fault_stack(script, NO_GREETING, keepalive) as fs:
        call = fs.stack.place_call(caller)
        emu = await call.ended(timeout=20)
        record = await fs.finished(call)
    first, second = fs.sessions
    assert "fault: stop_pongs" in first.notes
    assert (first.close_code, first.close_reason) == (1011, "keepalive ping timeout")
    assert second.resumed_from == first.handles_issued[-1]
    assert notices(record) == ["reconnected"]
    [warning] = fs.warned(WarningCode.MODEL_REQUEST_FAILED)
    assert warning.details["action"] == "reconnected"
    assert "keepalive ping timeout" in warning.description, "the warning names the cause"
    assert second.turn_audio_first_sent and agent_lines(record) == ["Yes, it shipped."]
    assert record.outcome == "caller_hangup" and emu.end_reason == "caller_hangup"


async def test_turn_without_audio_is_nudged_once_and_then_answered() -> None:
    script = Script(
        turns=[
            Turn([agent_says(0.6, "Let me check.")], input_transcript="Is it shipped?"),
            Turn([agent_says(0.6, "Yes, it shipped yesterday.")]),
        ],
        faults=[Fault.turn_without_audio(0)],
    )
    caller = CallerScript(
        [Pause(0.3), Say(caller_says(0.6)), WaitForAgentAudio(min_s=0.5, timeout_s=8), HangUp()]
    )
    async with fault_stack(script, NO_GREETING) as fs:
        call = fs.stack.place_call(caller)
        emu = await call.ended(timeout=20)
        record = await fs.finished(call)
    [session] = fs.sessions
    assert "fault: turn 0 without audio" in session.notes
    [warning] = fs.warned(WarningCode.MODEL_TURN_INCOMPLETE)
    assert "without any audio" in warning.description
    assert session.texts_in == [NUDGE], "exactly one nudge reached the model"
    assert [e.data["event"] for e in record.events("timeline")].count("model_nudged") == 1
    # The nudge worked: the next turn had audio and the caller heard it.
    assert len(session.turn_audio_first_sent) == 1
    assert agent_lines(record) == ["Yes, it shipped yesterday."]
    assert emu.agent_audio_bytes > 0
    assert record.outcome == "caller_hangup"


async def test_tool_call_cancelled_mid_tool_stops_the_tool() -> None:
    script = Script(
        turns=[
            Turn(
                [CallTool("slow_order_lookup", {"order": "4471"}), agent_says(0.6, "Shipped.")],
                input_transcript="Where is order 4471?",
            ),
            Turn([agent_says(0.6, "Of course, connecting you.")], "Actually, a person."),
        ]
    )
    tools = {
        "tools": {"custom": {"slow_order_lookup": "tests.faults.user_tools:slow_order_lookup"}}
    }
    caller = CallerScript(
        [
            Pause(0.3),
            Say(caller_says(0.6)),
            Pause(0.8),  # the lookup is running now
            Say(caller_says(0.8)),  # barge-in: the model cancels its call
            WaitForAgentAudio(min_s=0.5, timeout_s=8),
            HangUp(),
        ]
    )
    async with fault_stack(script, NO_GREETING, tools) as fs:
        call = fs.stack.place_call(caller)
        emu = await call.ended(timeout=20)
        record = await fs.finished(call)
    [session] = fs.sessions
    [tool_call] = session.tool_calls
    assert "toolCallCancellation" in session.kinds()
    statuses = [(e.data["call_id"], e.data["status"]) for e in record.events("tool")]
    assert statuses == [(tool_call["id"], "started"), (tool_call["id"], "cancelled_by_model")]
    assert session.tool_responses == [], "no stale result for a cancelled call"
    assert agent_lines(record) == ["Of course, connecting you."]
    assert not fs.warned(WarningCode.TOOL_CALL_FAILED)
    assert record.outcome == "caller_hangup" and emu.end_reason == "caller_hangup"
