"""Faults on the Telcoflow side: the voice socket, the session manager, a hang-up mid-repair.

The phone leg is the call. When its voice socket dies without ``call.terminated`` nothing
can reach the caller any more: the bridge must end the call (outcome ``telephony_lost``),
close the model session and release everything, and the service must take the next call.
A session-manager reconnect, by contrast, must not touch a live call at all: the SDK's
RESUME re-delivery must not start a second bridge for it, and new calls keep coming.
"""

from __future__ import annotations

import asyncio

from callbridge.bridge.record import CallRecord, RecordEntry
from callbridge.bridge.warnings import WarningCode
from callbridge.emulators.gemini_live import Fault, Script, Turn
from callbridge.emulators.telcoflow import CallerScript, HangUp, Pause, Say, WaitForAgentAudio
from callbridge.service.app import BridgeApp
from tests.faults.kit import (
    FaultStack,
    agent_lines,
    agent_says,
    fault_stack,
)
from tests.kit import caller_says, eventually

ANSWER = Turn([agent_says(0.6, "Yes, it shipped.")], input_transcript="Is it shipped?")


def ask(pause_s: float = 0.3) -> CallerScript:
    return CallerScript(
        [
            Pause(pause_s),
            Say(caller_says(0.6)),
            WaitForAgentAudio(min_s=0.5, timeout_s=8),
            HangUp(),
        ]
    )


async def next_call_is_served(fs: FaultStack) -> None:
    """A fresh call is answered and bridged to a working model session."""
    call = fs.stack.place_call(ask())
    emu = await call.ended(timeout=15)
    record = await fs.finished(call)
    assert record.outcome == "caller_hangup" and emu.end_reason == "caller_hangup"
    assert agent_lines(record)[-1] == "Yes, it shipped."


async def test_voice_socket_drop_ends_the_call_and_the_next_call_works() -> None:
    script = Script(greeting=Turn([agent_says(2.0, "Hello, Acme support.")]), fallback=ANSWER)
    # The next call's caller asks (0.6 s) 0.3 s into the greeting: with the protected opening
    # (bridge/opening.py) that is a short sound the greeting is shielded from, not a question.
    # This test is about the dropped voice socket, so the opening is not protected here.
    async with fault_stack(script, {"opening": {"protect_s": 0.0}}) as fs:
        call = fs.stack.place_call(CallerScript([WaitForAgentAudio(min_s=0.3, timeout_s=8)]))
        await call.answered()
        await fs.wait_sessions(1)
        await eventually(lambda: call.record.agent_audio_bytes > 0, 8, "agent audio")
        await call.drop_voice()  # mid-greeting; no call.terminated
        record = await fs.finished(call, timeout=10)
        model = fs.sessions[0]
        await model.wait_closed(timeout=5)
        await eventually(fs.idle, 5, "every task of the call to end")
        assert fs.stack.app is not None
        assert fs.stack.app.source.reserved == 0, "the capacity slot was given back"
        await next_call_is_served(fs)
    assert record.outcome == "telephony_lost"
    assert model.close_code == 1000, "the bridge closed the model session itself"
    assert call.record.end_reason == "voice_dropped"
    assert [c.name for c in call.record.commands] == ["call.answer"]
    assert not fs.warned(WarningCode.MODEL_REQUEST_FAILED)
    assert len(fs.sessions) == 2, "one model session per call, no reconnect for a dead call"


async def test_session_manager_reconnect_leaves_the_live_call_alone() -> None:
    script = Script(turns=[ANSWER], fallback=ANSWER)
    async with fault_stack(script, {"model": {"greeting_prompt": None}}) as fs:
        app = fs.stack.app
        assert app is not None
        telco = fs.stack.telco
        call = fs.stack.place_call(ask(pause_s=2.2))
        await call.answered()
        assert await telco.drop_session_manager(1011) == 1
        # The SDK reconnects; the platform re-offers the live call with activity RESUME.
        await eventually(
            lambda: telco.sm_connections_seen == 2 and len(telco.sm_connection_ids) == 1, 10
        )
        await eventually(lambda: call.notifies_sent >= 2, 5, "the RESUME notify")
        # The bridge claims its own call back (so the platform stops re-offering it) and
        # ignores the Call object the SDK builds for the re-delivered call.in.
        await eventually(lambda: app.source.stats.reclaimed == 1, 5, "the call reclaimed")
        await eventually(
            lambda: app.source.stats.duplicates_ignored >= 1, 5, "re-delivered call ignored"
        )
        emu = await call.ended(timeout=15)
        record = await fs.finished(call)
        # A new call after the reconnect is taken as usual.
        await next_call_is_served(fs)
    assert record.outcome == "caller_hangup" and emu.end_reason == "caller_hangup"
    assert agent_lines(record) == ["Yes, it shipped."], "the live call went on unaffected"
    assert len(emu.commands_named("call.answer")) == 1, "no second bridge for the same call"
    assert app.source.stats.calls_started == 2
    assert call.notifies_sent == 2, "reclaimed: the platform re-offered it only once"
    assert len(fs.records) == 2 and len(fs.sessions) == 2
    assert not fs.warnings, [w.description for w in fs.warnings]


class Kept:
    """Record listener for a second replica."""

    def __init__(self) -> None:
        self.records: dict[str, CallRecord] = {}

    def on_entry(self, record: CallRecord, entry: RecordEntry) -> None:
        self.records.setdefault(record.call_id, record)


async def test_resume_of_a_call_bridged_by_another_replica_is_left_alone() -> None:
    script = Script(turns=[ANSWER], fallback=ANSWER)
    async with fault_stack(script, {"model": {"greeting_prompt": None}}) as fs:
        assert fs.stack.app is not None and fs.stack.config is not None
        first = fs.stack.app
        kept = Kept()
        second = BridgeApp(fs.stack.config, record_listeners=[kept])
        telco = fs.stack.telco
        async with asyncio.TaskGroup() as tg:
            tg.create_task(second.run(), name="second-replica")
            await second.source.ready.wait()
            call = telco.place_call(ask(pause_s=2.5))
            await call.answered()
            # Both replicas' SM-WSs drop; both reconnect and both get the RESUME notify.
            assert await telco.drop_session_manager(1011) == 2
            await eventually(lambda: len(telco.sm_connection_ids) == 2, 10, "both reconnect")
            both = (first.source.stats, second.source.stats)
            await eventually(
                lambda: (
                    any(s.reclaimed for s in both)
                    or all(s.notified >= 2 for s in both)
                    or sum(s.claimed for s in both) > 1
                ),
                8,
                "the owner to reclaim the call (or both replicas to get the RESUME)",
            )
            emu = await call.ended(timeout=15)
            record = await fs.finished(call)
            second.stop_claiming()
    owner, other = both if fs.records else both[::-1]
    assert owner.calls_started == 1 and other.calls_started == 0, "one bridge per call"
    assert other.claimed == 0, "the other replica did not claim the live call"
    assert owner.reclaimed == 1 and other.reclaimed == 0, "the owner claimed its call back"
    assert not kept.records, "no second (dead) bridge and no second record for the call"
    assert len(fs.sessions) == 1, "no second model session for the same call"
    assert len(emu.commands_named("call.answer")) == 1
    assert agent_lines(record) == ["Yes, it shipped."] and record.outcome == "caller_hangup"


async def test_caller_hangs_up_while_the_model_reconnects() -> None:
    script = Script(
        turns=[ANSWER],
        faults=[
            Fault.close(1.0, code=1011, on_connection=0),
            Fault.slow_setup(5.0, on_connection=1),  # the reconnect hangs in its setup
        ],
    )
    async with fault_stack(script, {"model": {"greeting_prompt": None}}) as fs:
        call = fs.stack.place_call(CallerScript([]))
        await call.answered()
        sessions = await fs.wait_sessions(2)
        await eventually(lambda: "fault: slow_setup 5 s" in sessions[1].notes, 5, "slow setup")
        await call.hang_up()
        # Well inside the 5 s setup: the hang-up is not held up by the reconnect.
        record = await fs.finished(call, timeout=2.5)
        await sessions[1].wait_closed(timeout=5)
        await eventually(fs.idle, 5, "every task of the call to end")
        await asyncio.sleep(0.3)  # time for a (wrong) further reconnect attempt to show
    assert record.outcome == "caller_hangup"
    assert len(fs.sessions) == 2, "no reconnect attempt after the hang-up"
    assert sessions[1].resumed_from == sessions[0].handles_issued[-1], "it was resuming"
    assert sessions[1].close_code == 1000, "the bridge abandoned the half-open connection"
    assert not sessions[1].kinds(), "it never got as far as setupComplete"
    assert [c.name for c in call.record.commands] == ["call.answer"]
    assert call.record.end_reason == "caller_hangup"
