"""The load: one realistic conversation per call, placed with a ramp and hung up after T s.

Both sides of the conversation are data. The caller (Telcoflow emulator) and the model (Gemini
Live emulator) each follow their half; they meet through the bridge under test, so the same
scripts drive our bridge and the reference:

    model    greeting (3.9 s)
    caller   "Can you tell me when it will arrive?"
    model    long answer (7.4 s, sent 4x faster than real time)
    caller   barges in after 1 s of it: "Wait, sorry, actually I need to talk to a person."
    model    short reply (1.7 s)
    caller   "Hello, I'd like to check on my order."
    model    tool call ``lookup_order``, then the long answer
    ...      (repeats until the caller hangs up at T s)

So a 20 s call has a greeting, a barge-in, a tool call and three or four agent turns, each
agent turn a burst. Every phrase is a committed espeak-ng asset (``emulators/assets``).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field

from callbridge.emulators.gemini_live import CallTool, Script, Speak, Turn
from callbridge.emulators.telcoflow import (
    CallEndedError,
    CallerScript,
    EmulatedCall,
    Pause,
    Say,
    TelcoflowEmulator,
    WaitForAgentAudio,
)
from callbridge.emulators.telcoflow.script import Step
from callbridge.emulators.voices import load_phrase

TOOL_NAME = "lookup_order"
CYCLES = 12
MAX_THINK_S = 8.0
"""Caller silence after the greeting is spread over 0.3 s to this (a conversation cycle is
about 19 s), so the calls' turns are out of phase."""
"""Conversation cycles in a script: far more than any benchmark call lasts (~20 s each)."""


def _speak(name: str) -> Speak:
    return Speak.phrase(load_phrase(name))


def _say(name: str) -> Say:
    phrase = load_phrase(name)
    return Say(phrase.pcm, rate=phrase.rate)


def model_script() -> Script:
    """The model's half: greeting on the bridge's first text, then one turn per user turn."""
    long_answer = _speak("agent_answer_long")
    cycle = [
        Turn([long_answer], input_transcript="Can you tell me when it will arrive?"),
        Turn([_speak("agent_transfer")], input_transcript="I need to talk to a person."),
        Turn(
            [CallTool(TOOL_NAME, {"order_id": "A-1001"}), long_answer],
            input_transcript="Hello, I'd like to check on my order.",
        ),
    ]
    return Script(
        greeting=Turn([_speak("agent_greeting")]),
        turns=cycle * CYCLES,
        fallback=Turn([_speak("agent_transfer")]),
    )


def caller_script(think_s: float = 0.3) -> CallerScript:
    """The caller's half; waits are bounded so a silent bridge cannot stall the script.

    ``think_s`` is how long the caller stays silent after the greeting. Calls get different
    values so their turns do not line up: identical scripts started together would make every
    call's model burst arrive at the same moment, a load no real call centre sees.
    """
    steps: list[Step] = [WaitForAgentAudio(min_s=3.0, timeout_s=8.0), Pause(think_s)]
    for _ in range(CYCLES):
        steps += [
            _say("caller_question"),
            WaitForAgentAudio(min_s=1.0, timeout_s=6.0),  # barge in 1 s into the answer
            _say("caller_bargein"),
            WaitForAgentAudio(min_s=1.2, timeout_s=6.0),
            Pause(0.3),
            _say("caller_greeting"),
            WaitForAgentAudio(min_s=6.0, timeout_s=12.0),
            Pause(0.3),
        ]
    return CallerScript(steps)


async def lookup_order(order_id: str) -> dict[str, str]:
    """Look up an order's delivery status (the benchmark's cheap user tool)."""
    return {"order_id": order_id, "status": "shipped", "eta": "Thursday before noon"}


def ramp_seconds(calls: int) -> float:
    """Calls are placed evenly over this long: 20 ms apart, at most 2 s in all."""
    return min(2.0, 0.02 * max(calls - 1, 0))


@dataclass
class LoadStatus:
    placed: int = 0
    answered: int = 0
    ended: int = 0
    failed: int = 0
    answered_at: list[float] = field(default_factory=list)
    hang_up_at: float | None = None
    """When every call hangs up: the last answer + ``seconds`` (set once all are answered)."""


SETTLE_TIMEOUT_S = 180.0


class CallLoad:
    """Places ``calls`` calls over ``ramp_s``; all hang up ``seconds`` after the last answer.

    A bridge claims calls one after another (the SDK's notify handlers run serially), and a
    loaded bridge claims slowly, so answers can spread over much longer than the ramp. Hanging
    every call up at the same moment, ``seconds`` after the last answer, keeps N calls live
    together for ``seconds``: that stretch is the benchmark's steady window.

    Runs inside the Telcoflow emulator's process; owns one task per call in its TaskGroup.
    """

    def __init__(self, emulator: TelcoflowEmulator) -> None:
        self._emu = emulator
        self.status = LoadStatus()
        self.calls: list[EmulatedCall] = []
        self._group: asyncio.TaskGroup | None = None
        self._ready = asyncio.Event()
        self._settled = asyncio.Event()
        self._expected = 0

    async def run(self) -> None:
        """Own the per-call tasks; runs until cancelled."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            self._ready.set()
            await asyncio.Event().wait()

    async def start(self, calls: int, seconds: float, ramp_s: float) -> None:
        """Schedule the calls (returns at once; see ``status``)."""
        await self._ready.wait()
        assert self._group is not None
        self._expected = calls
        begin = time.monotonic()
        step = ramp_s / max(calls - 1, 1)
        rng = random.Random(calls)  # the same phases for the same N, run after run
        for index in range(calls):
            script = caller_script(rng.uniform(0.3, MAX_THINK_S))
            self._group.create_task(self._one_call(begin + index * step, script, seconds))

    def _check_settled(self, seconds: float) -> None:
        status = self.status
        if status.answered + status.failed >= self._expected and not self._settled.is_set():
            last = max(status.answered_at, default=time.monotonic())
            status.hang_up_at = last + seconds
            self._settled.set()

    async def _one_call(self, at: float, script: CallerScript, seconds: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        call = self._emu.place_call(script)
        self.calls.append(call)
        self.status.placed += 1
        try:
            answered = await call.answered(timeout=60)
        except (TimeoutError, CallEndedError):
            self.status.failed += 1
            self._check_settled(seconds)
            return
        self.status.answered += 1
        self.status.answered_at.append(answered)
        self._check_settled(seconds)
        try:
            async with asyncio.timeout(SETTLE_TIMEOUT_S):
                await self._settled.wait()
        except TimeoutError:
            pass
        hang_up_at = self.status.hang_up_at or answered + seconds
        await asyncio.sleep(max(0.0, hang_up_at - time.monotonic()))
        if not call.is_ended:
            await call.hang_up()
        try:
            await call.ended(timeout=60)
        except TimeoutError:
            self.status.failed += 1
            return
        self.status.ended += 1


CALL_TAG = re.compile(r"\[bench-call:([A-Za-z0-9_.-]+)\]")
"""How a bridge under test marks its model session with the Telcoflow call id.

The Gemini emulator cannot know which phone call a connection serves; the benchmark needs that
to pair caller frames with the audio the model received. Both bridges append this tag to the
system instruction (a per-call instruction is a normal production pattern, and costs nothing
per frame); the Gemini emulator logs the setup, so the tag comes back with the session.
"""


def tag_instruction(instruction: str, call_id: str) -> str:
    return f"{instruction}\n[bench-call:{call_id}]"


def find_call_tag(text: str) -> str | None:
    match = CALL_TAG.search(text)
    return match.group(1) if match else None
