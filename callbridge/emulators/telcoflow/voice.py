"""One call's voice WebSocket: commands, the caller pump and the agent-audio playout loop.

A ``VoiceLeg`` lives exactly as long as its WebSocket. It owns one TaskGroup holding:

- one task per command, so a ringing ``call.connect`` never blocks anything else;
- after ``call.answer``, one pump task that every 20 ms (absolute monotonic clock) sends one
  caller frame, plays one agent frame and tops up the pull credit. One task does all three so
  that per-call CPU stays low with 100+ concurrent calls.

Ending the call (who sends what, in which order) is decided by ``EmulatedCall``; the leg only
offers the primitives: answer pending commands, send an event, close the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from callbridge.adapters import ws_send

from . import wire
from .caller import ScriptCursor
from .outbound import FAILURE_CODES, CalleePhone
from .pcm import FRAME_S, frame_bytes, nonsilent_seconds
from .playout import PlayoutBuffer
from .record import CommandLog, PulledFrame

if TYPE_CHECKING:
    from .call import EmulatedCall

logger = logging.getLogger(__name__)

MODE_COMMANDS = ("agent.whisper", "agent.barge", "agent.spy")
DEFAULT_RING_S = 60.0
MAX_PUMP_LAG_S = 0.2
"""If the pump falls further behind than this (a stalled event loop), it re-anchors its clock
instead of bursting all the missed frames at once."""


class VoiceLeg:
    """The platform side of one voice WebSocket."""

    def __init__(self, call: EmulatedCall, ws: ServerConnection, *, record_audio: bool) -> None:
        ws_send.check_connection(ws, "Telcoflow emulator voice leg")
        self.call = call
        self.ws = ws
        self.record_audio = record_audio
        self.sample_rate = call.raw_record.sample_rate or 16000
        self.frame_size = frame_bytes(self.sample_rate)
        self.playout = PlayoutBuffer(self.frame_size)
        self.caller_buf = bytearray()
        self.playout_buf = bytearray()
        self.agent_voiced_s = 0.0
        self.human_connected = False
        self._pending: dict[str, CommandLog] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._cursor: ScriptCursor | None = None
        self._request_frames: dict[int, str] = {}
        self._closing = False

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Read the socket until it closes; returns once every task of the leg has finished."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            try:
                async for message in self.ws:
                    if isinstance(message, bytes):
                        self._on_audio(message)
                    else:
                        await self._on_text(message)
            except ConnectionClosed:
                pass
            finally:
                self._closing = True
                # Nobody can receive an answer any more; stop what still waits to answer.
                for command_id in list(self._pending):
                    task = self._tasks.pop(command_id, None)
                    if task is not None:
                        task.cancel()
                self._pending.clear()

    async def send(self, frame: wire.JsonObject) -> bool:
        """Send one JSON frame; ``False`` if the socket is already gone."""
        try:
            await self.ws.send(json.dumps(frame))
        except ConnectionClosed:
            return False
        return True

    async def send_text(self, text: str) -> bool:
        """Send ``text`` verbatim as one text frame (fault injection: malformed frames)."""
        try:
            await self.ws.send(text)
        except ConnectionClosed:
            return False
        return True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket (waits for the closing handshake or its timeout)."""
        self._closing = True
        with contextlib.suppress(ConnectionClosed):
            await self.ws.close(code, reason)

    async def fail_pending(self, code: str, message: str) -> None:
        """Answer every unanswered command with a failure (before the socket closes)."""
        current = asyncio.current_task()
        for log in list(self._pending.values()):
            task = self._tasks.get(log.command_id)
            await self._respond(log, False, code=code, message=message)
            if task is not None and task is not current:
                task.cancel()

    def sync_record(self) -> None:
        """Copy the leg's running counters and audio into the call record."""
        rec = self.call.raw_record
        rec.caller_pcm = bytes(self.caller_buf)
        rec.playout = bytes(self.playout_buf)
        rec.underruns = self.playout.underruns
        rec.over_delivered_bytes = self.playout.over_delivered

    # -- inbound frames --------------------------------------------------------------------

    def _on_audio(self, data: bytes) -> None:
        if len(data) < 2 or data[0] != 0:
            logger.debug("call %s: ignoring binary frame of %d B", self.call.call_id, len(data))
            return
        pcm = data[1:]
        now = time.monotonic()
        self.playout.receive(pcm)
        rec = self.call.raw_record
        rec.agent_audio_bytes += len(pcm)
        rec.pulls.append(PulledFrame(now, pcm if self.record_audio else b"", len(pcm)))
        cursor = self._cursor
        if cursor is not None and cursor.waiting_for_agent:
            # Measuring speech costs numpy time per frame; only a waiting script needs it.
            self.agent_voiced_s += nonsilent_seconds(pcm, self.sample_rate)

    async def _on_text(self, text: str) -> None:
        obj = wire.parse_object(text)
        body = obj.get("data") if obj is not None and obj["type"] == "command" else None
        if not isinstance(body, dict):
            logger.info("call %s: ignoring voice frame %.200s", self.call.call_id, text)
            return
        command_id, name = body.get("command_id"), body.get("command")
        if not isinstance(command_id, str) or not isinstance(name, str):
            logger.info("call %s: ignoring malformed command %.200s", self.call.call_id, text)
            return
        timeout_ms = body.get("timeout_ms")
        inner = body.get("data")
        log = CommandLog(
            t=time.monotonic(),
            name=name,
            data=dict(inner) if isinstance(inner, dict) else {},
            timeout_ms=timeout_ms if isinstance(timeout_ms, int) else None,
            command_id=command_id,
        )
        if command_id in self._pending:
            logger.info("call %s: duplicate command_id %s ignored", self.call.call_id, command_id)
            return
        self.call.raw_record.commands.append(log)
        self._pending[command_id] = log
        if self._closing or self.call.is_ended or self._tg is None:
            await self._respond(log, False, code="CALL_TERMINATED", message="call has ended")
            return
        self._tasks[command_id] = self._tg.create_task(self._command(log))

    # -- commands --------------------------------------------------------------------------

    async def _respond(
        self,
        log: CommandLog,
        success: bool,
        *,
        result: Any = None,
        code: str | None = None,
        message: str = "",
    ) -> bool:
        """Answer a command once; ``False`` if it was already answered (e.g. by a hang-up)."""
        if self._pending.pop(log.command_id, None) is None:
            return False
        self._tasks.pop(log.command_id, None)
        log.success = success
        log.error_code = code
        log.responded_at = time.monotonic()
        if success:
            await self.send(wire.command_ok(log.command_id, result))
        else:
            await self.send(wire.command_error(log.command_id, code or "ERROR", message))
        return True

    async def _command(self, log: CommandLog) -> None:
        try:
            await self._dispatch(log)
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("call %s: command %s failed", self.call.call_id, log.name)
            await self._respond(log, False, code="INTERNAL_ERROR", message="emulator error")

    async def _dispatch(self, log: CommandLog) -> None:
        name = log.name
        faults = self.call.faults
        delay = faults.take_delay(name)
        failure = faults.take_failure(name)
        if failure is not None:
            await asyncio.sleep(delay)
            await self._respond(log, False, code=failure.error_code, message=failure.error_message)
            return
        if name == "call.answer" and self.call.phone is not None:
            await self._answer_outbound(log, self.call.phone, delay)
        elif name == "call.answer":
            self.call.mark_answered(log.t)
            await asyncio.sleep(delay)
            if await self._respond(log, True):
                self._start_pump()
        elif name == "call.connect":
            await self._connect(log, delay)
        elif name in MODE_COMMANDS:
            if self.human_connected:
                self.call.raw_record.modes.append(name.removeprefix("agent."))
                await asyncio.sleep(delay)
                await self._respond(log, True)
            else:
                await asyncio.sleep(delay)
                await self._respond(
                    log, False, code="NOT_CONNECTED", message="no human is connected yet"
                )
        elif name == "agent.interrupt":
            rec = self.call.raw_record
            rec.interrupts.append(log.t)
            rec.dropped_on_interrupt += self.playout.interrupt()
            await asyncio.sleep(delay)
            await self._respond(log, True)
        elif name == "call.disconnect":
            await asyncio.sleep(delay)
            if await self._respond(log, True):
                await self.call.end_call("agent_disconnect")
        elif name == "call.close":
            await asyncio.sleep(delay)
            if await self._respond(log, True):
                await self.call.end_call("agent_close")
        else:
            await asyncio.sleep(delay)
            await self._respond(log, False, code="UNKNOWN_COMMAND", message=f"unknown {name!r}")

    async def _answer_outbound(self, log: CommandLog, phone: CalleePhone, delay: float) -> None:
        """Our leg of an outbound call: its answer is the callee's (see ``outbound``)."""
        budget = (log.timeout_ms or 10_000) / 1000 - 0.5
        decision = await phone.wait(budget)
        await asyncio.sleep(delay)
        if decision is None:
            await self._respond(log, False, code="TIMEOUT", message="the callee's phone is ringing")
            return
        self.call.raw_record.dial_result = decision
        if decision == "answer":
            self.call.mark_answered(time.monotonic())
            if await self._respond(log, True):
                self._start_pump()
            return
        code = FAILURE_CODES[decision]
        if phone.options.report == "terminate":
            await self.send(wire.call_event("call.error", error_code=code, error_message=decision))
        else:
            await self._respond(log, False, code=code, message=f"callee: {decision}")
        await self.call.end_call("caller_hangup")

    def _start_pump(self) -> None:
        if self._cursor is not None or self._tg is None or self._closing:
            return
        rec = self.call.raw_record
        self._cursor = ScriptCursor(
            self.call.script, self.sample_rate, self.frame_size, rec.script_events
        )
        self._tg.create_task(self._pump(self._cursor))

    async def _connect(self, log: CommandLog, delay: float) -> None:
        ring = log.data.get("ringTimeSeconds", DEFAULT_RING_S)
        ring_s = float(ring) if isinstance(ring, int | float) and ring > 0 else DEFAULT_RING_S
        outcome = self.call.next_connect_outcome()
        if outcome.kind == "answered" and outcome.after_s < ring_s:
            await asyncio.sleep(outcome.after_s)
            self.human_connected = True
            self.call.raw_record.connects += 1
            await asyncio.sleep(delay)
            await self._respond(log, True)
        elif outcome.kind == "timeout":
            await asyncio.sleep(ring_s + delay)
            await self._respond(log, False, code="TIMEOUT", message="connect timed out")
        else:
            await asyncio.sleep(ring_s + delay)
            await self._respond(
                log, False, code="CALL_UNANSWERED", message=f"no answer after {ring_s:g} s"
            )

    def _buffer_request_text(self, requested: int) -> str:
        """The serialised ``buffer_request`` (cached: almost every request is one frame)."""
        text = self._request_frames.get(requested)
        if text is None:
            text = json.dumps(wire.buffer_request(requested, self.frame_size))
            self._request_frames[requested] = text
        return text

    # -- the 20 ms pump --------------------------------------------------------------------

    async def _pump(self, cursor: ScriptCursor) -> None:
        try:
            await self._pump_loop(cursor)
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("call %s: pump failed", self.call.call_id)

    async def _pump_loop(self, cursor: ScriptCursor) -> None:
        prefix = b"\x00"
        next_t = time.monotonic()
        while not self._closing:
            now = time.monotonic()
            if next_t > now:
                await asyncio.sleep(next_t - now)
                if self._closing:
                    return
                now = time.monotonic()
            elif now - next_t > MAX_PUMP_LAG_S:
                next_t = now
                self.call.raw_record.pump_resyncs += 1
            else:
                # Catching up after a late wake-up: let the reader take in agent audio first.
                await asyncio.sleep(0)
                if self._closing:
                    return
            frame = cursor.next_frame(now, self.agent_voiced_s)
            if frame is None:
                await self.call.end_call("caller_hangup")
                return
            stamps = self.call.caller_send_times
            if stamps is not None:
                stamps.append(time.monotonic())
            await ws_send.send(self.ws, prefix + frame)
            agent = self.playout.tick(now)
            if self.record_audio:
                self.caller_buf += frame
                self.playout_buf += agent
            request = self.playout.top_up(now)
            if request:
                await ws_send.send(self.ws, self._buffer_request_text(request))
            next_t += FRAME_S
