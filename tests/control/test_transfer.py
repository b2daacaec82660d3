"""Escalation to a human: connect outcomes, the three after-transfer modes, state checks.

Every test runs a whole call through the unmodified telcoflow and google-genai clients and
both emulators (``LocalStack``) and asserts on what the emulators recorded (commands and
their order, audio pulled, tool responses) and on the bridge's own call record.
"""

from __future__ import annotations

from typing import Any

import pytest

from callbridge.bridge.warnings import WarningCode
from callbridge.emulators.gemini_live import CallTool, Script, Turn
from callbridge.emulators.gemini_live import Pause as ModelPause
from callbridge.emulators.stack import LocalStack
from callbridge.emulators.telcoflow import (
    CallerScript,
    ConnectOutcome,
    HangUp,
    Pause,
    PulledFrame,
    Say,
    WaitForAgentAudio,
)
from callbridge.emulators.telcoflow.pcm import nonsilent_seconds
from tests.control.kit import (
    Records,
    Warnings,
    agent_says,
    names,
    sent_at,
    the,
    tool_entries,
    voiced,
)
from tests.kit import caller_says, eventually

TRANSFER = CallTool("transfer_to_human", {"reason": "asked for a person", "summary": "Order A-1."})


def overrides(after: str, ring_s: int = 5) -> dict[str, Any]:
    return {"tools": {"after_transfer": after, "ring_time_s": ring_s}}


async def test_transfer_leave_closes_after_the_connect_and_ends_the_model_session() -> None:
    records, warnings = Records(), Warnings()
    script = Script(greeting=Turn([agent_says(0.6, "Connecting you."), TRANSFER]))
    async with LocalStack(
        script,
        overrides=overrides("leave"),
        record_listeners=[records],
        warning_handlers=[warnings],
    ) as stack:
        call = stack.place_call(
            CallerScript([Pause(20)]), connect_outcomes=[ConnectOutcome.answered(0.5)]
        )
        telco = await call.ended(timeout=20)
        bridge = await records.ended()
        session = stack.gemini.sessions[0]
        await session.wait_closed(timeout=5)

    assert names(telco) == ["call.answer", "call.connect", "call.close"]
    connect, close = the(telco, "call.connect"), the(telco, "call.close")
    assert connect.success and connect.responded_at is not None
    assert close.t >= connect.responded_at, "call.close must follow the successful connect"
    assert telco.end_reason == "agent_close"
    assert telco.connects == 1
    assert bridge.outcome == "transferred"
    [response] = session.tool_responses
    assert response["response"]["status"] == "connected"
    assert tool_entries(bridge, "done")[0].data["response"]["status"] == "connected"
    assert warnings == []


async def test_transfer_whisper_keeps_the_agent_talking() -> None:
    records = Records()
    script = Script(
        greeting=Turn(
            [agent_says(0.4, "Connecting you."), TRANSFER, agent_says(1.0, "Here is the summary.")]
        )
    )
    async with LocalStack(
        script, overrides=overrides("whisper"), record_listeners=[records]
    ) as stack:
        call = stack.place_call(
            CallerScript([Pause(3.0), HangUp()]), connect_outcomes=[ConnectOutcome.answered(0.3)]
        )
        telco = await call.ended(timeout=20)
        bridge = await records.ended()
        session = stack.gemini.sessions[0]
        await session.wait_closed(timeout=5)

    assert names(telco) == ["call.answer", "call.connect", "agent.whisper"]
    connect, whisper = the(telco, "call.connect"), the(telco, "agent.whisper")
    assert connect.responded_at is not None and whisper.t >= connect.responded_at
    assert whisper.success and telco.modes == ["whisper"]
    # The agent stays on the line and keeps talking (to the human) after the whisper.
    assert voiced_seconds(voiced(telco.pulls, after=whisper.t), telco.sample_rate) > 0.6
    assert telco.end_reason == "caller_hangup"
    assert bridge.outcome == "caller_hangup"
    [response] = session.tool_responses
    assert response["response"]["status"] == "connected"
    assert response["response"]["mode"] == "whisper"
    assert "summary" in response["response"]["instruction"].lower()


async def test_transfer_spy_mutes_the_agent_but_the_model_still_hears_the_caller() -> None:
    records = Records()
    script = Script(
        greeting=Turn(
            [agent_says(1.5, "Connecting you."), TRANSFER, agent_says(1.5, "Muted words.")]
        )
    )
    async with LocalStack(script, overrides=overrides("spy"), record_listeners=[records]) as stack:
        call = stack.place_call(
            CallerScript([Pause(2.5), Say(caller_says(0.5)), Pause(1.0), HangUp()]),
            connect_outcomes=[ConnectOutcome.answered(0.3)],
        )
        telco = await call.ended(timeout=20)
        bridge = await records.ended()
        session = stack.gemini.sessions[0]
        await session.wait_closed(timeout=5)

    spy = the(telco, "agent.spy")
    assert spy.success and telco.modes == ["spy"]
    assert names(telco)[:3] == ["call.answer", "call.connect", "agent.interrupt"]
    assert "call.close" not in names(telco) and "call.disconnect" not in names(telco)
    # The model went on talking after the spy command, and none of it reached the line.
    assert session.turn_audio_first_sent and session.sent[-1][0] > spy.t
    late_audio = [t for t, kind in session.sent if kind == "audio" and t > spy.t]
    assert late_audio, "the script's model speech after the transfer should have been sent"
    assert voiced(telco.pulls, after=spy.t) == []
    # Caller audio still reaches the model: its VAD heard the caller speak after the spy.
    assert any(t > spy.t for t in session.speech_started_at)
    assert sum(n for t, n in session.audio_in if t > spy.t) > 16000 * 2 * 1.0
    assert bridge.outcome == "caller_hangup"


def voiced_seconds(frames: list[PulledFrame], rate: int) -> float:
    return sum(nonsilent_seconds(f.pcm, rate) for f in frames)


@pytest.mark.parametrize(
    ("outcome", "code"),
    [(ConnectOutcome.unanswered(), "CALL_UNANSWERED"), (ConnectOutcome.timeout(), "TIMEOUT")],
)
async def test_nobody_answers_the_model_is_told_and_the_conversation_goes_on(
    outcome: ConnectOutcome, code: str
) -> None:
    records, warnings = Records(), Warnings()
    script = Script(
        greeting=Turn([agent_says(0.3, "Connecting you."), TRANSFER, agent_says(0.4, "Sorry.")]),
        turns=[Turn([agent_says(0.8, "Here is your answer.")], input_transcript="And now?")],
    )
    async with LocalStack(
        script,
        overrides=overrides("leave", ring_s=1),
        record_listeners=[records],
        warning_handlers=[warnings],
    ) as stack:
        call = stack.place_call(
            CallerScript([Pause(2.0), Say(caller_says(0.5)), Pause(2.0), HangUp()]),
            connect_outcomes=[outcome],
        )
        telco = await call.ended(timeout=20)
        bridge = await records.ended()
        session = stack.gemini.sessions[0]
        await session.wait_closed(timeout=5)

    connect = the(telco, "call.connect")
    assert not connect.success and connect.error_code == code
    assert names(telco) == ["call.answer", "call.connect"], "nothing else may be sent"
    [response] = session.tool_responses
    assert response["response"]["status"] == "unanswered"
    assert response["response"]["error_code"] == code
    assert "nobody answered" in response["response"]["instruction"].lower()
    assert [w.details["error_code"] for w in warnings.of(WarningCode.CALL_COMMAND_FAILED)] == [code]
    # The conversation goes on: the caller's next turn is answered, and heard.
    said = [t for t, label in telco.script_events if label == "say:1:end"]
    assert said and voiced_seconds(voiced(telco.pulls, after=said[0]), telco.sample_rate) > 0.5
    assert telco.end_reason == "caller_hangup" and bridge.outcome == "caller_hangup"


async def test_caller_hangs_up_while_the_human_phone_rings() -> None:
    records, warnings = Records(), Warnings()
    script = Script(greeting=Turn([agent_says(0.3, "Connecting you."), TRANSFER]))
    async with LocalStack(
        script,
        overrides=overrides("leave", ring_s=10),
        record_listeners=[records],
        warning_handlers=[warnings],
    ) as stack:
        call = stack.place_call(
            CallerScript([Pause(1.5), HangUp()]),
            connect_outcomes=[ConnectOutcome.answered(after_s=8.0)],
        )
        telco = await call.ended(timeout=20)
        bridge = await records.ended()
        session = stack.gemini.sessions[0]
        await session.wait_closed(timeout=5)
        assert stack.app is not None
        await eventually(lambda: stack.app is not None and stack.app.source.active_calls == 0)
        assert stack.app.runner.live == {}

    connect = the(telco, "call.connect")
    assert connect.responded_at is not None and telco.ended_at is not None
    assert connect.responded_at >= telco.ended_at, "the connect was still ringing at hang-up"
    assert telco.end_reason == "caller_hangup"
    assert bridge.outcome == "caller_hangup"
    assert names(telco) == ["call.answer", "call.connect"], "no command after the hang-up"
    assert session.closed_at is not None
    assert session.tool_responses == [], "nobody is left to hear a transfer result"
    assert warnings == [], [w.description for w in warnings]


@pytest.mark.parametrize("mode", ["whisper", "spy"])
async def test_set_agent_mode_before_a_connect_is_refused_before_anything_is_sent(
    mode: str,
) -> None:
    records = Records()
    script = Script(
        greeting=Turn([CallTool("set_agent_mode", {"mode": mode}), agent_says(0.6, "Still here.")])
    )
    async with LocalStack(script, record_listeners=[records]) as stack:
        call = stack.place_call(CallerScript([Pause(1.5), HangUp()]))
        telco = await call.ended(timeout=20)
        bridge = await records.ended()
        session = stack.gemini.sessions[0]

    assert names(telco) == ["call.answer"], "no agent.* command (nor a clear) may be sent"
    assert telco.modes == []
    [response] = session.tool_responses
    assert response["response"]["status"] == "refused"
    assert "transfer_to_human" in response["response"]["reason"]
    # The agent was not muted by the refused request: its next words are heard.
    assert voiced(telco.pulls)
    assert bridge.outcome == "caller_hangup"


async def test_which_hang_up_command_goes_out_in_each_state() -> None:
    """answer() only: end_call disconnects. After a connect the agent leaves with close()."""
    records = Records()
    end = CallTool("end_call", {"reason": "done"})
    script = Script(greeting=Turn([agent_says(0.3, "Goodbye."), end]))
    async with LocalStack(script, record_listeners=[records]) as stack:
        alone = await stack.place_call(CallerScript([Pause(10)])).ended(timeout=20)
    assert names(alone) == ["call.answer", "call.disconnect"]
    assert alone.end_reason == "agent_disconnect"
    assert (await records.ended()).outcome == "agent_hangup"

    # Whisper after a transfer, then end_call: close() (the caller stays with the human);
    # disconnect() would hang up on both of them.
    records = Records()
    script = Script(
        greeting=Turn([agent_says(0.3, "Connecting."), TRANSFER, agent_says(0.3, "Bye."), end])
    )
    async with LocalStack(
        script, overrides=overrides("whisper"), record_listeners=[records]
    ) as stack:
        call = stack.place_call(
            CallerScript([Pause(10)]), connect_outcomes=[ConnectOutcome.answered(0.2)]
        )
        helped = await call.ended(timeout=20)
    assert names(helped) == ["call.answer", "call.connect", "agent.whisper", "call.close"]
    assert helped.end_reason == "agent_close"
    assert (await records.ended()).outcome == "transferred"


async def test_a_barge_in_while_ringing_withdraws_the_transfer_but_tracks_the_human() -> None:
    """A ringing connect cannot be cancelled: if the human answers after the model withdrew
    the call, the bridge still applies the after-transfer mode and knows a human is on."""
    records = Records()
    end = CallTool("end_call", {"reason": "done"})
    script = Script(
        greeting=Turn([agent_says(1.0, "Connecting you."), TRANSFER]),
        # The model answers the barge-in, then (well after the human picked up) ends its part.
        turns=[Turn([agent_says(0.4, "Okay."), ModelPause(1.5), end], input_transcript="Wait")],
    )
    async with LocalStack(
        script, overrides=overrides("whisper"), record_listeners=[records]
    ) as stack:
        call = stack.place_call(
            CallerScript(
                [WaitForAgentAudio(min_s=0.5, timeout_s=10), Say(caller_says(0.4)), Pause(10)]
            ),
            connect_outcomes=[ConnectOutcome.answered(1.5)],
        )
        telco = await call.ended(timeout=30)
        bridge = await records.ended()
        session = stack.gemini.sessions[0]

    [withdrawn_at] = sent_at(session, "toolCallCancellation")
    connect, whisper = the(telco, "call.connect"), the(telco, "agent.whisper")
    assert connect.success and connect.responded_at is not None
    assert connect.t < withdrawn_at < connect.responded_at, "withdrawn while it rang"
    assert whisper.t >= connect.responded_at and telco.modes == ["whisper"]
    [result] = session.tool_responses
    assert result["name"] == "end_call", "no result for the withdrawn transfer"
    [done] = [e for e in tool_entries(bridge, "done") if e.data["name"] == "transfer_to_human"]
    assert done.data["withdrawn"] is True and done.data["response"]["status"] == "connected"
    # The bridge knows a human is on the line: end_call leaves with close(), not disconnect().
    assert names(telco)[-1] == "call.close" and "call.disconnect" not in names(telco)
    assert telco.end_reason == "agent_close" and bridge.outcome == "transferred"
