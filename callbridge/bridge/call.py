"""One bridged call: its tasks, feeding the turn machine and performing what it decides.

The rules (turns, barge-in, playout gating, stalls, nudges) are
:class:`callbridge.bridge.turns.TurnMachine`'s;
the agent's side of the line is :class:`callbridge.bridge.line.AgentLine`. The tasks, all owned by
one
``asyncio.TaskGroup``: the caller pump (caller audio -> resample -> frames -> model, held back
while a BLOCKING tool call is pending: Gemini closes the session (1008) on audio then), the
model pump (events -> machine -> actions; it never awaits anything slow), AgentLine's playout
and clearer, the tool dispatcher, the watchdog (ticks the machine, sends the nudges it asks
for) and the supervisor (ends the group when :meth:`BridgedCall.finish` is called).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable

from callbridge.bridge import turns as t
from callbridge.bridge.audio import Rechunker, StreamResampler, frame_bytes
from callbridge.bridge.config import AudioSettings, WarningSettings
from callbridge.bridge.errors import CallGone, ModelUnavailable
from callbridge.bridge.gate import HeldAudio
from callbridge.bridge.line import LINE_ACTIONS, AgentLine
from callbridge.bridge.playout import CallStats
from callbridge.bridge.ports import CallCommand, CallPort, ModelSession
from callbridge.bridge.record import CallRecord
from callbridge.bridge.speech import CallerActivity
from callbridge.bridge.tools import HangUp, HumanLeg, ToolDispatcher, run_command
from callbridge.bridge.turns import TurnMachine
from callbridge.bridge.warnings import CallWarner, WarningCode

__all__ = ["NUDGE", "BridgedCall", "CallStats"]

NUDGE = "(The caller is waiting for your spoken answer. Please answer now.)"
"""What the watchdog tells a stalled model."""
TICK_S = 0.25
"""Watchdog beat: a stall is noticed within its threshold + 0.25 s."""


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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.call, self.session, self.record, self.warner = call, session, record, warner
        self.stats = CallStats()
        self.tools: ToolDispatcher | None = None
        self.caller = caller_activity or CallerActivity(call.sample_rate)
        self.outcome = "in_progress"
        self._audio, self._greeting, self._clock = audio, greeting_prompt, clock
        self._human = human or HumanLeg()
        self.turns = TurnMachine(
            now=clock(),
            model_turn_stall_s=thresholds.model_turn_stall_s,
            slow_model_response_s=thresholds.slow_model_response_s,
        )
        self.agent_line = AgentLine(
            call,
            model_rate=session.output_rate,
            audio=audio,
            stats=self.stats,
            record=record,
            warner=warner,
            clock=clock,
            feed=self._feed,
            gone=lambda: self.finish("caller_hangup"),
        )
        rate_in = session.input_rate
        self._in_resampler = StreamResampler(call.sample_rate, rate_in, audio.resample_quality)
        self._to_model = Rechunker(frame := frame_bytes(rate_in, audio.frame_ms))
        # Caller audio held while a BLOCKING tool call is pending (bounded, oldest dropped).
        held_frames = max(int(audio.max_gated_caller_audio_s * 1000 / audio.frame_ms), 1)
        self._held = HeldAudio[bytes](held_frames * frame, len)
        self._done = asyncio.Event()
        self._hang_up: HangUp = "none"
        call.on_call_error(lambda code, message: self._feed(t.CallError(code, message)))

    # ── Public control (also the tools' CallControl) ─────────────────────────────────────

    def finish(self, outcome: str, hang_up: HangUp = "none") -> None:
        """End the call; the first outcome given wins."""
        if not self._done.is_set():
            self.outcome, self._hang_up = outcome, hang_up
            self._done.set()

    def set_agent_audio(self, enabled: bool) -> None:
        self._feed(t.AgentAudio(enabled))

    async def wait_until_played(self, timeout_s: float) -> bool:
        deadline = self._clock() + timeout_s
        while self._clock() < deadline:
            if not self.agent_speaking:
                try:
                    if await self.call.buffered_bytes() == 0:
                        return True
                except CallGone:
                    return True
            await asyncio.sleep(0.05)
        return False

    @property
    def agent_speaking(self) -> bool:
        return self.turns.turn_active or bool(self.agent_line.queue)

    async def inject(self, text: str) -> bool:
        """Make the agent say something now, unless someone is speaking (then warn)."""
        refusal = self.turns.refuse_inject(audio_queued=bool(self.agent_line.queue))
        if refusal is not None:
            self._perform([refusal])
            return False
        self.record.note("inject", text=text)
        await self.session.send_text(
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
                    tg.create_task(self.agent_line.playout(), name="playout")
                    tg.create_task(self.agent_line.clearer(), name="clearer")
                    tg.create_task(self._watchdog(), name="watchdog")
                    if self._greeting:
                        await self.session.send_text(self._greeting)
            except* _CallOver:
                pass
        except asyncio.CancelledError:
            # Shut down from outside (drain grace over): hang up rather than leave dead air.
            self.finish("shutdown", hang_up=self._hang_up_kind())
            raise
        finally:
            self._perform(self.turns.flush_transcripts())
            await asyncio.shield(self._hang_up_if_needed())
            self.record.finish(self.outcome)
        return self.outcome

    async def _supervisor(self) -> None:
        await self._done.wait()
        raise _CallOver

    def _hang_up_kind(self) -> HangUp:
        """With a human on the line only the agent leaves (close); otherwise end the call."""
        return "close" if self._human.connected else "disconnect"

    async def _hang_up_if_needed(self) -> None:
        if self._hang_up != "none":
            with contextlib.suppress(CallGone):
                await run_command(self, CallCommand(self._hang_up))

    # ── The tasks ────────────────────────────────────────────────────────────────────────

    async def _caller_pump(self) -> None:
        try:
            async for chunk in self.call.caller_audio():
                self.stats.caller_frames += 1
                was_speaking = self.caller.speaking
                if self.caller.update(chunk):
                    self._feed(t.CallerStopped(), self.caller.stopped_at)
                elif self.caller.speaking and not was_speaking:
                    self._feed(t.CallerStarted())
                for frame in self._to_model.push(self._in_resampler.process(chunk)):
                    await self._send_to_model(frame)
        except CallGone:
            pass
        self.finish(self.call.end_reason)

    async def _send_to_model(self, frame: bytes) -> None:
        if self.tools is not None and self.tools.blocking_pending:
            if self._held.hold(frame):
                self.warner.warn(
                    WarningCode.CALLER_AUDIO_DROPPED,
                    f"caller audio held during a blocking tool call exceeded "
                    f"{self._audio.max_gated_caller_audio_s:.0f} s; the oldest is dropped",
                )
            return
        while self._held:
            await self.session.send_audio(self._held.pop())
        await self.session.send_audio(frame)
        self.stats.caller_bytes_to_model += len(frame)

    async def _model_pump(self) -> None:
        try:
            async for event in self.session.events():
                self._feed(event)
        except ModelUnavailable as exc:
            self.warner.warn(
                WarningCode.MODEL_REQUEST_FAILED,
                f"model session failed ({exc}); ending the call",
                close_code=exc.close_code,
            )
            self.finish("model_failed", hang_up=self._hang_up_kind())
            return
        self.finish("model_ended", hang_up=self._hang_up_kind())

    async def _watchdog(self) -> None:
        """Tick the machine; a nudge is the one action that waits (on the model)."""
        while True:
            await asyncio.sleep(TICK_S)
            for action in self.turns.handle(t.Tick(bool(self.agent_line.queue)), self._clock()):
                if isinstance(action, t.Nudge):
                    self.stats.nudges += 1
                    self.record.note("model_nudged")
                    await self.session.send_text(NUDGE)
                else:
                    self._perform([action])

    # ── Performing the machine's actions (never awaits: this runs in the audio pumps) ────

    def _feed(self, event: t.TurnEvent, at: float | None = None) -> None:
        self._perform(self.turns.handle(event, self._clock() if at is None else at))

    def _perform(self, actions: Iterable[t.Action]) -> None:
        for action in actions:
            if isinstance(action, LINE_ACTIONS):
                self.agent_line.perform(action)
                continue
            match action:
                case t.Warn(code=code, message=message, details=details):
                    self.warner.warn(code, message, **details)
                case t.Note(event=event, data=data):
                    self.record.note(event, **data)
                case t.RecordCommand(command=command, ok=ok, error_code=error_code):
                    self.record.command(command, ok, error_code)
                case t.Transcribe(speaker=speaker, text=text):
                    self.record.transcript(speaker, text)
                case t.RecordUsage(usage=usage):
                    self.record.add_usage(dict(usage))
                case t.SubmitTool(call=tool_call):
                    if self.tools is not None:
                        self.tools.submit(tool_call)
                case t.CancelTools(call_ids=ids):
                    if self.tools is not None:
                        self.tools.cancel(ids)
