"""Outbound calls on both emulators: a stack with outbound enabled, callees, scripts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from callbridge.emulators.gemini_live import Script, Turn
from callbridge.emulators.stack import LocalStack
from callbridge.emulators.telcoflow import (
    CallerScript,
    HangUp,
    Pause,
    Say,
    TelcoflowEmulator,
    WaitForAgentAudio,
)
from callbridge.emulators.telcoflow.outbound import Callee, OutboundOptions
from tests.e2e.scenarios import agent, caller_pcm

TO = "+15551234567"

OUTBOUND: dict[str, Any] = {
    "outbound": {
        "enabled": True,
        "instruction_template": "You call {name} to remind them of their appointment.",
        "ring_timeout_s": 12,
    },
}

REMINDER = Script(
    greeting=Turn([agent("agent_reminder")]),
    turns=[Turn([agent("agent_confirmed")], input_transcript="Yes, that's fine.")],
    fallback=Turn([agent("agent_voicemail")]),
)
"""The opening answers the opening prompt; a text after that (the voicemail prompt) gets the
fallback turn, which is the voicemail message."""

VOICEMAIL_SCRIPT = Script(greeting=Turn([agent("agent_voicemail")]))


def person(after_s: float = 1.0, hello_after_s: float = 0.3) -> Callee:
    """Picks up, says "Hello?", listens to the opening, confirms, listens, hangs up."""
    return Callee.person(
        CallerScript(
            [
                Pause(hello_after_s),
                Say(caller_pcm("callee_hello", 16000)),
                WaitForAgentAudio(min_s=5.5, timeout_s=20),  # the whole opening
                Pause(1.5),
                Say(caller_pcm("callee_confirm", 16000)),
                WaitForAgentAudio(min_s=1.0, timeout_s=20),
                Pause(1.5),
                HangUp(),
            ]
        ),
        after_s=after_s,
    )


def voicemail(beep: bool = True) -> Callee:
    return Callee.voicemail(caller_pcm("voicemail_greeting", 16000), 16000, beep=beep)


def outbound_stack(
    script: Script = REMINDER,
    *,
    options: OutboundOptions | None = None,
    overrides: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> LocalStack:
    telco = TelcoflowEmulator(
        api_key="stack-key", connector_uuid="conn-1", outbound=options or OutboundOptions()
    )
    merged = {**OUTBOUND, **(overrides or {})}
    return LocalStack(script, overrides=merged, telcoflow=telco, **kwargs)
