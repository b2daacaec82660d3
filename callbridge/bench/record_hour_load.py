"""The recording bench's phone and model: both emulators in their own process, one long call.

Run by ``callbridge.bench.record_hour`` as ``python -m callbridge.bench.record_hour_load``; it
speaks JSON lines on stdout: ``{"ready": {...}}`` once the emulators listen, ``{"done": {...}}``
when the call is over; it then keeps the emulators up until its stdin closes (the bridge
has finished the call by then). The caller and the agent take turns for ``--minutes``: the
caller asks, the agent starts a long answer, the caller barges in, the agent answers again in
full, a pause, and again. Then the caller hangs up, and the emulator's own view of the call
(what it sent as the caller, left; what it played to the phone, right) is written to ``--out``
as a stereo WAV for the bench to compare with the bridge's recording.

The emulator keeps every frame of the call in memory (by design, for assertions): that is why
it runs here and not in the bridge's process.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from callbridge.bench import load_child
from callbridge.emulators.gemini_live import GeminiLiveEmulator, Script, Speak, Turn
from callbridge.emulators.telcoflow import (
    CallerScript,
    Pause,
    Say,
    TelcoflowEmulator,
    WaitForAgentAudio,
    resample_pcm,
    write_stereo_wav,
)
from callbridge.emulators.telcoflow.script import Step
from callbridge.emulators.voices import load_phrase
from callbridge.service import loop

API_KEY = "record-hour-key"
CONNECTOR = "record-hour-connector"
CYCLE_S = 10.0
"""Less than one exchange of the caller script takes (about 14 s), so the script outlasts the
call and the bench's hang-up ends it. (At 16 s the first 60-minute run ran out of script at
3250 s and its last 5.5 minutes were silence.)"""


def model_script() -> Script:
    """Every caller turn gets the same long answer (7.4 s of speech)."""
    return Script(fallback=Turn([Speak.phrase(load_phrase("agent_answer_long"))]))


def caller_script(minutes: float, rate: int) -> CallerScript:
    """Ask, barge into the answer, let the second answer play out, pause; for ``minutes``."""

    def say(name: str) -> Say:
        phrase = load_phrase(name)
        return Say(resample_pcm(phrase.pcm, phrase.rate, rate))

    cycle: list[Step] = [
        say("caller_question"),
        WaitForAgentAudio(min_s=1.5, timeout_s=20),
        say("caller_bargein"),  # while the agent is still talking: a barge-in
        # The whole second answer: 7.4 s, of which about 6 s are voiced (pauses between words).
        WaitForAgentAudio(min_s=5.0, timeout_s=30),
        Pause(1.5),
    ]
    cycles = math.ceil(minutes * 60 / CYCLE_S) + 5  # more than enough: the bench hangs up
    return CallerScript([Pause(1.0), *cycle * cycles])


async def freeze_what_is_kept() -> None:
    """Move everything alive into the collector's permanent generation every few seconds.

    The emulator keeps every frame of the call (a ``PulledFrame`` per agent write, the
    script's events...): after tens of minutes a full collection walks hundreds of thousands
    of objects and pauses this loop, and the phone would stutter for the emulator's own sake.
    """
    while True:
        await asyncio.sleep(5.0)
        gc.freeze()


def emit(kind: str, data: dict[str, Any]) -> None:
    print(json.dumps({kind: data}), flush=True)


async def run(args: argparse.Namespace) -> None:
    gemini = GeminiLiveEmulator(script=model_script(), log_audio_frames=False)
    telco = TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR, record_audio=True)
    async with gemini, telco, asyncio.TaskGroup() as group:
        freezer = group.create_task(freeze_what_is_kept())
        emit(
            "ready", {"telco": telco.base_url, "gemini": gemini.base_url, "ca": str(gemini.ca_file)}
        )
        call = telco.place_call(caller_script(args.minutes, args.sample_rate))
        answered_at = await call.answered(timeout=60)
        emit("answered", {"call_id": call.call_id})
        left = answered_at + args.minutes * 60 - time.monotonic()
        try:
            await call.ended(timeout=max(left, 0.0))
        except TimeoutError:
            await call.hang_up()
        record = await call.ended(timeout=60)
        write_stereo_wav(record, args.out)
        emit(
            "done",
            {
                "call_id": record.call_id,
                "end_reason": record.end_reason,
                "seconds": round(len(record.caller_pcm) / 2 / record.sample_rate, 2),
                "interrupts": len(record.interrupts),
                "dropped_on_interrupt_bytes": record.dropped_on_interrupt,
                "underruns": record.underruns,
                "pump_resyncs": record.pump_resyncs,
                "script_timeouts": sum(1 for _, e in record.script_events if "timeout" in e),
                "wav": str(args.out),
            },
        )
        # Stay up until the bench has stopped the bridge (it closes our stdin).
        await asyncio.to_thread(sys.stdin.read)
        freezer.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m callbridge.bench.record_hour_load")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--out", type=Path, required=True, help="the emulator's view, as WAV")
    load_child.add_cpu_option(parser)
    args = parser.parse_args(argv)
    load_child.pin_to(args.cpu)
    loop.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
