"""Frames the clients cannot read: malformed or oversized Gemini frames, junk from Telcoflow.

The bridge reads Gemini's messages itself (adapters/gemini_live/wire.py). A frame that is
not a JSON object leaves the connection's state unknown, so the bridge treats it as broken:
it reconnects with the handle, warns, and the conversation goes on. Fields it does not know
(a future message type, a malformed part) are ignored, as proto-JSON intends, where
google-genai's own parser would have crashed the receive loop.
The telcoflow SDK logs and skips text it cannot parse, so junk on either Telcoflow socket
must change nothing at all.
"""

from __future__ import annotations

from callbridge.bridge.warnings import WarningCode
from callbridge.emulators.gemini_live import Fault, Script, Turn
from callbridge.emulators.telcoflow import CallerScript, HangUp, Pause, Say, WaitForAgentAudio
from tests.faults.kit import (
    NO_GREETING,
    agent_says,
    fault_stack,
    notices,
)
from tests.kit import caller_says, eventually

UNREADABLE = [
    "{not json",  # not JSON at all
    "[1, 2]",  # valid JSON, not an object
]
IGNORABLE = [
    '{"serverContent": {"modelTurn": {"parts": "x"}}}',  # a part that is not an object
    '{"someFutureMessage": {}}',  # an unknown top-level key
]

ANSWER = Turn([agent_says(0.6, "Yes, it is on its way.")], input_transcript="Is it shipped?")


def ask_after(pause_s: float) -> CallerScript:
    return CallerScript(
        [
            Pause(pause_s),
            Say(caller_says(0.6)),
            WaitForAgentAudio(min_s=0.5, timeout_s=10),
            HangUp(),
        ]
    )


async def test_each_unreadable_gemini_frame_costs_one_reconnect() -> None:
    # Connection k gets payload k 0.5 s after its setup; the last connection gets none.
    faults = [Fault.raw_frame(0.5, p, on_connection=k) for k, p in enumerate(UNREADABLE)]
    script = Script(turns=[ANSWER], faults=faults)
    no_rate_limit = {"warnings": {"min_interval_s": 0}}
    async with fault_stack(script, NO_GREETING, no_rate_limit) as fs:
        call = fs.stack.place_call(ask_after(3.0))
        emu = await call.ended(timeout=30)
        record = await fs.finished(call)
    sessions = fs.sessions
    assert len(sessions) == len(UNREADABLE) + 1
    for k, session in enumerate(sessions[:-1]):
        assert "fault: raw_frame" in session.notes
        assert session.close_code == 1000, "the bridge closed the broken connection itself"
        assert sessions[k + 1].resumed_from == session.handles_issued[-1]
    assert notices(record) == ["reconnected"] * len(UNREADABLE)
    warnings = fs.warned(WarningCode.MODEL_REQUEST_FAILED)
    assert len(warnings) == len(UNREADABLE)
    assert all("unreadable message from the server" in w.description for w in warnings)
    assert sessions[-1].turn_audio_first_sent, "the question was answered afterwards"
    assert record.outcome == "caller_hangup" and emu.end_reason == "caller_hangup"


async def test_unknown_or_malformed_fields_are_ignored_without_a_reconnect() -> None:
    faults = [Fault.raw_frame(0.5 + 0.3 * k, p, on_connection=0) for k, p in enumerate(IGNORABLE)]
    script = Script(turns=[ANSWER], faults=faults)
    async with fault_stack(script, NO_GREETING) as fs:
        call = fs.stack.place_call(ask_after(2.0))
        emu = await call.ended(timeout=30)
        record = await fs.finished(call)
    assert len(fs.sessions) == 1, "nothing to reconnect for"
    assert fs.sessions[0].notes.count("fault: raw_frame") == len(IGNORABLE)
    assert notices(record) == []
    assert fs.sessions[0].turn_audio_first_sent, "the question was answered"
    assert record.outcome == "caller_hangup" and emu.end_reason == "caller_hangup"


async def test_large_frame_is_read_and_oversized_frame_reconnects() -> None:
    script = Script(
        turns=[ANSWER],
        faults=[
            # 2 MiB: over websockets' 1 MiB default, under the bridge's 16 MiB limit.
            Fault.oversized(0.5, 2 * 2**20, on_connection=0),
            # 17 MiB: over the limit; the client fails the connection with 1009.
            Fault.oversized(1.0, 17 * 2**20, on_connection=0),
        ],
    )
    async with fault_stack(script, NO_GREETING) as fs:
        call = fs.stack.place_call(ask_after(1.5))
        emu = await call.ended(timeout=30)
        record = await fs.finished(call)
    first, second = fs.sessions
    assert first.kinds().count("oversized") == 2
    assert first.close_code == 1009, "the client refused the 17 MiB frame"
    assert second.resumed_from == first.handles_issued[-1]
    assert notices(record) == ["reconnected"]
    [warning] = fs.warned(WarningCode.MODEL_REQUEST_FAILED)
    assert "1009" in warning.description
    assert second.turn_audio_first_sent, "the question was answered afterwards"
    assert record.outcome == "caller_hangup" and emu.end_reason == "caller_hangup"


async def test_junk_text_on_telcoflow_sockets_changes_nothing() -> None:
    script = Script(turns=[ANSWER])
    async with fault_stack(script, NO_GREETING) as fs:
        call = fs.stack.place_call(ask_after(1.0))
        await call.answered()
        for junk in ("{oops", "[]", '{"type": "call_event", "data": "x"}', '{"no_type": 1}'):
            assert await call.send_raw_text(junk)
            assert await fs.stack.telco.send_raw_sm_text(junk) == 1
        emu = await call.ended(timeout=20)
        record = await fs.finished(call)
        # The SM-WS was not dropped either: a second call is taken on the same connection.
        second = fs.stack.place_call(CallerScript([Pause(0.2), HangUp()]))
        await second.answered()
        await second.ended(timeout=10)
        await eventually(fs.idle, 5, "the bridge to finish both calls")
    assert fs.stack.telco.sm_connections_seen == 1
    assert fs.sessions[0].turn_audio_first_sent, "the question was answered"
    assert emu.end_reason == "caller_hangup" and record.outcome == "caller_hangup"
    assert not fs.warnings, [w.description for w in fs.warnings]
    assert len(emu.commands_named("call.answer")) == 1
