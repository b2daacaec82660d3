"""The Telcoflow emulator as a benchmark child process: places the load, reports what it saw.

``python -m callbridge.bench.emu_telcoflow`` (started by ``callbridge.bench.procs.Child``).
Commands:

- ``start {calls, seconds, ramp_s}``: place the calls (see ``callbridge.bench.load.CallLoad``);
- ``status``: how many calls were placed, answered and ended, with answer/hang-up times;
- ``collect {path}``: write every call's measurements as JSON to ``path``.

The emulator keeps no per-frame send log for caller audio by default, and the benchmark needs
one (to pair each caller sample with its arrival at the model, and to tell whether the emulator
itself kept real time). So this process gives each call a list in which the caller pump stamps
every frame as it writes it (``EmulatedCall.caller_send_times``): one frame per 20 ms tick, so
the stamps are the pump's real send times. Agent audio is not recorded (``record_audio=False``);
the record still keeps each pull's time and size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from callbridge.bench.load import CallLoad
from callbridge.bench.procs import JsonDict, LagProbe, serve_parent
from callbridge.emulators.telcoflow import EmulatedCall, TelcoflowEmulator
from callbridge.service import loop


class StampingTelcoflowEmulator(TelcoflowEmulator):
    """The unmodified emulator, with caller-frame send times kept per call id."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.caller_sends: dict[str, list[float]] = {}

    def place_call(self, *args: Any, **kwargs: Any) -> EmulatedCall:
        call = super().place_call(*args, **kwargs)
        call.caller_send_times = self.caller_sends.setdefault(call.call_id, [])
        return call


def export_call(call: EmulatedCall, sends: list[float]) -> JsonDict:
    """One call's measurements, as plain JSON."""
    rec = call.record
    rate = rec.sample_rate or 16000
    return {
        "call_id": call.call_id,
        "sample_rate": rate,
        "frame_bytes": rate // 50 * 2,
        "placed_at": call.placed_at,
        "answered_at": rec.answered_at,
        "ended_at": rec.ended_at,
        "end_reason": rec.end_reason,
        "sent": sends,
        "pulls": [[p.t, p.size] for p in rec.pulls],
        "interrupts": list(rec.interrupts),
        "dropped_on_interrupt": rec.dropped_on_interrupt,
        "underruns": rec.underruns,
        "over_delivered_bytes": rec.over_delivered_bytes,
        "commands": [[c.t, c.name, c.success] for c in rec.commands],
        "script_events": [[t, label] for t, label in rec.script_events],
    }


async def _run(args: argparse.Namespace) -> None:
    emu = StampingTelcoflowEmulator(
        api_key=args.api_key, connector_uuid=args.connector, record_audio=False
    )
    async with emu:
        load = CallLoad(emu)
        probe = LagProbe()

        async def start(params: JsonDict) -> JsonDict:
            await load.start(
                int(params["calls"]), float(params["seconds"]), float(params["ramp_s"])
            )
            return {"t": time.monotonic()}

        async def status(_: JsonDict) -> JsonDict:
            return asdict(load.status)

        async def collect(params: JsonDict) -> JsonDict:
            calls = [export_call(c, emu.caller_sends.get(c.call_id, [])) for c in load.calls]
            data = {"calls": calls, "lag": probe.export(), "pid": os.getpid()}
            await asyncio.to_thread(Path(params["path"]).write_text, json.dumps(data))
            return {"calls": len(calls)}

        ready = {
            "base_url": emu.base_url,
            "api_key": args.api_key,
            "connector_uuid": args.connector,
            "pid": os.getpid(),
        }
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(load.run()), group.create_task(probe.run())]
            await serve_parent(ready, {"start": start, "status": status, "collect": collect})
            for task in tasks:
                task.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m callbridge.bench.emu_telcoflow")
    parser.add_argument("--api-key", default="bench-key")
    parser.add_argument("--connector", default="bench-connector")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    loop.run(_run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
