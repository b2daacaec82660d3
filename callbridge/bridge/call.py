"""One bridged call: a TaskGroup with the audio pumps, barge-in and tool dispatch.

Tasks, all owned by one ``asyncio.TaskGroup``:

- ``caller pump``: caller audio -> resample -> fixed frames -> model. Held back (bounded)
  while a BLOCKING tool call is pending, because Gemini closes the session (1008) if audio
  arrives then.
- ``model pump``: model events -> decisions. It never awaits anything slow: agent audio goes
  to a bounded in-memory queue, tool calls to the dispatcher, clears to the clearer.
- ``playout``: writes queued agent audio into the call's send buffer, paced so the buffer
  stays under a high-water mark (the SDK raises instead of waiting when it is full), in
  half-second batches once it is there.
- ``clearer``: runs ``clear_audio()`` (which waits for a server acknowledgement) after a
  barge-in, off the audio path; a failure is a warning, never fatal.
- ``tools``: the tool dispatcher's own TaskGroup.
- ``watchdog``: slow-response and stalled-turn warnings, and one nudge per stall.
- ``supervisor``: ends the group when any part calls :meth:`BridgedCall.finish`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from callbridge.bridge.audio import StreamResampler, frame_bytes
from callbridge.bridge.config import AudioSettings, WarningSettings
from callbridge.bridge.errors import CallGone, CommandFailed, ModelUnavailable, PlaybackFull
from callbridge.bridge.events import (
    GenerationComplete,
    Interrupted,
    ModelAudio,
    ModelEvent,
    SessionNotice,
    ToolCall,
    ToolCallCancelled,
    ToolRunByModelSide,
    Transcript,
    TurnComplete,
    Usage,
)
from callbridge.bridge.heard import Spoken, Telling, TurnText, correction, heard
from callbridge.bridge.input_path import caller_framer
from callbridge.bridge.line_watch import NUDGES, Finding, LineWatch, Recovery
from callbridge.bridge.opening import OpeningGuard, OpeningSettings
from callbridge.bridge.ports import CallCommand, CallPort, ModelSession
from callbridge.bridge.record import CallRecord
from callbridge.bridge.speech import CallerActivity
from callbridge.bridge.tools import HangUp, HumanLeg, ToolDispatcher
from callbridge.bridge.warnings import CallWarner, WarningCode

log = structlog.get_logger("callbridge.call")

WARN_NOTICES = frozenset({"reconnected", "resume_rejected"})
"""Session notices that mean the model connection failed (planned rotations do not warn)."""

NUDGE = "(The caller is waiting for your spoken answer. Please answer now.)"
"""What the watchdog tells a stalled model."""

PACE_S = 0.02
"""The shortest playout nap (one 20 ms frame)."""
PLAYOUT_BATCH_S = 0.5
"""Once the send buffer is at its high-water mark, top it up in batches of this much audio."""


@dataclass
class CallStats:
    """Measurements of one call, for the record, metrics and the demo."""

    caller_frames: int = 0
    caller_bytes_to_model: int = 0
    agent_bytes_written: int = 0
    agent_bytes_dropped_on_interrupt: int = 0
    interrupts: int = 0
    interrupt_to_clear_s: list[float] = field(default_factory=list)
    interrupt_to_local_drop_s: list[float] = field(default_factory=list)
    first_agent_audio_s: float | None = None
    overflow_dropped_bytes: int = 0
    nudges: int = 0


class _CallOver(Exception):
    """Raised by the supervisor to end the TaskGroup; carries nothing (see ``outcome``)."""


class BridgedCall:
    """Runs one call between a :class:`CallPort` and an open :class:`ModelSession`."""

    def __init__(
        self,
        call: CallPort,
        session: ModelSession,
        *,
        audio: AudioSettings,
        thresholds: WarningSettings,
        record: CallRecord,
        warner: CallWarner,
        greeting_prompt: str | None = None,
        human: HumanLeg | None = None,
        caller_activity: CallerActivity | None = None,
        opening: OpeningSettings | None = None,
        truthful: Telling = "off",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.call = call
        self.session = session
        self.record = record
        self.warner = warner
        self.stats = CallStats()
        self._audio = audio
        self._thresholds = thresholds
        self._greeting = greeting_prompt
        self._human = human or HumanLeg()
        self._clock = clock
        self.tools: ToolDispatcher | None = None

        self._in_resampler = StreamResampler(
            call.sample_rate, session.input_rate, audio.resample_quality
        )
        self._to_model = caller_framer(session.input_rate, audio.frame_ms)
        self._out_resampler = StreamResampler(
            session.output_rate, call.sample_rate, audio.resample_quality
        )
        self._call_frame = frame_bytes(call.sample_rate, 20)
        self._bytes_per_s = call.sample_rate * 2
        self._high_water = int(audio.playout_high_water_s * self._bytes_per_s)
        self._max_pending = int(audio.max_pending_agent_audio_s * self._bytes_per_s)
        self.caller = caller_activity or CallerActivity(call.sample_rate)

        # Agent audio waiting for room in the call's send buffer: (generation, pcm).
        self._pending: deque[tuple[int, bytes]] = deque()
        self._pending_bytes = 0
        self._turn_bytes = 0
        self._audio_ready = asyncio.Event()
        self._generation = 0
        self._discard_until_turn_end = False
        self._agent_audio_enabled = True
        self._turn_active = False
        self._turn_started_at: float | None = None
        self._last_model_activity = clock()
        self._playout_until = clock()
        self._nudge_wanted = False
        self._turn_had_content = False
        self._tool_in_turn = False
        self._nudged_for: float | None = -1.0

        # Caller audio held while a BLOCKING tool call is pending (bounded, oldest dropped).
        gated_frames = int(audio.max_gated_caller_audio_s * 1000 / audio.frame_ms)
        self._gated: deque[bytes] = deque(maxlen=max(gated_frames, 1))

        self._kick = asyncio.Event()
        self._batch_bytes = int(PLAYOUT_BATCH_S * self._bytes_per_s)
        self._clear_wanted = asyncio.Event()
        self._clear_idle = asyncio.Event()
        self._clear_idle.set()
        self._interrupted_at = 0.0

        self._done = asyncio.Event()
        self.outcome = "in_progress"
        self._hang_up: HangUp = "none"
        self._agent_text: list[str] = []
        self._caller_text: list[str] = []
        self._log = log.bind(call_id=record.call_id, tenant=record.tenant)
        # Silent failures (callbridge.bridge.line_watch): one pending recovery at a time, run by the
        # watchdog; ``_told_model_at`` lets a phantom interruption be told from our own input.
        self.line = LineWatch(thresholds.line_watch(), session.output_rate)
        # Only an opening the bridge asks for (a greeting) is protected: without one the
        # caller speaks first, and a short "hi" must reach the model.
        guarded = opening if opening is not None and greeting_prompt else OpeningSettings(0.0)
        self.opening = OpeningGuard(guarded, call.sample_rate)
        # Truthful barge-in (callbridge.bridge.heard): the turn's words on its audio timeline, and
        # how
        # much of the turn was written to the call before it (its start mark).
        self._truthful = truthful
        self._spoken = TurnText()
        self._turn_written_mark = 0
        self._pending_heard: tuple[Spoken, int] | None = None
        self._recovery: tuple[Recovery, float, int] | None = None  # what, due, audio chunks
        self._told_model_at = float("-inf")
        call.on_call_error(self._on_call_error)

    # ── Public control (also the tools' CallControl) ─────────────────────────────────────

    def finish(self, outcome: str, hang_up: HangUp = "none") -> None:
        """End the call; the first outcome given wins."""
        if self._done.is_set():
            return
        self.outcome = outcome
        self._hang_up = hang_up
        self._done.set()

    def _on_call_error(self, error_code: str, message: str) -> None:
        self.record.note("telephony_error", error_code=error_code, message=message)
        self.warner.warn(
            WarningCode.TELEPHONY_CALL_ERROR,
            f"the telephony platform reported {error_code}: {message}",
            error_code=error_code,
        )

    def set_agent_audio(self, enabled: bool) -> None:
        self._agent_audio_enabled = enabled
        if not enabled:
            self._drop_pending()
        self.record.note("agent_audio", enabled=enabled)

    async def wait_until_played(self, timeout_s: float) -> bool:
        deadline = self._clock() + timeout_s
        while self._clock() < deadline:
            if not self._turn_active and not self._pending:
                try:
                    if await self.call.buffered_bytes() == 0:
                        return True
                except CallGone:
                    return True
            await asyncio.sleep(0.05)
        return False

    @property
    def agent_speaking(self) -> bool:
        return self._turn_active or bool(self._pending)

    async def inject(self, text: str) -> bool:
        """Make the agent say something now, unless someone is speaking (then warn)."""
        if self.caller.speaking:
            self.warner.warn(
                WarningCode.INJECT_MESSAGE_DURING_USER_SPEECH,
                "injected message refused: the caller is speaking",
            )
            return False
        if self.agent_speaking:
            self.warner.warn(
                WarningCode.INJECT_MESSAGE_DURING_AGENT_SPEECH,
                "injected message refused: the agent is speaking",
            )
            return False
        self.record.note("inject", text=text)
        await self._tell_model(
            "Say this to the caller now, in your own voice, then continue: " + text
        )
        return True

    # ── Running ──────────────────────────────────────────────────────────────────────────

    async def run(self, dispatcher: ToolDispatcher | None = None) -> str:
        """Bridge until either side ends; returns the outcome. Hang-up runs shielded."""
        self.tools = dispatcher
        try:
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._supervisor(), name="supervisor")
                    if dispatcher is not None:
                        tg.create_task(dispatcher.run(), name="tools")
                    tg.create_task(self._caller_pump(), name="caller-pump")
                    tg.create_task(self._model_pump(), name="model-pump")
                    tg.create_task(self._playout(), name="playout")
                    tg.create_task(self._clearer(), name="clearer")
                    tg.create_task(self._watchdog(), name="watchdog")
                    if self._greeting:
                        await self._tell_model(self._greeting)
            except* _CallOver:
                pass
        except asyncio.CancelledError:
            # Shut down from outside (drain grace over): hang up rather than leave dead air.
            self.finish("shutdown", hang_up=self._hang_up_kind())
            raise
        finally:
            self._flush_transcripts()
            await asyncio.shield(self._hang_up_if_needed())
            self.record.finish(self.outcome)
        return self.outcome

    async def _supervisor(self) -> None:
        await self._done.wait()
        raise _CallOver

    async def _hang_up_if_needed(self) -> None:
        if self._hang_up == "none":
            return
        command = CallCommand.DISCONNECT if self._hang_up == "disconnect" else CallCommand.CLOSE
        try:
            outcome = await self.call.command(command)
        except CallGone:
            return
        self.record.command(command.value, outcome.ok, outcome.error_code)
        if not outcome.ok:
            self.warner.warn(
                WarningCode.CALL_COMMAND_FAILED,
                f"{command.value} at call end failed: {outcome.error_code}",
                command=command.value,
                error_code=outcome.error_code,
            )

    # ── Caller -> model ──────────────────────────────────────────────────────────────────

    async def _caller_pump(self) -> None:
        try:
            async for chunk in self.call.caller_audio():
                self.stats.caller_frames += 1
                if self.caller.update(chunk):
                    self.record.note("caller_stopped_speaking")
                for piece in self.opening.caller_frame(chunk, self._clock()):
                    for frame in self._to_model.push(self._in_resampler.process(piece)):
                        await self._send_to_model(frame)
        except CallGone:
            pass
        self.finish(self.call.end_reason)

    async def _send_to_model(self, frame: bytes) -> None:
        if self.tools is not None and self.tools.blocking_pending:
            if len(self._gated) == self._gated.maxlen:
                self.warner.warn(
                    WarningCode.CALLER_AUDIO_DROPPED,
                    f"caller audio held during a blocking tool call exceeded "
                    f"{self._audio.max_gated_caller_audio_s:.0f} s; the oldest is dropped",
                )
            self._gated.append(frame)
            return
        while self._gated:
            await self.session.send_audio(self._gated.popleft())
        await self.session.send_audio(frame)
        self.stats.caller_bytes_to_model += len(frame)

    # ── Model -> caller ──────────────────────────────────────────────────────────────────

    async def _model_pump(self) -> None:
        try:
            async for event in self.session.events():
                self._on_model_event(event)
        except ModelUnavailable as exc:
            self.warner.warn(
                WarningCode.MODEL_REQUEST_FAILED,
                f"model session failed ({exc}); ending the call",
                close_code=exc.close_code,
            )
            self.finish("model_failed", hang_up=self._hang_up_kind())
            return
        self.finish("model_ended", hang_up=self._hang_up_kind())

    def _hang_up_kind(self) -> HangUp:
        """With a human on the line only the agent leaves (close); otherwise end the call."""
        return "close" if self._human.connected else "disconnect"

    def _on_model_event(self, event: ModelEvent) -> None:
        self._last_model_activity = self._clock()
        match event:
            case ModelAudio(pcm=pcm):
                self._on_model_audio(pcm)
            case Interrupted():
                self._on_interrupted()
            case GenerationComplete():
                self.line.generation_complete()
                self._end_turn_audio()
            case TurnComplete(reason=reason):
                found = self._on_line_finding(self.line.turn_complete(reason))
                self._on_turn_complete(silent_failure_handled=found)
            case Transcript(speaker=speaker, text=text, finished=finished):
                (self._agent_text if speaker == "agent" else self._caller_text).append(text)
                if speaker == "agent":
                    self.line.agent_text(text)
                    self._spoken.text(text)
                if finished and speaker == "caller":
                    # Real models finish the caller's transcript late; keep lines in order.
                    self._flush_caller_transcript()
            case ToolCall():
                self.line.tool_call()
                self._turn_had_content = True
                self._tool_in_turn = True
                self.record.note("tool_call", name=event.name)
                self._flush_transcripts()
                if self.tools is not None:
                    self.tools.submit(event)
            case ToolRunByModelSide(name=name):
                self.line.tool_call()
                self._turn_had_content = True
                self._tool_in_turn = True
                self.record.note("tool_call", name=name, run_by="model_side")
            case ToolCallCancelled(call_ids=ids):
                self.record.note("tool_call_cancelled", ids=list(ids))
                if self.tools is not None:
                    self.tools.cancel(ids)
            case Usage():
                self.record.add_usage(
                    {
                        "prompt_tokens": event.prompt_tokens,
                        "response_tokens": event.response_tokens,
                        "total_tokens": event.total_tokens,
                        **{f"tokens_{k.lower()}": v for k, v in event.by_modality.items()},
                    }
                )
            case SessionNotice(kind=kind, detail=detail, close_code=code):
                self.record.note("model_session", kind=kind, detail=detail, close_code=code)
                if kind in WARN_NOTICES:
                    self.warner.warn(
                        WarningCode.MODEL_REQUEST_FAILED, detail, close_code=code, action=kind
                    )

    def _on_model_audio(self, pcm: bytes) -> None:
        if self._discard_until_turn_end:
            return
        if not self._turn_active:
            self._turn_active = True
            self._turn_started_at = self._clock()
            self._flush_caller_transcript()
            self.record.note("agent_turn_start")
            self._turn_written_mark = self.stats.agent_bytes_written + self._pending_bytes
            self.opening.agent_started(self._turn_started_at)
            if self.stats.first_agent_audio_s is None:
                self.stats.first_agent_audio_s = self.record.elapsed()
        self._turn_had_content = True
        self._spoken.audio(len(pcm) / (self.session.output_rate * 2))
        if self._on_line_finding(self.line.agent_audio(pcm)) and self._discard_until_turn_end:
            return  # the finding cut this turn's audio
        if not self._agent_audio_enabled:
            return
        self._enqueue(self._out_resampler.process(pcm))

    def _enqueue(self, pcm: bytes) -> None:
        if not pcm:
            return
        self._pending.append((self._generation, pcm))
        self._pending_bytes += len(pcm)
        self._turn_bytes += len(pcm)
        while self._pending_bytes > self._max_pending and len(self._pending) > 1:
            _, dropped = self._pending.popleft()
            self._pending_bytes -= len(dropped)
            self.stats.overflow_dropped_bytes += len(dropped)
            self.warner.warn(
                WarningCode.SEND_BUFFER_FULL,
                f"agent audio queue over {self._audio.max_pending_agent_audio_s:.0f} s; "
                f"{self.stats.overflow_dropped_bytes} bytes of the oldest audio dropped",
            )
        self._audio_ready.set()

    def _end_turn_audio(self) -> None:
        """Release the resampler's tail and pad to a whole frame so nothing sticks."""
        if self._discard_until_turn_end:
            return
        tail = self._out_resampler.flush()
        if self._agent_audio_enabled:
            self._enqueue(tail)
        partial = self._turn_bytes % self._call_frame
        if partial and self._agent_audio_enabled:
            self._enqueue(bytes(self._call_frame - partial))
        self._turn_bytes = 0

    def _on_turn_complete(self, silent_failure_handled: bool = False) -> None:
        if (
            not self._discard_until_turn_end
            and not self._turn_had_content
            and not silent_failure_handled
        ):
            self.warner.warn(
                WarningCode.MODEL_TURN_INCOMPLETE, "model turn ended without any audio; nudging"
            )
            self._nudge_wanted = True
        # The turn after a tool call may be empty (2.5 models end the tool call's turn, then
        # answer the result with nothing to add, e.g. after end_call): not a stall.
        self._turn_had_content = self._tool_in_turn
        self._tool_in_turn = False
        self._end_turn_audio()
        self._discard_until_turn_end = False
        if self._turn_active:
            self.record.note("agent_turn_end")
            self.opening.agent_turn_ended()
        self._turn_active = False
        self._turn_started_at = None
        self._spoken.take()
        self._flush_agent_transcript()

    def _on_interrupted(self) -> None:
        """Barge-in: drop unplayed audio now; the buffer clear runs in the clearer task."""
        self._interrupted_at = self._clock()
        self.stats.interrupts += 1
        now = self._interrupted_at
        self._on_line_finding(
            self.line.interrupted(now - self.caller.last_voiced_at, now - self._told_model_at)
        )
        dropped = self._drop_turn_audio()
        self.stats.agent_bytes_dropped_on_interrupt += dropped
        self.stats.interrupt_to_local_drop_s.append(self._clock() - self._interrupted_at)
        self.record.note("barge_in", dropped_bytes=dropped)
        spoken = self._spoken.take()
        if self._truthful == "off":
            self._flush_agent_transcript(interrupted=True)
        else:  # the line is written once the clear says how much was heard
            self._agent_text.clear()
            written = self.stats.agent_bytes_written - self._turn_written_mark
            self._pending_heard = (spoken, max(0, written))

    def _drop_turn_audio(self) -> int:
        """Stop the current turn's audio here and on the line; returns bytes dropped locally."""
        self._generation += 1
        self._playout_until = self._clock()
        self._discard_until_turn_end = True
        dropped = self._drop_pending()
        self._out_resampler.reset()
        self._turn_bytes = 0
        self._turn_active = False
        self._clear_idle.clear()
        self._clear_wanted.set()
        self._kick.set()
        return dropped

    # ── Silent failures (decisions in callbridge.bridge.line_watch)
    # ─────────────────────────────────

    def _on_line_finding(self, finding: Finding | None) -> bool:
        """Warn about a silent failure and schedule its recovery; True if there was one."""
        if finding is None:
            return False
        self.warner.warn(finding.code, finding.description, recovery=finding.recovery)
        self.record.note("silent_failure", code=finding.code.value, recovery=finding.recovery)
        if finding.recovery == "cut_and_repeat":
            self._drop_turn_audio()
        if finding.recovery is not None:
            due = self._clock() + finding.after_s
            self._recovery = (finding.recovery, due, self.line.audio_chunks)
        return True

    async def _run_due_recovery(self) -> None:
        """Called by the watchdog: nudge the model for a pending recovery once it is due.

        A "continue" is dropped if the model spoke again meanwhile: it recovered by itself.
        """
        if self._recovery is None:
            return
        what, due, chunks_then = self._recovery
        if self._clock() < due:
            return
        self._recovery = None
        if what == "continue" and self.line.audio_chunks != chunks_then:
            return
        self.stats.nudges += 1
        self.record.note("model_recovery", recovery=what)
        await self._tell_model(NUDGES[what])

    async def _tell_model(self, text: str) -> None:
        """Every text the bridge gives the model goes here (a phantom-interruption check)."""
        self._told_model_at = self._clock()
        await self.session.send_text(text)

    def _drop_pending(self) -> int:
        dropped = self._pending_bytes
        self._pending.clear()
        self._pending_bytes = 0
        self._audio_ready.clear()
        return dropped

    async def _playout(self) -> None:
        """Move agent audio into the call's send buffer without ever overfilling it."""
        while True:
            await self._audio_ready.wait()
            if not self._clear_idle.is_set():
                # A clear is on its way: writing now could be wiped by it, or play stale audio.
                try:
                    async with asyncio.timeout(self._audio.clear_hold_s):
                        await self._clear_idle.wait()
                except TimeoutError:
                    pass
            if not self._pending:
                self._audio_ready.clear()
                continue
            generation = self._pending[0][0]
            try:
                buffered = await self.call.buffered_bytes()
            except CallGone:
                self.finish("caller_hangup")
                return
            room = self._high_water - buffered
            batch = min(self._batch_bytes, self._pending_bytes, self._high_water // 4)
            want = max(self._call_frame, batch)
            if room < want:
                # Sleep until the server has pulled enough to write a whole batch: a long
                # answer costs two wake-ups a second instead of fifty. A barge-in wakes us.
                await self._nap(max(PACE_S, (want - room) / self._bytes_per_s))
                continue
            chunk = self._take(room, generation)
            if not chunk:
                continue
            try:
                await self.call.write_audio(chunk)
            except PlaybackFull:
                # Nothing was written (all or nothing). Requeue as frames so a smaller write
                # can succeed, and aim lower: the buffer is smaller than our high-water mark.
                frames = range(0, len(chunk), self._call_frame)
                self._pending.extendleft(
                    (generation, chunk[i : i + self._call_frame]) for i in reversed(frames)
                )
                self._pending_bytes += len(chunk)
                self._high_water = max(
                    self._call_frame, min(self._high_water, buffered + len(chunk)) // 2
                )
                self.warner.warn(
                    WarningCode.SEND_BUFFER_FULL,
                    "the call's send buffer was full; agent audio is held and retried, "
                    f"high-water mark lowered to {self._high_water / self._bytes_per_s:.2f} s",
                )
                await asyncio.sleep(PACE_S * 5)
                continue
            except CallGone:
                self.finish("caller_hangup")
                return
            self.stats.agent_bytes_written += len(chunk)
            # The server pulls in real time: this is when what we wrote will have played.
            now = self._clock()
            self._playout_until = max(now, self._playout_until) + len(chunk) / self._bytes_per_s

    async def _nap(self, seconds: float) -> None:
        self._kick.clear()
        try:
            async with asyncio.timeout(seconds):
                await self._kick.wait()
        except TimeoutError:
            pass

    def _take(self, room: int, generation: int) -> bytes:
        """Pop up to ``room`` bytes (whole chunks) of the current generation."""
        parts: list[bytes] = []
        size = 0
        while self._pending and self._pending[0][0] == generation:
            chunk_len = len(self._pending[0][1])
            if parts and size + chunk_len > room:
                break
            _, chunk = self._pending.popleft()
            parts.append(chunk)
            size += chunk_len
        while self._pending and self._pending[0][0] != self._generation:
            _, stale = self._pending.popleft()
            self._pending_bytes -= len(stale)
        self._pending_bytes -= size
        if not self._pending:
            self._audio_ready.clear()
        if generation != self._generation:
            return b""
        return b"".join(parts)

    async def _clearer(self) -> None:
        while True:
            await self._clear_wanted.wait()
            self._clear_wanted.clear()
            started = self._interrupted_at
            try:
                cleared = await self.call.clear_audio()
            except CommandFailed as exc:
                self.warner.warn(
                    WarningCode.CALL_COMMAND_FAILED,
                    f"agent.interrupt failed with {exc.error_code}; the caller may hear up to "
                    "the server's prefetch of stale audio",
                    command="agent.interrupt",
                    error_code=exc.error_code,
                )
                self.record.command("agent.interrupt", False, exc.error_code)
                await self._report_heard(cleared=None)
            except CallGone:
                self.finish("caller_hangup")
                return
            else:
                took = self._clock() - started
                self.stats.interrupt_to_clear_s.append(took)
                self.record.note(
                    "buffer_cleared", cleared_bytes=cleared, interrupt_to_clear_ms=took * 1000
                )
                await self._report_heard(cleared)
            finally:
                if not self._clear_wanted.is_set():
                    self._clear_idle.set()

    async def _report_heard(self, cleared: int | None) -> None:
        """Record what the caller heard of the interrupted turn and correct the model.

        Heard = the turn's audio written to the call minus what the clear dropped unplayed
        (``None``: the clear failed, so all of it may have played).
        """
        if self._pending_heard is None:
            return
        spoken, written = self._pending_heard
        self._pending_heard = None
        heard_bytes = written if cleared is None else max(0, written - cleared)
        turn = heard(spoken, heard_bytes / self._bytes_per_s)
        self.record.transcript(
            "agent", turn.heard + " [interrupted]", heard=turn.heard, generated=turn.generated
        )
        self.record.note(
            "barge_in_heard",
            heard=turn.heard,
            generated=turn.generated,
            heard_s=round(turn.heard_s, 3),
            generated_s=round(turn.generated_s, 3),
        )
        fix = correction(self._truthful, turn)
        if fix is not None:
            self._told_model_at = self._clock()
            await self.session.send_context(*fix)

    # ── Watchdog ─────────────────────────────────────────────────────────────────────────

    async def _watchdog(self) -> None:
        """Slow answers and stalled turns: warn, and nudge the model once per stall.

        Checked four times a second, so a stall is noticed within its threshold + 0.25 s:
        - the caller stopped speaking and no model turn started (``SLOW_MODEL_RESPONSE``;
          after a barge-in this is a stall: ``MODEL_TURN_INCOMPLETE`` and a nudge);
        - a turn started but nothing came for the stall threshold after its audio played;
        - a turn ended without any audio (flagged by the model pump).
        """
        handled_stop: float | None = None
        while True:
            await asyncio.sleep(0.25)
            now = self._clock()
            limits = self._thresholds
            stopped = self.caller.stopped_at
            if (
                stopped is not None
                and stopped != handled_stop
                and not self.caller.speaking
                and not self._turn_active
                and self._last_model_activity < stopped
            ):
                waited = now - stopped
                after_barge_in = self._interrupted_at > 0 and self._interrupted_at < stopped
                if after_barge_in and waited >= limits.model_turn_stall_s:
                    handled_stop = stopped
                    self.warner.warn(
                        WarningCode.MODEL_TURN_INCOMPLETE,
                        f"no answer {waited:.1f} s after the caller barged in; nudging the model",
                    )
                    self._nudge_wanted = True
                elif not after_barge_in and waited >= limits.slow_model_response_s:
                    handled_stop = stopped
                    self.warner.warn(
                        WarningCode.SLOW_MODEL_RESPONSE,
                        f"no model audio {waited:.1f} s after the caller stopped speaking",
                    )
            quiet_since = max(self._last_model_activity, self._playout_until)
            if (
                self._turn_active
                and not self._pending
                and now - quiet_since >= limits.model_turn_stall_s
            ):
                self._last_model_activity = now
                self.warner.warn(
                    WarningCode.MODEL_TURN_INCOMPLETE,
                    f"model turn stalled: nothing for {limits.model_turn_stall_s:.1f} s; nudging",
                )
                self._nudge_wanted = True
            await self._run_due_recovery()
            if self._nudge_wanted:
                self._nudge_wanted = False
                if self._nudged_for == self.caller.stopped_at:
                    continue  # one nudge per caller utterance: never a nudge loop
                self._nudged_for = self.caller.stopped_at
                self.stats.nudges += 1
                self.record.note("model_nudged")
                await self._tell_model(NUDGE)

    # ── Transcripts ──────────────────────────────────────────────────────────────────────

    def _flush_caller_transcript(self) -> None:
        if self._caller_text:
            self.record.transcript("caller", "".join(self._caller_text).strip())
            self._caller_text.clear()

    def _flush_agent_transcript(self, interrupted: bool = False) -> None:
        if self._agent_text:
            text = "".join(self._agent_text).strip()
            self.record.transcript("agent", text + (" [interrupted]" if interrupted else ""))
            self._agent_text.clear()

    def _flush_transcripts(self) -> None:
        self._flush_caller_transcript()
        self._flush_agent_transcript()
