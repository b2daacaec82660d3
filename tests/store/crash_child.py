"""Child process for the crash test: records a never-ending call until it is SIGKILLed.

Usage: ``python -m tests.store.crash_child URL``. After each append it prints
``<seq> <time.monotonic()>`` so the parent knows exactly when every entry was appended.
"""

from __future__ import annotations

import asyncio
import sys
import time

from callbridge.bridge.record import CallRecord
from callbridge.service.store import RecordStore

INTERVAL_S = 0.004


def append(record: CallRecord, i: int) -> None:
    """Entry ``i`` of the call: a mix of kinds, its number in the data for checking."""
    match i % 3:
        case 0:
            record.note("tick", i=i)
        case 1:
            record.transcript("caller", f"sentence {i}")
        case _:
            record.tool("lookup", f"fc-{i}", "done", i=i)


async def main(url: str) -> None:
    async with RecordStore(url) as store, asyncio.TaskGroup() as tg:
        tg.create_task(store.run())
        record = CallRecord("crash-1", "acme", "+15550001111", "+15550002222")
        record.listeners.append(store.listener())
        i = 0
        while True:  # the call never ends: only SIGKILL stops it
            append(record, i)
            sys.stdout.write(f"{len(record.entries) - 1} {time.monotonic()}\n")
            sys.stdout.flush()
            i += 1
            await asyncio.sleep(INTERVAL_S)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
