"""``callbridge demo --agent callbridge.examples.appointment_reminder``: the bridge places two
calls.

Both emulators, the unmodified SDKs and the real bridge, as in ``callbridge demo``; but here
the bridge dials out (``BridgeApp.dial``). The first callee picks up, says "Hello?", hears the
reminder and confirms (the ADK agent runs ``confirm_appointment`` against the booking
example's calendar, then ``end_call``); the second number is a mailbox that gets the message
after its beep. Prints each call's timeline and outcome.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from callbridge.bridge.outbound import DialResult
from callbridge.emulators.demo_agents import next_weekday, say_as_agent
from callbridge.emulators.gemini_live import CallTool, Script, Turn
from callbridge.emulators.stack import LocalStack
from callbridge.emulators.telcoflow import (
    CallerScript,
    Pause,
    Say,
    TelcoflowEmulator,
    WaitForAgentAudio,
)
from callbridge.emulators.telcoflow.outbound import Callee
from callbridge.emulators.telcoflow.script import resample_pcm
from callbridge.emulators.voices import load_phrase

PERSON, MAILBOX = "+15551230001", "+15551230002"
AGENT = "callbridge.examples.appointment_reminder"


def _callee(name: str, rate: int) -> bytes:
    phrase = load_phrase(name)
    return resample_pcm(phrase.pcm, phrase.rate, rate)


def person(rate: int) -> Callee:
    return Callee.person(
        CallerScript(
            [
                Pause(0.4),
                Say(_callee("callee_hello", rate)),
                WaitForAgentAudio(min_s=3.5, timeout_s=20),
                Pause(1.5),
                Say(_callee("callee_confirm", rate)),
                Pause(30),
            ]
        ),
        after_s=1.5,
    )


def person_script(day: str) -> Script:
    confirm: dict[str, Any] = {"day": day, "time": "10:00", "name": "Ada Lovelace"}
    return Script(
        greeting=Turn(
            [
                say_as_agent(
                    "agent_reminder",
                    f"Hi, this is Acme Dental: your appointment {day} at ten. Can you make it?",
                )
            ]
        ),
        turns=[
            Turn(
                [
                    CallTool("confirm_appointment", confirm),
                    say_as_agent("agent_confirmed", "Great, you're all set. Goodbye."),
                    CallTool("end_call", {"reason": "appointment confirmed"}),
                ],
                input_transcript="Yes, that's fine, I'll be there.",
            )
        ],
    )


def mailbox_script(day: str) -> Script:
    return Script(
        greeting=Turn(
            [
                say_as_agent(
                    "agent_voicemail",
                    f"Hello, this is Acme Dental, a reminder of your appointment {day} at ten. "
                    "Please call us back to reschedule. Goodbye.",
                )
            ]
        )
    )


async def one_call(
    script: Script, overrides: dict[str, Any], number: str, callee: Callee, printer: Any
) -> DialResult:
    telco = TelcoflowEmulator(api_key="stack-key", connector_uuid="conn-1")
    async with LocalStack(
        script, overrides=overrides, telcoflow=telco, record_listeners=[printer]
    ) as stack:
        telco.expect_callee(number, callee)
        assert stack.app is not None
        return await stack.app.dial(number)


async def run_reminder_demo(rate: int, data_dir: str, printer: Any) -> int:
    from callbridge.examples.appointment_booking import book_appointment
    from callbridge.examples.appointment_reminder import confirm_appointment

    day = next_weekday(dt.date.today())
    await book_appointment(day, "10:00", "Ada Lovelace")
    overrides: dict[str, Any] = {
        "audio": {"call_rate": rate},
        "outbound": {"enabled": True},
        "model": {
            "backend": "adk",
            "adk_agent": f"{AGENT}:root_agent",
            "adk_session_db": f"sqlite+aiosqlite:///{data_dir}/adk-sessions.sqlite",
        },
    }
    print(f"callbridge demo: the bridge calls {PERSON} (a person) and {MAILBOX} (a mailbox)\n")
    results = []
    for number, callee, script in (
        (PERSON, person(rate), person_script(day)),
        (MAILBOX, Callee.voicemail(_callee("voicemail_greeting", rate), rate), mailbox_script(day)),
    ):
        print(f"--- dialling {number}")
        result = await one_call(script, overrides, number, callee, printer)
        print(f"--- {number}: outcome {result.outcome.value}\n")
        results.append(result)
    check = await confirm_appointment(day, "10:00", "Ada Lovelace")
    print("Outcomes: " + ", ".join(f"{r.to} {r.outcome.value}" for r in results))
    print(f"The calendar says: {check}")
    return 0
