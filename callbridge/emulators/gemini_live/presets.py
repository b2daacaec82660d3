"""Ready-made scripts built from the committed speech assets (demo, benchmark, smoke tests)."""

from __future__ import annotations

from callbridge.emulators.voices import load_phrase

from .script import CallTool, Script, Speak, Turn

__all__ = ["demo_script"]


def _say(name: str) -> Speak:
    return Speak.phrase(load_phrase(name))


def demo_script(
    escalation_tool: str = "escalate_to_human", *, greet_on_connect: bool = False
) -> Script:
    """An order-status call: greeting, a long answer (good for barge-in), an escalation, goodbye.

    The caller side that fits it: `caller_greeting`, `caller_question` (or `caller_bargein`
    during the long answer), then `caller_bye`. The escalation turn calls `escalation_tool`
    (skipped and logged if the client did not declare it) and, once answered, says that nobody
    is available.
    """
    return Script(
        greeting=Turn([_say("agent_greeting")]),
        greet_on_connect=greet_on_connect,
        turns=[
            Turn([_say("agent_answer_long")], input_transcript=load_phrase("caller_greeting").text),
            Turn(
                [
                    _say("agent_transfer"),
                    CallTool(escalation_tool, {"reason": "caller asked for a person"}),
                    _say("agent_unanswered"),
                ],
                input_transcript=load_phrase("caller_bargein").text,
            ),
            Turn([_say("agent_farewell")], input_transcript=load_phrase("caller_bye").text),
        ],
        fallback=Turn([_say("agent_unanswered")]),
    )
