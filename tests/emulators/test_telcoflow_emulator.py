"""The Telcoflow emulator, driven by the unmodified telcoflow 1.0.0 SDK over real sockets.

Each test starts its own emulator on 127.0.0.1:0 and at most a couple of SessionManagers with
a handful of calls each (the unmodified SDK stops receiving calls after ~33 per manager). The
pure parts (playout bookkeeping, script cursor, PCM helpers) are tested without sockets at the
bottom of the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from telcoflow import (
    CallAudioConfig,
    CallFlowConfig,
    ChannelType,
    SessionManager,
    SessionManagerConfig,
    SessionNotification,
)
from telcoflow.call import Call
from telcoflow.exceptions import (
    WSSCallCommandError,
    WSSCallError,
    WSSChannelNotConfigured,
    WSSConnectionError,
    WSSSessionBusy,
    WSSSessionClosed,
    WSSSessionError,
    WSSSessionNotFound,
)

from callbridge.emulators.telcoflow import (
    CallEndedError,
    CallerScript,
    ConnectOutcome,
    EmulatedCall,
    HangUp,
    Pause,
    Say,
    TelcoflowEmulator,
    WaitForAgentAudio,
    resample_pcm,
    wire,
    write_stereo_wav,
)
from callbridge.emulators.telcoflow.caller import ScriptCursor
from callbridge.emulators.telcoflow.pcm import frame_bytes, nonsilent_seconds
from callbridge.emulators.telcoflow.playout import PlayoutBuffer
from tests.kit import eventually, tone

API_KEY = "test-key"
CONNECTOR = "conn-1"


@dataclass
class FakeBridge:
    """The thinnest SDK consumer: claims every notified call and queues the Call objects."""

    sm: SessionManager
    claim: bool = True
    notifications: list[SessionNotification] = field(default_factory=list)
    calls: asyncio.Queue[Call] = field(default_factory=asyncio.Queue)
    closed: dict[str, list[str]] = field(default_factory=dict)
    open_errors: list[BaseException] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    notified: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_notification(self, note: SessionNotification) -> None:
        self.notifications.append(note)
        self.notified.set()
        if not self.claim:
            return
        try:
            session = await self.sm.open_session(note.session_id)
        except Exception as exc:
            self.open_errors.append(exc)
            return
        self.opened.append(note.session_id)
        reasons = self.closed.setdefault(session.id, [])

        async def incoming(call: Call) -> None:
            await self.calls.put(call)

        async def closed(reason: Any) -> None:
            reasons.append(str(reason))

        session.on_incoming_call(incoming)
        session.on_closed(closed)
        await session.ready()

    async def next_call(self, timeout: float = 10.0) -> Call:
        async with asyncio.timeout(timeout):
            return await self.calls.get()


@contextlib.asynccontextmanager
async def bridge(
    target: TelcoflowEmulator | str,
    *,
    sample_rate: int = 16000,
    claim: bool = True,
    api_key: str = API_KEY,
) -> AsyncIterator[FakeBridge]:
    config = SessionManagerConfig.create(
        api_key=api_key,
        connector_uuid=CONNECTOR,
        base_url=target if isinstance(target, str) else target.base_url,
        call_audio=CallAudioConfig(sample_rate=sample_rate),
    )
    sm = SessionManager(config)
    fake = FakeBridge(sm, claim=claim)
    # Registered BEFORE `async with`: the SDK drops notifies that beat the handler.
    sm.on_session_notification(fake.on_notification)
    async with sm:
        yield fake


async def answered_call(
    emu: TelcoflowEmulator, fake: FakeBridge, script: CallerScript | None = None, **kw: Any
) -> tuple[EmulatedCall, Call]:
    emulated = emu.place_call(script, **kw)
    call = await fake.next_call()
    result = await call.answer()
    assert result, result
    await emulated.answered(timeout=10)
    return emulated, call


class StreamReader:
    """Consumes ``audio_stream()`` in a task, as a bridge must (the SDK queue is unbounded)."""

    def __init__(self, call: Call) -> None:
        self.frames: list[tuple[float, bytes]] = []
        self.finished = asyncio.Event()
        self._call = call

    async def run(self) -> None:
        async for chunk in self._call.audio_stream():
            self.frames.append((time.monotonic(), chunk))
        self.finished.set()

    @property
    def audio(self) -> bytes:
        return b"".join(chunk for _, chunk in self.frames)


# -- handshake and claim ----------------------------------------------------------------------


async def test_bad_api_key_is_rejected_with_the_body_text() -> None:
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu:
        with pytest.raises(WSSConnectionError, match="invalid api key or connector uuid"):
            async with bridge(emu, api_key="wrong"):
                pass
        assert emu.sm_connections_seen == 0


async def test_full_flow_notify_open_ready_call_in_answer() -> None:
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu) as fake:
        emulated = emu.place_call(caller="+15550123", callee="+15559876")
        call = await fake.next_call()
        assert fake.sm.id == emulated.claimed_by
        [note] = fake.notifications
        assert note.session_id == emulated.session_id
        assert (note.channel, note.activity) == ("TELCO", "NEW_INCOMING_CALL")
        assert (note.remote_address, note.local_address) == ("+15550123", "+15559876")
        assert (call.id, call.caller_number, call.callee_number) == (
            emulated.call_id,
            "+15550123",
            "+15559876",
        )
        assert str(call.state) == "NEW"
        assert await call.answer()
        answered_at = await emulated.answered(timeout=5)
        record = emulated.record
        assert record.answered_at == answered_at
        assert record.sample_rate == 16000
        [answer] = record.commands
        assert (answer.name, answer.success, answer.timeout_ms) == ("call.answer", True, 10000)
        assert emu.sm_connections_seen == 1


async def test_two_session_managers_claim_a_call_exactly_once() -> None:
    async with (
        TelcoflowEmulator(API_KEY, CONNECTOR, notify_delay_s=0.2) as emu,
        bridge(emu) as first,
        bridge(emu) as second,
    ):
        await eventually(lambda: len(emu.sm_connection_ids) == 2)
        await asyncio.sleep(0.3)  # both connections are now past their notify delay
        emulated = emu.place_call()
        await eventually(lambda: len(first.opened) + len(first.open_errors) == 1)
        await eventually(lambda: len(second.opened) + len(second.open_errors) == 1)
        winners = [b for b in (first, second) if b.opened]
        losers = [b for b in (first, second) if b.open_errors]
        assert len(winners) == 1 and len(losers) == 1
        [error] = losers[0].open_errors
        assert isinstance(error, WSSSessionBusy)
        assert emulated.claimed_by == winners[0].sm.id
        call = await winners[0].next_call()
        assert call.id == emulated.call_id
        assert losers[0].calls.empty()


async def test_unclaimed_call_is_renotified_and_claimed_one_never_is() -> None:
    async with (
        TelcoflowEmulator(API_KEY, CONNECTOR, renotify_after_s=0.5) as emu,
        bridge(emu, claim=False) as fake,
    ):
        emulated = emu.place_call()
        await eventually(lambda: len(fake.notifications) >= 2)
        assert {n.session_id for n in fake.notifications} == {emulated.session_id}
        assert {n.activity for n in fake.notifications} == {"NEW_INCOMING_CALL"}
        fake.claim = True
        await eventually(lambda: len(fake.opened) == 1)
        seen = len(fake.notifications)
        await asyncio.sleep(1.5)  # three re-offer periods
        assert len(fake.notifications) == seen


async def test_open_errors_for_unknown_and_closed_sessions() -> None:
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu, claim=False) as fake:
        with pytest.raises(WSSSessionNotFound):
            await fake.sm.open_session("sess-unknown")
        emulated = emu.place_call()
        await emulated.hang_up()
        with pytest.raises(WSSSessionClosed):
            await fake.sm.open_session(emulated.session_id)
        with pytest.raises(CallEndedError):
            await emulated.answered(timeout=1)
        record = await emulated.ended(timeout=1)
        assert record.end_reason == "caller_hangup"
        assert record.answered_at is None


async def test_list_sessions_over_rest() -> None:
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu, claim=False) as fake:
        emulated = emu.place_call(caller="+1555")
        emu.place_call(caller="+1666")
        sessions = await fake.sm.list_sessions(remote_address="+1555")
        assert [s.id for s in sessions] == [emulated.session_id]
        assert sessions[0].channel == "TELCO" and sessions[0].state == "OPEN"


async def test_other_sm_requests_and_unknown_frames() -> None:
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu) as fake:
        await fake.sm.setup_call_flow(CallFlowConfig())
        with pytest.raises(WSSChannelNotConfigured):
            await fake.sm.create_session(ChannelType.TELCO, "+1555")
        await fake.sm._sm_connection.send_message({"type": "bogus", "x": 1})
        await fake.sm._sm_connection._ws.send("not json")
        emulated = emu.place_call()  # the connection survived all of that
        call = await fake.next_call()
        assert call.id == emulated.call_id
        assert emu.sm_connections_seen == 1


async def test_hang_up_before_answer_closes_the_session_and_the_voice_url() -> None:
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu) as fake:
        emulated = emu.place_call()
        call = await fake.next_call()
        await emulated.hang_up()
        await eventually(lambda: fake.closed.get(emulated.session_id) == ["CALL_TERMINATED"])
        with pytest.raises(WSSCallError):  # 410: the call is over
            await call.answer()
        assert emulated.record.end_reason == "caller_hangup"


# -- media ------------------------------------------------------------------------------------


async def test_caller_audio_arrives_at_real_time_pace() -> None:
    speech = tone(2.0)
    script = CallerScript([Say(speech)])
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu) as fake:
        emulated, call = await answered_call(emu, fake, script)
        reader = StreamReader(call)
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(reader.run())
            await eventually(lambda: len(reader.frames) >= 60)
            task.cancel()
        first, last = reader.frames[0][0], reader.frames[59][0]
        # 59 frame intervals of 20 ms = 1.18 s; a burst would be far faster.
        assert 0.8 < last - first < 4.0
        assert {len(chunk) for _, chunk in reader.frames} == {640}
        assert reader.audio == speech[: len(reader.audio)]
        assert emulated.record.caller_pcm[: len(reader.audio)] == reader.audio
        assert ("say:1" in [label for _, label in emulated.record.script_events]) is True


async def test_agent_audio_is_pulled_and_recorded() -> None:
    speech = tone(1.0, freq=300.0)
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu) as fake:
        emulated, call = await answered_call(emu, fake)
        await call.send_audio(speech)
        await eventually(lambda: emulated.raw_record.agent_audio_bytes >= len(speech))
        record = emulated.record
        assert record.agent_pcm() == speech
        assert record.agent_audio_bytes == len(speech)
        assert record.over_delivered_bytes == 0
        sizes = [p.size for p in record.pulls]
        assert sizes[0] == 3200 and set(sizes[1:]) == {640}  # the 100 ms lead, then per frame
        await asyncio.sleep(0.3)  # let playout drain
        # The caller heard all of it, in order (silent ticks aside: a loaded event loop can
        # make the emulator's own playout clock catch up faster than the SDK refills it).
        playout = emulated.record.playout
        heard = [playout[i : i + 640] for i in range(0, len(playout), 640)]
        assert b"".join(frame for frame in heard if any(frame)) == speech


async def test_clear_send_audio_buffer_reaches_emulator_as_interrupt() -> None:
    speech = tone(2.0)
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu) as fake:
        emulated, call = await answered_call(emu, fake)
        await call.send_audio(speech)
        await eventually(lambda: emulated.raw_record.agent_audio_bytes >= 6400)
        cleared = await call.clear_send_audio_buffer()
        assert cleared > 0
        record = emulated.record
        [interrupt] = record.commands_named("agent.interrupt")
        assert interrupt.success and record.interrupts == [interrupt.t]
        assert record.dropped_on_interrupt > 0
        await asyncio.sleep(0.3)  # nothing more arrives: the SDK buffer is empty
        assert emulated.record.agent_audio_bytes + cleared == len(speech)


async def test_underruns_count_a_stall_in_the_middle_of_agent_speech() -> None:
    part = tone(0.4)
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu) as fake:
        emulated, call = await answered_call(emu, fake)
        await call.send_audio(part)
        await eventually(lambda: emulated.raw_record.agent_audio_bytes >= len(part))
        await asyncio.sleep(0.25)  # the emulator's 100 ms lead runs dry, then ~150 ms stall
        await call.send_audio(part)
        await eventually(lambda: emulated.raw_record.agent_audio_bytes >= 2 * len(part))
        await asyncio.sleep(0.3)
        assert 0 < emulated.record.underruns < 40


@pytest.mark.parametrize("rate", [8000, 24000])
async def test_frames_follow_the_connection_sample_rate(rate: int) -> None:
    speech16k = tone(1.0)
    script = CallerScript([Say(speech16k, rate=16000)])
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu, sample_rate=rate) as fake:
        emulated, call = await answered_call(emu, fake, script)
        reader = StreamReader(call)
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(reader.run())
            await eventually(lambda: len(reader.frames) >= 10)
            task.cancel()
        assert {len(c) for _, c in reader.frames} == {frame_bytes(rate)}
        await call.send_audio(tone(0.2, rate=rate))
        await eventually(lambda: emulated.raw_record.agent_audio_bytes >= frame_bytes(rate) * 10)
        assert emulated.record.sample_rate == rate
        assert emulated.record.pulls[0].size == 5 * frame_bytes(rate)


# -- commands ---------------------------------------------------------------------------------


async def test_connect_unanswered_then_answered_then_modes() -> None:
    outcomes = [ConnectOutcome.unanswered(), ConnectOutcome.answered(after_s=0.3)]
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu) as fake:
        emulated, call = await answered_call(emu, fake, connect_outcomes=outcomes)
        reader = StreamReader(call)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(reader.run())
            before = len(reader.frames)
            first = await call.connect(ring_time_seconds=1)
            assert not first and first.error_code == "CALL_UNANSWERED"
            assert str(call.state) == "LIVE"
            assert len(reader.frames) - before >= 20  # audio kept flowing while it rang
            assert await call.connect(ring_time_seconds=5)
            assert await call.whisper()
            assert await call.barge()
            assert await call.spy()
            assert await call.disconnect()
        record = await emulated.ended(timeout=10)
        [unanswered, answered] = record.commands_named("call.connect")
        assert unanswered.data == {"ringTimeSeconds": 1} and unanswered.timeout_ms == 1000
        assert unanswered.responded_at is not None and unanswered.responded_at - unanswered.t > 0.9
        assert answered.success
        assert record.connects == 1
        assert record.modes == ["whisper", "barge", "spy"]


async def test_whisper_before_connect_fails_and_connect_can_time_out() -> None:
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu) as fake:
        emulated, call = await answered_call(emu, fake, connect_outcomes=[ConnectOutcome.timeout()])
        result = await call.whisper()
        assert not result and result.error_code == "NOT_CONNECTED"
        result = await call.connect(ring_time_seconds=1)
        assert not result and result.error_code == "TIMEOUT"
        assert emulated.record.modes == [] and emulated.record.connects == 0


async def test_disconnect_ends_the_call_and_the_audio_stream() -> None:
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu) as fake:
        emulated, call = await answered_call(emu, fake)
        terminated = asyncio.Event()
        call.on_terminated(terminated.set)
        reader = StreamReader(call)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(reader.run())
            await eventually(lambda: len(reader.frames) > 5)
            assert await call.disconnect()
            await asyncio.wait_for(reader.finished.wait(), 10)
        record = await emulated.ended(timeout=10)
        assert record.end_reason == "agent_disconnect"
        assert terminated.is_set()
        await eventually(lambda: fake.closed.get(emulated.session_id) == ["CALL_TERMINATED"])
        assert record.ended_at is not None and record.answered_at is not None
        assert len(record.caller_pcm) == len(record.playout)


async def test_session_close_ends_with_agent_close() -> None:
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu) as fake:
        emulated, call = await answered_call(emu, fake)
        session = call._session
        assert session is not None
        await asyncio.wait_for(session.close(), 5)
        assert session._close_reason == "SDK_REQUEST"  # confirmed by the emulator, not forced
        record = await emulated.ended(timeout=10)
        assert record.end_reason == "agent_close"
        assert record.commands_named("call.close")[0].success


async def test_remote_hang_up_fires_on_terminated_and_fails_pending_connect() -> None:
    outcomes = [ConnectOutcome.answered(after_s=30)]
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu) as fake:
        emulated, call = await answered_call(emu, fake, connect_outcomes=outcomes)
        terminated = asyncio.Event()
        call.on_terminated(terminated.set)
        async with asyncio.TaskGroup() as tg:
            ringing = tg.create_task(call.connect(ring_time_seconds=60))
            await eventually(lambda: bool(emulated.raw_record.commands_named("call.connect")))
            await emulated.hang_up()
        assert terminated.is_set()
        result = ringing.result()
        assert not result and result.error_code == "CALL_TERMINATED"
        assert emulated.record.end_reason == "caller_hangup"
        await eventually(lambda: fake.closed.get(emulated.session_id) == ["CALL_TERMINATED"])
        assert str(call.state) == "TERMINATED"


async def test_script_waits_for_agent_audio_then_hangs_up() -> None:
    script = CallerScript(
        [
            Say(tone(0.3)),
            WaitForAgentAudio(min_s=0.4, timeout_s=20),
            Say(tone(0.2, freq=600.0)),
            HangUp(),
        ]
    )
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu) as fake:
        emulated, call = await answered_call(emu, fake, script)
        terminated = asyncio.Event()
        call.on_terminated(terminated.set)
        await asyncio.sleep(0.5)
        sent_at = time.monotonic()
        await call.send_audio(tone(0.8, freq=300.0))
        record = await emulated.ended(timeout=20)
        labels = [label for _, label in record.script_events]
        assert labels == [
            "say:1",
            "say:1:end",
            "wait_agent:1",
            "wait_agent:1:done",
            "say:2",
            "say:2:end",
            "hangup",
        ]
        done_at = dict((label, t) for t, label in record.script_events)["wait_agent:1:done"]
        assert done_at - sent_at >= 0.3  # 0.4 s of agent speech had to be pulled first
        assert record.end_reason == "caller_hangup"
        await asyncio.wait_for(terminated.wait(), 5)


async def test_wait_for_agent_audio_times_out_and_continues() -> None:
    script = CallerScript([WaitForAgentAudio(min_s=0.5, timeout_s=0.4), HangUp()])
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu) as fake:
        emulated, _call = await answered_call(emu, fake, script)
        record = await emulated.ended(timeout=10)
        assert [label for _, label in record.script_events] == [
            "wait_agent:1",
            "script_timeout",
            "hangup",
        ]


async def test_fail_next_and_delay_next() -> None:
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu) as fake:
        emulated = emu.place_call()
        emulated.fail_next("call.answer", error_code="BUSY_HERE")
        call = await fake.next_call()
        refused = await call.answer()
        assert not refused and refused.error_code == "BUSY_HERE"
        assert emulated.record.answered_at is None
        assert await call.answer()
        emulated.fail_next("agent.interrupt", error_code="INTERNAL_ERROR")
        with pytest.raises(WSSCallCommandError) as info:
            await call.clear_send_audio_buffer()
        assert info.value.error_code == "INTERNAL_ERROR"
        emulated.delay_next("agent.interrupt", seconds=0.5)
        started = time.monotonic()
        await call.clear_send_audio_buffer()
        assert time.monotonic() - started >= 0.45
        slow = emulated.record.commands_named("agent.interrupt")[-1]
        assert slow.success and slow.responded_at is not None
        assert slow.responded_at - slow.t >= 0.45
        assert await call.get_send_audio_buffer_size() == 0
        result = await call.connect(ring_time_seconds=1)  # the default outcome: answered
        assert result and emulated.record.connects == 1


async def test_unknown_command_gets_unknown_command() -> None:
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu) as fake:
        emulated, call = await answered_call(emu, fake)
        result = await call._run_command(command="call.hold", response_timeout_seconds=5)
        assert not result and result.error_code == "UNKNOWN_COMMAND"
        assert emulated.record.commands_named("call.hold")[0].error_code == "UNKNOWN_COMMAND"


async def test_call_error_event_reaches_the_sdk() -> None:
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu) as fake:
        emulated, call = await answered_call(emu, fake)
        errors: list[dict[str, Any]] = []
        call.on_call_event("call.error")(errors.append)
        assert await emulated.inject_call_error("TTS_SESSION_ERROR", "boom")
        await eventually(lambda: bool(errors))
        assert errors == [{"error_code": "TTS_SESSION_ERROR", "error_message": "boom"}]


# -- faults -----------------------------------------------------------------------------------


async def test_voice_token_is_checked_and_one_connection_per_call() -> None:
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu) as fake:
        emulated, _call = await answered_call(emu, fake)
        forged = Call(emulated.call_id, "", "", emulated.voice_url, "tok-forged")
        with pytest.raises(WSSCallError):
            await forged.answer()
        second = Call(emulated.call_id, "", "", emulated.voice_url, emulated.token)
        with pytest.raises(WSSCallError):  # 409: the first connection still holds the call
            await second.answer()
        assert str(second.state) == "NEW"


async def test_drop_voice_is_a_fault_without_call_terminated() -> None:
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu) as fake:
        emulated, call = await answered_call(emu, fake)
        terminated = asyncio.Event()
        call.on_terminated(terminated.set)
        reader = StreamReader(call)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(reader.run())
            await emulated.drop_voice()
            await asyncio.wait_for(reader.finished.wait(), 10)
        assert not terminated.is_set()
        assert str(call.state) == "LIVE"  # the SDK's stuck state (wire notes, section 5)
        with pytest.raises(WSSSessionError):
            await call.disconnect()
        assert emulated.record.end_reason == "voice_dropped"
        await eventually(lambda: fake.closed.get(emulated.session_id) == ["FORCE_CLOSE"])


async def test_bridge_closing_its_voice_socket_counts_as_voice_dropped() -> None:
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu) as fake:
        emulated, call = await answered_call(emu, fake)
        await call._force_close()
        record = await emulated.ended(timeout=10)
        assert record.end_reason == "voice_dropped"
        await eventually(lambda: fake.closed.get(emulated.session_id) == ["FORCE_CLOSE"])


async def test_session_manager_drop_resumes_with_renotify() -> None:
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu) as fake:
        emulated, call = await answered_call(emu, fake)
        first_sm_id = fake.sm.id
        reader = StreamReader(call)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(reader.run())
            assert await emu.drop_session_manager(code=1011) == 1
            before = len(reader.frames)
            resumed = await fake.next_call(timeout=15)
            assert [n.activity for n in fake.notifications] == ["NEW_INCOMING_CALL", "RESUME"]
            assert resumed.id == call.id and str(resumed.state) == "NEW"
            assert fake.sm.id != first_sm_id and emulated.claimed_by == fake.sm.id
            assert emu.sm_connections_seen == 2
            await eventually(lambda: len(reader.frames) > before + 10)  # voice went on
            assert fake.closed[emulated.session_id][0] == "FORCE_CLOSE"  # the SDK's local close
            assert await call.disconnect()
            await asyncio.wait_for(reader.finished.wait(), 10)
        record = await emulated.ended(timeout=10)
        assert record.end_reason == "agent_disconnect"
        # session.closed went to the new owner, and the re-opened Session heard it.
        await eventually(lambda: fake.closed[emulated.session_id][-1] == "CALL_TERMINATED")


async def test_shutdown_ends_running_calls_and_leaves_nothing_behind() -> None:
    emu = TelcoflowEmulator(API_KEY, CONNECTOR)
    terminated = asyncio.Event()
    await emu.__aenter__()
    running = True
    try:
        async with bridge(emu) as fake:
            emulated, call = await answered_call(emu, fake)
            call.on_terminated(terminated.set)
            reader = StreamReader(call)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(reader.run())
                await eventually(lambda: len(reader.frames) > 3)
                pending = emu.place_call()
                running = False
                await emu.__aexit__(None, None, None)
                await asyncio.wait_for(reader.finished.wait(), 10)
    finally:
        if running:
            await emu.__aexit__(None, None, None)
    assert terminated.is_set()
    assert emulated.record.end_reason == "emulator_shutdown"
    assert pending.record.end_reason == "emulator_shutdown"
    leftovers = [
        t
        for t in asyncio.all_tasks()
        if "emulators/telcoflow" in getattr(t.get_coro(), "cr_code", _NO_CODE).co_filename
    ]
    assert leftovers == []
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", emu.port)


_NO_CODE = (lambda: None).__code__


async def test_place_call_requires_a_running_emulator() -> None:
    emu = TelcoflowEmulator()
    with pytest.raises(RuntimeError):
        emu.place_call()


# -- pure parts -------------------------------------------------------------------------------


def test_playout_requests_the_lead_then_one_frame_per_tick() -> None:
    buf = PlayoutBuffer(640)
    assert buf.top_up(0.0) == 3200
    assert buf.top_up(0.0) == 0
    buf.receive(bytes(range(256)) * 12 + bytes(128))  # 3200 B
    assert buf.outstanding == 0 and buf.buffered == 3200
    assert buf.tick(0.02) == (bytes(range(256)) * 3)[:640]
    assert buf.top_up(0.02) == 640
    assert buf.interrupt() == 2560 and buf.buffered == 0
    assert buf.tick(0.04) == bytes(640)
    buf.receive(bytes(1000))
    assert buf.over_delivered == 360


def test_playout_counts_a_mid_burst_stall_but_not_the_end_of_speech() -> None:
    buf = PlayoutBuffer(640)
    t = 0.0

    def step(deliver: bool) -> None:
        nonlocal t
        if deliver:
            buf.receive(b"\x01" * buf.outstanding)
        buf.tick(t)
        buf.top_up(t)
        t += 0.02

    buf.top_up(t)
    for _ in range(10):
        step(True)
    for _ in range(8):  # the bridge stalls; the 5-frame lead covers the first ticks
        step(False)
    assert buf.underruns == 0
    step(True)  # audio resumes: the dry ticks were underruns
    stalled = buf.underruns
    assert 1 <= stalled <= 4
    for _ in range(5):
        step(True)
    for _ in range(60):  # the agent stops talking for good
        step(False)
    step(True)
    assert buf.underruns == stalled


def test_script_cursor_yields_frames_and_events() -> None:
    events: list[tuple[float, str]] = []
    script = CallerScript([Pause(0.04), Say(b"\x01\x00" * 400), HangUp()])
    cursor = ScriptCursor(script, 16000, 640, events)
    frames = [cursor.next_frame(i * 0.02, 0.0) for i in range(5)]
    assert frames[:2] == [bytes(640), bytes(640)]
    assert frames[2] == b"\x01\x00" * 320
    assert frames[3] == (b"\x01\x00" * 80).ljust(640, b"\x00")
    assert frames[4] is None
    assert [label for _, label in events] == ["pause:0.04", "say:1", "say:1:end", "hangup"]


def test_script_cursor_wait_and_end_of_script() -> None:
    events: list[tuple[float, str]] = []
    script = CallerScript([WaitForAgentAudio(min_s=0.1, timeout_s=5)])
    cursor = ScriptCursor(script, 8000, 320, events)
    assert cursor.next_frame(0.0, 1.0) == bytes(320)
    assert cursor.next_frame(0.02, 1.05) == bytes(320)
    assert cursor.next_frame(0.04, 1.1) == bytes(320)
    assert cursor.next_frame(0.06, 1.1) == bytes(320)
    assert [label for _, label in events] == ["wait_agent:1", "wait_agent:1:done", "script_end"]


def test_pcm_helpers() -> None:
    assert [frame_bytes(r) for r in (8000, 16000, 24000)] == [320, 640, 960]
    assert nonsilent_seconds(bytes(6400), 16000) == 0.0
    assert nonsilent_seconds(tone(0.5), 16000) == pytest.approx(0.5)
    assert len(resample_pcm(tone(1.0), 16000, 24000)) == 48000
    assert resample_pcm(b"\x01\x02", 16000, 16000) == b"\x01\x02"
    with pytest.raises(ValueError):
        wire.session_closed("s", "HANGUP")


async def test_stereo_wav_lines_up_caller_and_agent(tmp_path: Path) -> None:
    async with TelcoflowEmulator(API_KEY, CONNECTOR) as emu, bridge(emu) as fake:
        emulated, call = await answered_call(emu, fake, CallerScript([Say(tone(0.3))]))
        await call.send_audio(tone(0.3, freq=300.0))
        await eventually(lambda: emulated.raw_record.agent_audio_bytes >= 9600)
        assert await call.disconnect()
        record = await emulated.ended(timeout=10)
    path = tmp_path / "call.wav"
    write_stereo_wav(record, path)
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, 16000)
        assert wav.getnframes() == len(record.caller_pcm) // 2


async def test_cli_places_a_call_and_prints_its_summary(tmp_path: Path) -> None:
    pcm = tmp_path / "caller.pcm"
    pcm.write_bytes(tone(0.3, rate=8000))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callbridge.emulators.telcoflow",
        "--port",
        "0",
        "--api-key",
        API_KEY,
        "--connector",
        CONNECTOR,
        "--calls",
        "1",
        "--pcm",
        str(pcm),
        "--rate",
        "8000",
        "--pause",
        "0",
        "--wait-agent",
        "0.2",
        "--hold",
        "0.2",
        "--wav-dir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None and proc.stdout is not None
        async with asyncio.timeout(30):
            found = None
            while found is None:
                found = re.search(
                    r"emulator on (ws://\S+)", (await proc.stderr.readline()).decode()
                )
        base_url = found.group(1)
        async with bridge(base_url) as fake:
            call = await fake.next_call(timeout=15)
            assert await call.answer()
            frames = 0
            async for _chunk in call.audio_stream():
                frames += 1
                if frames == 17:  # 0.3 s of speech is over: the caller now waits for us
                    break
            await call.send_audio(tone(0.5, freq=300.0))
            async with asyncio.timeout(30):
                printed = await proc.stdout.readline()
        summary = json.loads(printed)
        assert summary["end_reason"] == "caller_hangup"
        assert summary["commands"] == [["call.answer", True, None]]
        assert 0 < summary["agent_audio_bytes"] <= 16000
        assert "wait_agent:1:done" in summary["script_events"]
        async with asyncio.timeout(30):
            assert await proc.wait() == 0
        assert (tmp_path / f"{summary['call_id']}.wav").exists()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
