"""Outbound calls on the emulator: ``session.create``, the callee's phone, and its variants.

The Telcoflow documentation names ``session.create`` and its refusals (``QUOTA_EXCEEDED``,
``CHANNEL_NOT_CONFIGURED``, ``OUTBOUND_OVERFLOW``) but not **when the callee's phone starts
ringing** nor **how busy / rejected / unanswered are reported**. Both are **[unknown]**, so
each plausible answer is an emulator option, and the bridge is tested under every one:

``ring_start`` (when the ring timer starts):
  ``"create"`` at ``session.create``; ``"ready"`` (default) at ``session.ready`` (the moment
  the SDK can receive ``call.in``); ``"answer"`` when the bridge's ``call.answer`` arrives.

``report`` (how the callee's answer comes back):
  ``"answer"`` (default, our stated assumption): ``call.in`` is sent at once; the response to
  ``call.answer`` is the callee's answer: ``success:true`` when they pick up, else
  ``success:false`` with ``BUSY`` / ``CALL_REJECTED`` / ``CALL_UNANSWERED``, then the call ends.
  A callee still ringing when the answer's own deadline (``timeout_ms``) nears gets ``TIMEOUT``
  and the bridge asks again, so a ring longer than the SDK's 10 s command timeout works.
  ``"create"``: the ``session.create`` response is held until the callee decides: ok when they
  pick up, else an error response with the code (the SDK raises ``WSSConnectionError("[BUSY]
  ...")`` for codes it does not know). Implies ringing from ``session.create``.
  ``"terminate"``: ``call.answer`` succeeds only on pick-up; a callee who does not pick up is
  reported as ``call_event call.error {error_code}``, then ``call.terminated`` and
  ``session.closed`` (the pending answer fails with ``CALL_TERMINATED``).

A connector may only dial once its SM-WS declared ``outboundCall: true`` with
``call_flow.setup`` (else ``CHANNEL_NOT_CONFIGURED``).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Literal

from .script import CallerScript, Pause, Say

RingStart = Literal["create", "ready", "answer"]
Report = Literal["answer", "create", "terminate"]
PickUp = Literal["answer", "busy", "reject", "no_answer"]

FAILURE_CODES: dict[str, str] = {
    "busy": "BUSY",
    "reject": "CALL_REJECTED",
    "no_answer": "CALL_UNANSWERED",
}


@dataclass(frozen=True, slots=True)
class OutboundOptions:
    ring_start: RingStart = "ready"
    report: Report = "answer"
    ring_timeout_s: float = 30.0
    """The platform stops ringing an unanswered phone after this (``CALL_UNANSWERED``)."""
    max_concurrent: int = 100
    """More outbound calls at once than this: ``OUTBOUND_OVERFLOW``."""
    quota: int | None = None
    """Total outbound calls allowed; beyond it ``QUOTA_EXCEEDED``."""
    local_number: str = "+15559999"


@dataclass(frozen=True, slots=True)
class Callee:
    """How the called phone behaves: what it does after ``after_s`` of ringing, then talks."""

    pick_up: PickUp = "answer"
    after_s: float = 1.0
    script: CallerScript = field(default_factory=CallerScript)

    @classmethod
    def person(cls, script: CallerScript, after_s: float = 1.0) -> Callee:
        return cls("answer", after_s, script)

    @classmethod
    def voicemail(
        cls, greeting: bytes, rate: int, *, after_s: float = 1.0, beep: bool = True
    ) -> Callee:
        """A mailbox: the greeting, a 1 kHz beep, then it records for up to 30 s."""
        steps: list[Say | Pause] = [Pause(0.3), Say(greeting, rate)]
        if beep:
            steps += [Pause(0.2), Say(tone(1000.0, 0.5, 16000), 16000)]
        steps.append(Pause(30.0))
        return cls("answer", after_s, CallerScript(steps))

    @classmethod
    def busy(cls, after_s: float = 0.5) -> Callee:
        return cls("busy", after_s)

    @classmethod
    def reject(cls, after_s: float = 1.0) -> Callee:
        return cls("reject", after_s)

    @classmethod
    def no_answer(cls) -> Callee:
        return cls("no_answer", math.inf)


def tone(freq: float, seconds: float, rate: int, amplitude: int = 8000) -> bytes:
    """A pure sine tone as s16le mono PCM (an answering machine's beep)."""
    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


class CalleePhone:
    """The called phone's ring: started once, decided once (``decision`` resolves)."""

    def __init__(self, callee: Callee, options: OutboundOptions) -> None:
        self.callee = callee
        self.options = options
        self.decision: asyncio.Future[PickUp] = asyncio.get_running_loop().create_future()
        self.ring_started_at: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start_ringing(self) -> None:
        if self.ring_started_at is not None or self.decision.done():
            return
        loop = asyncio.get_running_loop()
        self.ring_started_at = loop.time()
        after = self.callee.after_s
        if after >= self.options.ring_timeout_s:
            self._timer = loop.call_later(self.options.ring_timeout_s, self._decide, "no_answer")
        else:
            self._timer = loop.call_later(after, self._decide, self.callee.pick_up)

    def _decide(self, what: PickUp) -> None:
        if not self.decision.done():
            self.decision.set_result(what)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self.decision.done():
            self.decision.cancel()

    async def wait(self, timeout_s: float) -> PickUp | None:
        """The decision, or ``None`` if the phone still rings after ``timeout_s``."""
        self.start_ringing()
        try:
            async with asyncio.timeout(max(timeout_s, 0.0)):
                return await asyncio.shield(self.decision)
        except TimeoutError:
            return None
