"""Texts for the model: one door, told to the turn machine, queued without waiting, bounded."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from callbridge.bridge import turns as t
from callbridge.bridge.heard import Role
from callbridge.bridge.playout import CallStats
from callbridge.bridge.record import CallRecord
from callbridge.bridge.teller import MAX_WAITING_TEXTS, Teller


@dataclass
class Session:
    """The texts side of a model session, in memory."""

    sent: list[tuple[Role | None, str]] = field(default_factory=list)

    async def send_text(self, text: str) -> None:
        self.sent.append((None, text))

    async def send_context(self, role: Role, text: str) -> None:
        self.sent.append((role, text))


def _teller() -> tuple[Teller, Session, list[t.TurnEvent], CallRecord, CallStats]:
    session, stats = Session(), CallStats()
    fed: list[t.TurnEvent] = []
    record = CallRecord("c", "t", "", "")
    return Teller(session, feed=fed.append, record=record, stats=stats), session, fed, record, stats


async def test_queued_texts_are_sent_in_order_each_told_to_the_machine() -> None:
    teller, session, fed, _, stats = _teller()
    teller.queue(t.TellModel("nudge", nudge=True))
    teller.queue(t.TellModel("correction", role="model"))
    async with asyncio.timeout(5), asyncio.TaskGroup() as tg:
        task = tg.create_task(teller.run())
        while len(session.sent) < 2:
            await asyncio.sleep(0)
        task.cancel()
    assert session.sent == [(None, "nudge"), ("model", "correction")]
    assert fed == [t.ToldModel(), t.ToldModel()]
    assert stats.nudges == 1


async def test_a_full_queue_loses_the_oldest_text_and_notes_it() -> None:
    teller, session, _, record, _ = _teller()
    for i in range(MAX_WAITING_TEXTS + 2):
        teller.queue(t.TellModel(f"text {i}"))
    dropped = [e.data["text"] for e in record.events("timeline")]
    assert dropped == ["text 0", "text 1"]
    await teller.tell("now")  # the one door also sends at once, outside the queue
    assert session.sent == [(None, "now")]
