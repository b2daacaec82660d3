"""Outbound etiquette for one answered call: who picked up, when to speak, what to forward.

The agent does not talk first into a phone that was just picked up. Until the
:class:`~callbridge.bridge.amd.LineDetector` has decided, nothing the line carries reaches the
model (so
a voicemail greeting or an IVR prompt can cause no false barge-in, and the model does not
answer the callee's "Hello?" on its own). Then:

- a person: the opening prompt goes to the model; while the opening plays the callee's audio is
  held (bounded), so their first "Hello?" cannot cut it, and released to the model once the
  opening has played. Speech that goes on for ``opening_barge_in_s`` is a real interruption:
  what was held is released at once and barge-in works as on any call;
- a machine: with ``voicemail = "leave"``, once the beep has ended the voicemail prompt goes to
  the model and the call hangs up after the message has played (outcome ``voicemail_left``);
  with ``"hang_up"`` the call ends at once (outcome ``no_answer``). The line is never forwarded.

:meth:`OutboundLine.feed` runs in the caller pump and only classifies and queues; everything
that waits (prompts, playout, hanging up) happens in :meth:`OutboundLine.run`, a task of the
call's own TaskGroup.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from callbridge.bridge.amd import DetectorSettings, FrameKind, LineDetector, Verdict, classify_frame
from callbridge.bridge.audio import duration_s
from callbridge.bridge.outbound import DialOutcome
from callbridge.bridge.record import CallRecord
from callbridge.bridge.tools import HangUp

Phase = Literal["detect", "opening", "talk", "machine", "done"]

MAX_HELD_S = 20.0
"""Callee audio held during the opening is bounded; beyond it the oldest is dropped."""
WORD_GAP_S = 0.3
"""Pauses between words shorter than this do not break a run of callee speech."""
TURN_START_TIMEOUT_S = 10.0
"""How long to wait for the model to start a prompted turn before treating it as spoken."""


class LineControl(Protocol):
    """What the line needs from the bridged call (``callbridge.bridge.call.BridgedCall`` provides
    it)."""

    @property
    def agent_speaking(self) -> bool: ...

    async def tell_model(self, text: str) -> None: ...

    async def wait_until_played(self, timeout_s: float) -> bool: ...

    def finish(self, outcome: str, hang_up: HangUp = ...) -> None: ...


@dataclass(frozen=True, slots=True)
class LinePolicy:
    """The tenant's outbound etiquette (``[outbound]`` in the config)."""

    opening_prompt: str
    voicemail: Literal["leave", "hang_up"] = "leave"
    voicemail_prompt: str = ""
    opening_barge_in_s: float = 1.2
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    message_timeout_s: float = 60.0


class OutboundLine:
    """The per-call gate between the callee's audio and the model, and its driver task."""

    def __init__(
        self,
        rate: int,
        policy: LinePolicy,
        record: CallRecord,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._policy = policy
        self._record = record
        self._clock = clock
        self.detector = LineDetector(policy.detector)
        self.phase: Phase = "detect"
        self.outcome: DialOutcome | None = None
        self.held: deque[bytes] = deque()
        self._held_s = 0.0
        self._run_start = 0.0
        self._last_voiced = float("-inf")
        self.discarded_s = 0.0
        self._changed = asyncio.Event()

    # -- in the caller pump (synchronous, cheap) -------------------------------------------

    def feed(self, chunk: bytes) -> list[bytes]:
        """Classify one chunk of callee audio; return what may go to the model now.

        Classifying costs an FFT per frame (~40 us), so it runs only while something is
        still to be decided: never once the conversation is under way or the message left.
        """
        if self.phase == "talk":
            return [*self.take_held(), chunk] if self.held else [chunk]
        seconds = duration_s(len(chunk), self._rate)
        if self.phase == "done" or self.detector.verdict is Verdict.LEAVE_MESSAGE:
            self.discarded_s += seconds
            return []
        kind = classify_frame(chunk, self._rate)
        before = self.detector.verdict
        verdict = self.detector.feed(kind, seconds)
        if verdict is not before:
            self._changed.set()
        if self.phase == "opening":
            return self._opening(chunk, kind, seconds)
        self.discarded_s += seconds
        return []

    def _opening(self, chunk: bytes, kind: FrameKind, seconds: float) -> list[bytes]:
        now = self.detector.t
        speech_s = 0.0
        if kind is FrameKind.SPEECH:
            if now - self._last_voiced > WORD_GAP_S:
                self._run_start = now - seconds
            self._last_voiced = now
            speech_s = now - self._run_start
        elif not self.held:
            # Silence before the callee says anything tells the model nothing: not held, so
            # the model does not get seconds of it in one burst after the opening.
            self.discarded_s += seconds
            return []
        self.held.append(chunk)
        self._held_s += seconds
        while self._held_s > MAX_HELD_S and self.held:
            self._held_s -= duration_s(len(self.held.popleft()), self._rate)
        if speech_s >= self._policy.opening_barge_in_s:
            self._record.note("opening_interrupted", speech_s=round(speech_s, 2))
            return self._release()
        return []

    def _release(self) -> list[bytes]:
        self.phase = "talk"
        released = list(self.held)
        self.held.clear()
        self._held_s = 0.0
        return released

    # -- the driver task ---------------------------------------------------------------------

    async def run(self, control: LineControl) -> None:
        """Wait for the detector's verdict and act on it; returns when the line is settled."""
        while self.detector.verdict is Verdict.LISTENING:
            self._changed.clear()
            await self._changed.wait()
        if self.detector.verdict is Verdict.HUMAN:
            await self._open(control)
        else:
            await self._machine(control)

    async def _open(self, control: LineControl) -> None:
        self.outcome = DialOutcome.ANSWERED
        spoke = self.detector.heard_speech
        self._record.note("callee_detected", kind="person", spoke_first=spoke)
        self.phase = "opening"
        await control.tell_model(self._policy.opening_prompt)
        await self._spoken(control)
        if self.phase == "opening":
            # The next feed() hands what was held to the model, before the new chunk.
            self._record.note("opening_played", held_s=round(self._held_s, 2))
            self.phase = "talk"

    async def _machine(self, control: LineControl) -> None:
        self.phase = "machine"
        self._record.note("callee_detected", kind="machine", beep=self.detector.beep_heard)
        if self._policy.voicemail == "hang_up":
            self.outcome = DialOutcome.NO_ANSWER
            self.phase = "done"
            control.finish(DialOutcome.NO_ANSWER.value, hang_up="disconnect")
            return
        while self.detector.verdict is not Verdict.LEAVE_MESSAGE:
            self._changed.clear()
            await self._changed.wait()
        self._record.note("voicemail_message", beep=self.detector.beep_heard)
        await control.tell_model(self._policy.voicemail_prompt)
        await self._spoken(control)
        self.outcome = DialOutcome.VOICEMAIL_LEFT
        self.phase = "done"
        control.finish(DialOutcome.VOICEMAIL_LEFT.value, hang_up="disconnect")

    async def _spoken(self, control: LineControl) -> None:
        """Wait for the prompted turn to start, then for its audio to have played."""
        try:
            async with asyncio.timeout(TURN_START_TIMEOUT_S):
                while not control.agent_speaking:  # noqa: ASYNC110 - a property, no event
                    await asyncio.sleep(0.05)
        except TimeoutError:
            self._record.note("prompted_turn_missing")
            return
        await control.wait_until_played(self._policy.message_timeout_s)

    def final_outcome(self, bridge_outcome: str) -> str:
        """The call's outcome for the business system; how the bridge ended it is noted."""
        outcome = self.outcome or DialOutcome.REJECTED  # picked up, hung up before a word
        if bridge_outcome != outcome.value:
            self._record.note("outbound_ended", by=bridge_outcome)
        return outcome.value

    def take_held(self) -> list[bytes]:
        """Held audio to forward once the opening is over (called by the caller pump)."""
        if self.phase != "talk" or not self.held:
            return []
        released = list(self.held)
        self.held.clear()
        self._held_s = 0.0
        return released
