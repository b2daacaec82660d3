"""Every text the bridge gives the model, through one door: :meth:`Teller.tell`.

Texts are the greeting, outbound prompts, injections and what the turn machine asks for
(nudges, recoveries, corrections after a barge-in). Each one is told to the machine as it
goes, so a model ``interrupted`` right after it is not taken for a phantom one.

The machine decides inside the audio pumps, which never await; sending a text waits on the
model. So :meth:`Teller.queue` takes each :class:`~callbridge.bridge.turns.TellModel` at once
and :meth:`Teller.run` (``teller`` in the call's TaskGroup) sends them one after the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, Protocol

from callbridge.bridge.heard import Role
from callbridge.bridge.playout import CallStats
from callbridge.bridge.record import CallRecord
from callbridge.bridge.turns import TellModel, ToldModel, TurnEvent

MAX_WAITING_TEXTS: Final = 16
"""Texts for the model waiting for the teller (nudges and recoveries are bounded per call,
corrections one per barge-in); past it the oldest is dropped and noted."""


class TextSink(Protocol):
    """The texts side of :class:`~callbridge.bridge.ports.ModelSession`."""

    async def send_text(self, text: str) -> None: ...

    async def send_context(self, role: Role, text: str) -> None: ...


class Teller:
    """Texts for the model: sent now (:meth:`tell`) or queued for the teller task."""

    def __init__(
        self,
        session: TextSink,
        *,
        feed: Callable[[TurnEvent], None],
        record: CallRecord,
        stats: CallStats,
    ) -> None:
        self._session, self._feed, self._record, self._stats = session, feed, record, stats
        self._texts: asyncio.Queue[TellModel] = asyncio.Queue(MAX_WAITING_TEXTS)

    async def tell(self, text: str, role: Role | None = None) -> None:
        """Send ``text`` now. ``role`` set: added to the model's context without ending the
        user's turn (``ModelSession.send_context``); unset: a user turn the model answers."""
        self._feed(ToldModel())
        if role is None:
            await self._session.send_text(text)
        else:
            await self._session.send_context(role, text)

    def queue(self, text: TellModel) -> None:
        """Never awaits. A full queue (the model not taking texts) loses the oldest."""
        if text.nudge:
            self._stats.nudges += 1
        if self._texts.full():
            lost = self._texts.get_nowait()
            self._record.note("model_text_dropped", text=lost.text[:80])
        self._texts.put_nowait(text)

    async def run(self) -> None:
        """Send the queued texts, in order (sending waits on the model, so never in a pump)."""
        while True:
            text = await self._texts.get()
            await self.tell(text.text, text.role)
