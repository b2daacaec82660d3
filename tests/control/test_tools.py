"""Tools beside the audio path: hang-up after the farewell, slow, failing and cancelled tools.

Whole calls through the unmodified clients and both emulators; assertions are on the
emulators' records (pull and receipt times, commands, tool responses), the bridge's call
record and the warnings delivered.
"""

from __future__ import annotations

from typing import Any

import pytest

from callbridge.bridge.warnings import WarningCode
from callbridge.emulators.gemini_live import CallTool, Script, Step, Turn
from callbridge.emulators.stack import LocalStack
from callbridge.emulators.telcoflow import CallerScript, HangUp, Pause, Say, WaitForAgentAudio
from callbridge.emulators.telcoflow.pcm import nonsilent_seconds
from tests.control import toolbox
from tests.control.kit import (
    Records,
    Warnings,
    agent_says,
    max_gap,
    names,
    sent_at,
    the,
    tool_entries,
    voiced,
)
from tests.kit import caller_says

FAREWELL_S = 1.5


async def test_end_call_hangs_up_only_after_the_farewell_was_pulled() -> None:
    records, warnings = Records(), Warnings()
    script = Script(
        greeting=Turn([agent_says(FAREWELL_S, "Thank you, goodbye."), CallTool("end_call")])
    )
    async with LocalStack(script, record_listeners=[records], warning_handlers=[warnings]) as stack:
        telco = await stack.place_call(CallerScript([Pause(20)])).ended(timeout=20)
        bridge = await records.ended()
        session = stack.gemini.sessions[0]
        await session.wait_closed(timeout=5)

    assert names(telco) == ["call.answer", "call.disconnect"]
    disconnect = the(telco, "call.disconnect")
    rate = telco.sample_rate
    speech = voiced(telco.pulls)
    heard = sum(nonsilent_seconds(f.pcm, rate) for f in speech)
    assert heard >= FAREWELL_S - 0.05, f"only {heard:.2f} s of the farewell was pulled"
    assert max(f.t for f in speech) < disconnect.t, "farewell audio pulled after the disconnect"
    assert voiced(telco.pulls, after=disconnect.t) == []
    # The model's whole farewell was sent before the tool call; the bridge waited for the
    # line to drain: the disconnect comes at least the farewell's length after the tool call.
    tool_call_at = next(t for t, kind in session.sent if kind == "toolCall")
    assert disconnect.t - tool_call_at >= FAREWELL_S * 0.5
    # And the caller heard it all (the platform plays what it pulled before hanging up).
    played = nonsilent_seconds(telco.playout, rate)
    assert played >= FAREWELL_S - 0.05, f"the platform played {played:.2f} s before hanging up"
    assert telco.end_reason == "agent_disconnect"
    assert bridge.outcome == "agent_hangup"
    assert warnings == []


CUSTOM = {
    "slow_lookup": "tests.control.toolbox:slow_lookup",
    "broken_lookup": "tests.control.toolbox:broken_lookup",
    "book_slot": "tests.control.toolbox:book_slot",
    "opaque_lookup": "tests.control.toolbox:opaque_lookup",
}


def with_tools(**extra: Any) -> dict[str, Any]:
    return {"tools": {"custom": CUSTOM, "custom_timeouts_s": {"slow_lookup": 10.0}}, **extra}


async def test_a_five_second_tool_leaves_caller_audio_flowing() -> None:
    records, warnings = Records(), Warnings()
    script = Script(
        greeting=Turn(
            [
                agent_says(0.4, "Let me check."),
                CallTool("slow_lookup", {"query": "A-1"}),
                agent_says(0.6, "It shipped."),
            ]
        )
    )
    overrides = with_tools(warnings={"slow_tool_call_s": 2.0})
    async with LocalStack(
        script, overrides=overrides, record_listeners=[records], warning_handlers=[warnings]
    ) as stack:
        call = stack.place_call(CallerScript([Pause(6.6), HangUp()]))
        telco = await call.ended(timeout=30)
        bridge = await records.ended()
        session = stack.gemini.sessions[0]

    [started], [finished] = toolbox.LOG.started["slow_lookup"], toolbox.LOG.finished["slow_lookup"]
    assert finished - started >= toolbox.SLOW_LOOKUP_S - 0.01
    receipts = [t for t, _ in session.audio_in]
    gap = max_gap(receipts, started, finished)
    print(f"\nslow tool: longest gap in caller audio reaching the model: {gap * 1000:.0f} ms")
    assert gap < 0.2, f"caller audio stalled for {gap * 1000:.0f} ms during the tool"
    [response] = session.tool_responses
    assert response["response"] == {"order": "A-1", "status": "shipped"}
    assert [w.details.get("tool") for w in warnings.of(WarningCode.SLOW_TOOL_CALL)] == [
        "slow_lookup"
    ]
    assert voiced(telco.pulls, after=finished), "the answer after the tool result was heard"
    assert bridge.outcome == "caller_hangup"


@pytest.mark.parametrize("tool_running", [True, False], ids=["during-tool", "no-tool"])
async def test_barge_in_clears_as_fast_while_a_tool_runs(tool_running: bool) -> None:
    steps: list[Step] = [agent_says(4.0, "A long answer.")]
    if tool_running:
        steps.append(CallTool("slow_lookup", {"query": "A-1"}))
    script = Script(
        greeting=Turn(steps), turns=[Turn([agent_says(0.5, "Yes?")], input_transcript="Wait")]
    )
    async with LocalStack(script, overrides=with_tools()) as stack:
        call = stack.place_call(
            CallerScript(
                [
                    WaitForAgentAudio(min_s=2.0, timeout_s=10),
                    Say(caller_says(0.5)),
                    Pause(1.5),
                    HangUp(),
                ]
            )
        )
        telco = await call.ended(timeout=30)
        session = stack.gemini.sessions[0]

    [interrupted_at] = session.interrupted_at
    [cleared_at] = telco.interrupts
    latency = cleared_at - interrupted_at
    print(
        f"\nbarge-in ({'tool running' if tool_running else 'no tool'}): agent.interrupt "
        f"reached Telcoflow {latency * 1000:.1f} ms after Gemini's `interrupted`"
    )
    assert 0 <= latency < 0.25
    assert voiced(telco.pulls, after=cleared_at, before=cleared_at + 0.5) == []
    if tool_running:
        [started] = toolbox.LOG.started["slow_lookup"]
        assert started < interrupted_at, "the barge-in came while the tool was running"
        receipts = [t for t, _ in session.audio_in]
        assert max_gap(receipts, started, interrupted_at) < 0.2


async def test_a_tool_that_raises_gives_the_model_an_error_and_the_call_goes_on() -> None:
    """Raising, and returning something that is not JSON, both fail the tool, not the call."""
    records, warnings = Records(), Warnings()
    script = Script(
        greeting=Turn(
            [
                CallTool("broken_lookup", {"query": "A-1"}),
                CallTool("opaque_lookup", {"query": "A-2"}),
                agent_says(0.5, "I cannot check."),
            ]
        ),
        turns=[Turn([agent_says(0.6, "Anything else?")], input_transcript="Okay")],
    )
    overrides = with_tools(warnings={"min_interval_s": 0})
    async with LocalStack(
        script, overrides=overrides, record_listeners=[records], warning_handlers=[warnings]
    ) as stack:
        call = stack.place_call(
            CallerScript([Pause(1.5), Say(caller_says(0.4)), Pause(1.8), HangUp()])
        )
        telco = await call.ended(timeout=30)
        bridge = await records.ended()
        session = stack.gemini.sessions[0]

    raised, opaque = session.tool_responses
    assert (raised["name"], opaque["name"]) == ("broken_lookup", "opaque_lookup")
    error = raised["response"]["error"]
    assert "ConnectionError" in error and "order service unreachable" in error
    assert "not JSON" in opaque["response"]["error"]
    failed = warnings.of(WarningCode.TOOL_CALL_FAILED)
    assert [w.details["tool"] for w in failed] == ["broken_lookup", "opaque_lookup"]
    assert "ConnectionError" in failed[0].description
    done = tool_entries(bridge, "done")
    assert [e.data["response"] for e in done] == [raised["response"], opaque["response"]]
    # The call went on: the caller's next turn was answered, and heard.
    said = [t for t, label in telco.script_events if label == "say:1:end"]
    assert said and voiced(telco.pulls, after=said[0])
    assert bridge.outcome == "caller_hangup"


async def test_tool_call_cancellation_cancels_the_tool_and_sends_no_result() -> None:
    records = Records()
    script = Script(
        greeting=Turn(
            [agent_says(3.0, "Booking that for you."), CallTool("book_slot", {"slot": "9am"})]
        ),
        turns=[Turn([agent_says(0.5, "Sure, no booking.")], input_transcript="No, stop")],
    )
    async with LocalStack(script, overrides=with_tools(), record_listeners=[records]) as stack:
        call = stack.place_call(
            CallerScript(
                [
                    WaitForAgentAudio(min_s=1.2, timeout_s=10),
                    Say(caller_says(0.4)),
                    Pause(toolbox.BOOKING_S + 0.5),
                    HangUp(),
                ]
            )
        )
        telco = await call.ended(timeout=30)
        bridge = await records.ended()
        session = stack.gemini.sessions[0]

    cancellations = sent_at(session, "toolCallCancellation")
    assert len(cancellations) == 1
    [started], [cancelled] = toolbox.LOG.started["book_slot"], toolbox.LOG.cancelled["book_slot"]
    assert started < cancellations[0] <= cancelled
    # Its side effect never happened, not even after the tool's full run time had passed.
    assert telco.ended_at is not None and telco.ended_at - started > toolbox.BOOKING_S
    assert toolbox.LOG.bookings == [] and "book_slot" not in toolbox.LOG.finished
    assert session.tool_responses == [], "no result may be sent for a cancelled call"
    assert [e.data["name"] for e in tool_entries(bridge, "cancelled_by_model")] == ["book_slot"]
    assert tool_entries(bridge, "done") == []
