"""One bridged call: its tasks, feeding the turn machine and performing what it decides.

The rules (turns, barge-in, playout gating, stalls, nudges, silent failures and their
recoveries, what the caller heard of an interrupted turn) are
:class:`callbridge.bridge.turns.TurnMachine`'s; the caller's side of the line is
:class:`callbridge.bridge.caller_line.CallerLine`, the agent's
:class:`callbridge.bridge.line.AgentLine`. The tasks, all owned by one ``asyncio.TaskGroup``:
the caller pump (CallerLine: caller audio -> speech events, admitted, framed, held during
BLOCKING tool calls -> model), the model pump (events -> machine -> actions; it never awaits
anything slow), AgentLine's playout and clearer, the tool dispatcher, the watchdog (ticks the
machine), the teller (sends the model the texts the machine asks for: nudges, recoveries,
corrections) and the supervisor (ends the group when :meth:`BridgedCall.finish` is called).
Every text the bridge sends the model passes :meth:`BridgedCall.tell_model`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable

from callbridge.bridge import turns as t
from callbridge.bridge.caller_line import CALLER_ACTIONS, CallerLine, guarded_opening
from callbridge.bridge.config import AudioSettings, WarningSettings
from callbridge.bridge.errors import CallGone, ModelUnavailable
from callbridge.bridge.heard import Role, Telling
from callbridge.bridge.line import LINE_ACTIONS, AgentLine
from callbridge.bridge.line_watch import LineWatch
from callbridge.bridge.opening import OpeningSettings
from callbridge.bridge.outbound_line import OutboundLine
from callbridge.bridge.playout import CallStats
from callbridge.bridge.ports import CallCommand, CallPort, ModelSession
from callbridge.bridge.record import RECORD_ACTIONS, CallRecord, write_down
from callbridge.bridge.speech import CallerActivity
from callbridge.bridge.teller import Teller
from callbridge.bridge.tools import HangUp, HumanLeg, ToolDispatcher, run_command
from callbridge.bridge.turns import NUDGE, TurnMachine
from callbridge.bridge.warnings import CallWarner, WarningCode

__all__ = ["NUDGE", "BridgedCall", "CallStats"]

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
        self._greeting, self._clock = greeting_prompt, clock
        self._human = human or HumanLeg()
        self.line = line
        """Outbound etiquette (:mod:`callbridge.bridge.outbound_line`): gates caller audio and
        times the opening; ``None`` on inbound calls."""
        self.turns = TurnMachine(
            now=clock(),
            model_turn_stall_s=thresholds.model_turn_stall_s,
            slow_model_response_s=thresholds.slow_model_response_s,
            line_watch=LineWatch(thresholds.line_watch(), session.output_rate),
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
        self.caller_line = CallerLine(
            call.sample_rate,
            session.send_audio,
            model_rate=session.input_rate,
            audio=audio,
            stats=self.stats,
            warner=warner,
            activity=self.caller,
            opening=guarded_opening(
                opening, greeting=bool(greeting_prompt), outbound=line is not None
            ),
            line=line,
            blocking=lambda: self.tools is not None and self.tools.blocking_pending,
            clock=clock,
            feed=self._feed,
        )
        self._done = asyncio.Event()
        self._hang_up: HangUp = "none"
        self.teller = Teller(session, feed=self._feed, record=record, stats=self.stats)
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
        return await self.agent_line.wait_until_played(timeout_s, lambda: self.agent_speaking)

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
        """Every text the bridge gives the model goes here (:meth:`Teller.tell`)."""
        await self.teller.tell(text, role)

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
                    tg.create_task(self.teller.run(), name="teller")
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
        await self.caller_line.pump(self.call.caller_audio())
        self.finish(self.call.end_reason)

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

    # ── Performing the machine's actions (never awaits: this runs in the audio pumps) ────

    def _feed(self, event: t.TurnEvent, at: float | None = None) -> None:
        self._perform(self.turns.handle(event, self._clock() if at is None else at))

    def _perform(self, actions: Iterable[t.Action]) -> None:
        for action in actions:
            if isinstance(action, CALLER_ACTIONS):
                self.caller_line.perform(action)
            if isinstance(action, LINE_ACTIONS):
                self.agent_line.perform(action)
            elif isinstance(action, RECORD_ACTIONS):
                write_down(action, self.record, self.warner)
            match action:
                case t.SubmitTool(call=tool_call):
                    if self.tools is not None:
                        self.tools.submit(tool_call)
                case t.CancelTools(call_ids=ids):
                    if self.tools is not None:
                        self.tools.cancel(ids)
                case t.TellModel():
                    self.teller.queue(action)
