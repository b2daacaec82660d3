"""The soak's load generator: both emulators in their own process, offering calls forever.

Run by ``callbridge.bench.soak`` as ``python -m callbridge.bench.soak_load``; it speaks JSON lines
on stdout:
``{"ready": {...}}`` once the emulators listen, ``{"progress": {...}}`` every few seconds and
``{"done": {...}}`` at the end. Keeping the load in another process means the bridge
process's memory, descriptors and tasks are the bridge's alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from callbridge.bench import load_child
from callbridge.emulators.gemini_live import CallTool, GeminiLiveEmulator, Script, Speak, Turn
from callbridge.emulators.telcoflow import (
    CallerScript,
    EmulatedCall,
    Pause,
    Say,
    TelcoflowEmulator,
    WaitForAgentAudio,
    resample_pcm,
)
from callbridge.emulators.voices import load_phrase
from callbridge.service import loop

API_KEY = "soak-key"
CONNECTOR = "soak-connector"


def _speak(name: str) -> Speak:
    return Speak.phrase(load_phrase(name))


def soak_script() -> Script:
    """Greeting, a long answer the caller barges into, a tool call, a farewell and hang-up."""
    return Script(
        greeting=Turn([_speak("agent_greeting")]),
        turns=[
            Turn([_speak("agent_answer_long")], input_transcript="Where is my order?"),
            Turn(
                [
                    CallTool("lookup_order", {"order_id": "A-1"}),
                    _speak("agent_farewell"),
                    CallTool("end_call", {"reason": "done"}),
                ],
                input_transcript="Wait, sorry.",
            ),
        ],
    )


def caller_script(rate: int) -> CallerScript:
    def say(name: str) -> Say:
        phrase = load_phrase(name)
        return Say(resample_pcm(phrase.pcm, phrase.rate, rate))

    return CallerScript(
        [
            WaitForAgentAudio(min_s=1.0, timeout_s=20),
            say("caller_greeting"),
            WaitForAgentAudio(min_s=1.0, timeout_s=20),
            say("caller_bargein"),
            Pause(30),
        ]
    )


def emit(kind: str, data: dict[str, Any]) -> None:
    print(json.dumps({kind: data}), flush=True)


async def offer_calls(
    telco: TelcoflowEmulator, *, total: int, concurrent: int, rate_per_s: float, sample_rate: int
) -> dict[str, Any]:
    outcomes: Counter[str] = Counter()
    answered = 0
    slots = asyncio.Semaphore(concurrent)
    started = time.monotonic()

    async def one_call() -> None:
        nonlocal answered
        try:
            call: EmulatedCall = telco.place_call(caller_script(sample_rate))
            record = await call.ended(timeout=90)
            answered += record.answered_at is not None
            outcomes[record.end_reason] += 1
        except Exception as exc:  # a lost call is a result to report, not a crash
            outcomes[f"error:{type(exc).__name__}"] += 1
        finally:
            slots.release()

    async with asyncio.TaskGroup() as group:
        for index in range(total):
            await slots.acquire()
            group.create_task(one_call())
            if index % 50 == 49:
                emit("progress", {"offered": index + 1, "answered": answered, **outcomes})
            await asyncio.sleep(1.0 / rate_per_s)
    return {
        "offered": total,
        "answered": answered,
        "outcomes": dict(outcomes),
        "seconds": round(time.monotonic() - started, 1),
    }


async def run(args: argparse.Namespace) -> None:
    gemini = GeminiLiveEmulator(script=soak_script(), log_audio_frames=False)
    telco = TelcoflowEmulator(api_key=API_KEY, connector_uuid=CONNECTOR, record_audio=False)
    async with gemini, telco:
        emit(
            "ready", {"telco": telco.base_url, "gemini": gemini.base_url, "ca": str(gemini.ca_file)}
        )
        await asyncio.sleep(args.warmup_s)
        result = await offer_calls(
            telco,
            total=args.calls,
            concurrent=args.concurrent,
            rate_per_s=args.rate,
            sample_rate=args.sample_rate,
        )
        emit("done", result)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m callbridge.bench.soak_load")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--rate", type=float, default=10.0, help="new calls per second, at most")
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--warmup-s", type=float, default=1.0)
    load_child.add_cpu_option(parser)
    args = parser.parse_args(argv)
    load_child.pin_to(args.cpu)
    loop.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
