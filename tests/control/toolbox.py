"""User tools for the control tests, loaded by the bridge as ``tests.control.toolbox:<name>``.

Each tool logs what it did in :data:`LOG` (monotonic times) so a test can tell a tool that
ran to the end from one that was cancelled half-way: the side effect is the proof.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

SLOW_LOOKUP_S = 5.0
"""How long :func:`slow_lookup` takes (the issue asks for a 5 s tool)."""

BOOKING_S = 2.0
"""How long :func:`book_slot` works before its side effect lands."""


@dataclass
class ToolLog:
    """What the tools did during one test (reset by the ``toolbox_log`` fixture)."""

    started: dict[str, list[float]] = field(default_factory=dict)
    finished: dict[str, list[float]] = field(default_factory=dict)
    cancelled: dict[str, list[float]] = field(default_factory=dict)
    bookings: list[str] = field(default_factory=list)

    def mark(self, table: dict[str, list[float]], name: str) -> None:
        table.setdefault(name, []).append(time.monotonic())

    def reset(self) -> None:
        self.started.clear()
        self.finished.clear()
        self.cancelled.clear()
        self.bookings.clear()


LOG = ToolLog()


async def _work(name: str, seconds: float) -> None:
    LOG.mark(LOG.started, name)
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        LOG.mark(LOG.cancelled, name)
        raise
    LOG.mark(LOG.finished, name)


async def slow_lookup(query: str = "") -> dict[str, str]:
    """Look up an order (slowly): five seconds of waiting on a back end."""
    await _work("slow_lookup", SLOW_LOOKUP_S)
    return {"order": query or "A-1", "status": "shipped"}


async def broken_lookup(query: str = "") -> dict[str, str]:
    """Look up an order in a back end that is down: always raises."""
    LOG.mark(LOG.started, "broken_lookup")
    await asyncio.sleep(0)
    raise ConnectionError(f"order service unreachable for {query!r}")


async def book_slot(slot: str) -> dict[str, str]:
    """Book an appointment slot: the booking is made only once the work completes."""
    await _work("book_slot", BOOKING_S)
    LOG.bookings.append(slot)
    return {"booked": slot}


class Opaque:
    """A value no JSON encoder knows (a tool returning its own objects)."""

    def __repr__(self) -> str:
        return "<Opaque order record>"


async def opaque_lookup(query: str = "") -> dict[str, object]:
    """Look up an order and return the back end's own object (not JSON-serialisable)."""
    LOG.mark(LOG.started, "opaque_lookup")
    return {"order": query, "record": Opaque()}
