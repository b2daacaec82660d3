"""One bridged call: its tasks, feeding the turn machine and performing what it decides.

The rules (turns, barge-in, playout gating, stalls, nudges, silent failures and their
recoveries, what the caller heard of an interrupted turn) are
:class:`callbridge.bridge.turns.TurnMachine`'s;
the agent's side of the line is :class:`callbridge.bridge.line.AgentLine`. The tasks, all owned by
one
``asyncio.TaskGroup``: the caller pump (caller audio -> the outbound etiquette or the protected
opening -> resample -> frames -> model, held back while a BLOCKING tool call is pending: Gemini
closes the session (1008) on audio then), the model pump (events -> machine -> actions; it never
awaits anything slow), AgentLine's playout and clearer, the tool dispatcher, the watchdog (ticks
the machine), the teller (sends the model the texts the machine asks for: nudges, recoveries,
corrections) and the supervisor (ends the group when :meth:`BridgedCall.finish` is called).
Every text the bridge sends the model passes :meth:`BridgedCall.tell_model`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Final

from callbridge.bridge import turns as t
from callbridge.bridge.audio import StreamResampler, frame_bytes
from callbridge.bridge.config import AudioSettings, WarningSettings
from callbridge.bridge.errors import CallGone, ModelUnavailable
from callbridge.bridge.gate import HeldAudio
from callbridge.bridge.heard import Role, Telling
from callbridge.bridge.input_path import caller_framer
from callbridge.bridge.line import LINE_ACTIONS, AgentLine
from callbridge.bridge.line_watch import LineWatch
from callbridge.bridge.opening import OpeningGuard, OpeningSettings
from callbridge.bridge.outbound_line import OutboundLine
from callbridge.bridge.playout import CallStats
from callbridge.bridge.ports import CallCommand, CallPort, ModelSession
from callbridge.bridge.record import CallRecord
from callbridge.bridge.speech import CallerActivity
from callbridge.bridge.tools import HangUp, HumanLeg, ToolDispatcher, run_command
from callbridge.bridge.turns import NUDGE, TurnMachine
from callbridge.bridge.warnings import CallWarner, WarningCode

__all__ = ["NUDGE", "BridgedCall", "CallStats"]

TICK_S = 0.25
"""Watchdog beat: a stall is noticed within its threshold + 0.25 s."""
MAX_WAITING_TEXTS: Final = 16
"""Texts for the model waiting for the teller (nudges and recoveries are bounded per call,
corrections one per barge-in); past it the oldest is dropped and noted."""


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
        line: OutboundLine | None = None,
        opening: OpeningSettings | None = None,
        truthful: Telling = "off",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.call, self.session, self.record, self.warner = call, session, record, warner
        self.stats = CallStats()
        self.tools: ToolDispatcher | None = None
        self.caller = caller_activity or CallerActivity(call.sample_rate)
        self.outcome = "in_progress"
        self._audio, self._greeting, self._clock = audio, greeting_prompt, clock
        self._human = human or HumanLeg()
        self.line = line
        """Outbound etiquette (:mod:`callbridge.bridge.outbound_line`): gates caller audio and
        times the opening; ``None`` on inbound calls."""
        # Only an inbound opening the bridge asks for (a greeting) is protected: without one
        # the caller speaks first, and a short "hi" must reach the model; an outbound call's
        # opening is the outbound line's.
        guarded = opening if opening is not None and greeting_prompt and line is None else None
        self.opening = OpeningGuard(guarded or OpeningSettings(0.0), call.sample_rate)
        """The protected opening (:mod:`callbridge.bridge.opening`), in the caller pump."""
        self.line_watch = LineWatch(thresholds.line_watch(), session.output_rate)
        """Silent failures of the model's turns (:mod:`callbridge.bridge.line_watch`), fed by
        the turn machine."""
        self.turns = TurnMachine(
            now=clock(),
            model_turn_stall_s=thresholds.model_turn_stall_s,
            slow_model_response_s=thresholds.slow_model_response_s,
            line_watch=self.line_watch,
            truthful=truthful,
            model_rate=session.output_rate,
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
        self._to_model = caller_framer(rate_in, audio.frame_ms)
        frame = frame_bytes(rate_in, audio.frame_ms)
        # Caller audio held while a BLOCKING tool call is pending (bounded, oldest dropped).
        held_frames = max(int(audio.max_gated_caller_audio_s * 1000 / audio.frame_ms), 1)
        self._held = HeldAudio[bytes](held_frames * frame, len)
        self._done = asyncio.Event()
        self._hang_up: HangUp = "none"
        self._texts: asyncio.Queue[t.TellModel] = asyncio.Queue(MAX_WAITING_TEXTS)
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
        await self.tell_model(
            "Say this to the caller now, in your own voice, then continue: " + text
        )
        return True

    async def tell_model(self, text: str, role: Role | None = None) -> None:
        """Every text the bridge gives the model goes here (greeting, prompts, injections,
        nudges, recoveries, corrections): the machine is told when, so a model ``interrupted``
        right after it is not taken for a phantom one. ``role`` set: added to the model's
        context without ending the user's turn (``ModelSession.send_context``)."""
        self._feed(t.ToldModel())
        if role is None:
            await self.session.send_text(text)
        else:
            await self.session.send_context(role, text)

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
                    tg.create_task(self._teller(), name="teller")
                    if self.line is not None:
                        tg.create_task(self.line.run(self), name="outbound-line")
                    elif self._greeting:
                        await self.tell_model(self._greeting)
            except* _CallOver:
                pass
        except asyncio.CancelledError:
            # Shut down from outside (drain grace over): hang up rather than leave dead air.
            self.finish("shutdown", hang_up=self._hang_up_kind())
            raise
        finally:
            self._perform(self.turns.flush_transcripts())
            await asyncio.shield(self._hang_up_if_needed())
            if self.line is not None:
                self.outcome = self.line.final_outcome(self.outcome)
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
                was_speaking, voiced_at = self.caller.speaking, self.caller.last_voiced_at
                if self.caller.update(chunk):
                    self._feed(t.CallerStopped(self.caller.silence_s()), self.caller.stopped_at)
                elif self.caller.speaking and not was_speaking:
                    self._feed(t.CallerStarted())
                if self.caller.last_voiced_at != voiced_at:
                    self._feed(t.CallerVoiced(), self.caller.last_voiced_at)
                for admitted in self._admit(chunk):
                    for frame in self._to_model.push(self._in_resampler.process(admitted)):
                        await self._send_to_model(frame)
        except CallGone:
            pass
        self.finish(self.call.end_reason)

    def _admit(self, chunk: bytes) -> Iterable[bytes]:
        """The caller audio that goes to the model now for this chunk: the outbound line's
        etiquette decides on an outbound call, the protected opening on an inbound one."""
        if self.line is not None:
            return self.line.feed(chunk)
        return self.opening.caller_frame(chunk, self._clock())

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
        """Tick the machine (stalls, slow answers, due recoveries)."""
        while True:
            await asyncio.sleep(TICK_S)
            self._feed(t.Tick(bool(self.agent_line.queue)))

    async def _teller(self) -> None:
        """Send the model the texts the machine asked for, in order (sending waits on the
        model, so it never runs in the pumps)."""
        while True:
            text = await self._texts.get()
            await self.tell_model(text.text, text.role)

    # ── Performing the machine's actions (never awaits: this runs in the audio pumps) ────

    def _feed(self, event: t.TurnEvent, at: float | None = None) -> None:
        self._perform(self.turns.handle(event, self._clock() if at is None else at))

    def _perform(self, actions: Iterable[t.Action]) -> None:
        for action in actions:
            if isinstance(action, t.TurnStarted):
                self.opening.agent_started(self._clock())
            elif isinstance(action, t.TurnEnded):
                self.opening.agent_turn_ended()
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
                case t.Transcribe(speaker=speaker, text=text, data=data):
                    self.record.transcript(speaker, text, **data)
                case t.RecordUsage(usage=usage):
                    self.record.add_usage(dict(usage))
                case t.SubmitTool(call=tool_call):
                    if self.tools is not None:
                        self.tools.submit(tool_call)
                case t.CancelTools(call_ids=ids):
                    if self.tools is not None:
                        self.tools.cancel(ids)
                case t.TellModel(nudge=nudge):
                    if nudge:
                        self.stats.nudges += 1
                    self._queue_text(action)

    def _queue_text(self, text: t.TellModel) -> None:
        """Hand a text to the teller; a full queue (the model not taking texts) loses the
        oldest."""
        if self._texts.full():
            lost = self._texts.get_nowait()
            self.record.note("model_text_dropped", text=lost.text[:80])
        self._texts.put_nowait(text)
