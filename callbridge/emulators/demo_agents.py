"""Scripted conversations for ``callbridge demo --agent examples.NAME``.

Each example ADK agent in ``examples/`` gets a caller and a model script that exercise its
tools end to end: the emulated model asks for the agent's own tools by name, ADK runs them
(for real: the appointment is written to SQLite), and the demo prints what the tools returned.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from callbridge.emulators.gemini_live import CallTool, Script, Speak, Step, Turn
from callbridge.emulators.telcoflow import (
    CallerScript,
    ConnectOutcome,
    Pause,
    Say,
    WaitForAgentAudio,
    resample_pcm,
)
from callbridge.emulators.voices import load_phrase


def say_as_agent(phrase: str, text: str) -> Speak:
    """Committed agent audio with the words this demo wants in the transcript."""
    return Speak(load_phrase(phrase).pcm, text)


def caller_says(name: str, rate: int) -> Say:
    phrase = load_phrase(name)
    return Say(resample_pcm(phrase.pcm, phrase.rate, rate))


def next_weekday(today: dt.date | None = None) -> str:
    day = (today or dt.date.today()) + dt.timedelta(days=1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day.isoformat()


@dataclass(frozen=True)
class AgentDemo:
    """What the model and the caller do in one example's demo call."""

    turns: Callable[[], Sequence[Turn]]
    greeting: str = "Hello, thanks for calling Acme. How can I help you today?"
    connect_outcomes: Sequence[ConnectOutcome] = field(default_factory=tuple)

    def script(self) -> Script:
        return Script(
            greeting=Turn([say_as_agent("agent_greeting", self.greeting)]),
            turns=list(self.turns()),
        )

    def caller(self, rate: int) -> CallerScript:
        """Greet, answer once, then stay on the line until the agent ends the call."""
        return CallerScript(
            [
                # Speech is about half voiced frames: wait for most of the agent's phrase.
                WaitForAgentAudio(min_s=2.0, timeout_s=20),
                Pause(1.5),
                caller_says("caller_greeting", rate),
                WaitForAgentAudio(min_s=1.2, timeout_s=20),
                Pause(1.5),
                caller_says("caller_question", rate),
                Pause(30),
            ]
        )


def _booking() -> Sequence[Turn]:
    day = next_weekday()
    slots: list[Step] = [
        CallTool("list_free_slots", {"day": day}),
        say_as_agent("agent_transfer", f"I have ten o'clock free on {day}. Shall I book it?"),
    ]
    book: list[Step] = [
        CallTool("book_appointment", {"day": day, "time": "10:00", "name": "Ada Lovelace"}),
        say_as_agent("agent_farewell", "You're booked for ten o'clock. Goodbye!"),
        CallTool("end_call", {"reason": "appointment booked"}),
    ]
    return [
        Turn(slots, input_transcript="I'd like to book an appointment for tomorrow."),
        Turn(book, input_transcript="Yes please, ten o'clock. My name is Ada Lovelace."),
    ]


def _lookup() -> Sequence[Turn]:
    return [
        Turn(
            [
                CallTool("lookup_order", {"order_number": "A1001"}),
                say_as_agent("agent_answer_long", "Order A1001 has shipped; it arrives Thursday."),
            ],
            input_transcript="Where is my order A1001?",
        ),
        Turn(
            [
                say_as_agent("agent_farewell", "Thank you for calling, goodbye."),
                CallTool("end_call", {"reason": "answered"}),
            ],
            input_transcript="Thanks, that's all.",
        ),
    ]


def _escalation() -> Sequence[Turn]:
    args = {"reason": "caller asked for a person", "summary": "Order question."}
    return [
        Turn(
            [
                say_as_agent("agent_transfer", "Let me connect you."),
                CallTool("transfer_to_human", args),
            ],
            input_transcript="I need to talk to a person.",
        ),
    ]


def _voicemail() -> Sequence[Turn]:
    message = {
        "name": "Ada Lovelace",
        "callback_number": "+15550001234",
        "message": "Please call me back about my order.",
    }
    return [
        Turn(
            [say_as_agent("agent_unanswered", "We're closed. Your name and message, please?")],
            input_transcript="Hello, is anyone there?",
        ),
        Turn(
            [
                CallTool("take_message", message),
                say_as_agent("agent_farewell", "Got it, we'll call you back. Goodbye."),
                CallTool("end_call", {"reason": "message taken"}),
            ],
            input_transcript="I'm Ada Lovelace, please call me back about my order.",
        ),
    ]


DEMOS: dict[str, AgentDemo] = {
    "callbridge.examples.appointment_booking": AgentDemo(_booking),
    "callbridge.examples.database_lookup": AgentDemo(_lookup),
    "callbridge.examples.human_escalation": AgentDemo(
        _escalation, connect_outcomes=(ConnectOutcome.answered(after_s=1.0),)
    ),
    "callbridge.examples.after_hours_voicemail": AgentDemo(_voicemail),
}
