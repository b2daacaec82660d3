"""A scenario file: your own conversation for the emulated model and caller, in TOML.

``callbridge demo --agent my_pkg.agent:root_agent --scenario call.toml`` runs your ADK agent on
the emulators; the scenario says what the caller says and what the emulated model does in
answer (speak, or call one of *your agent's* tools with given arguments, which ADK then runs
for real)::

    greeting = "Hello, Acme orders. How can I help?"   # optional

    [[turn]]
    caller = "Where is my order A1001?"                 # what the model "hears"
    steps = [
      { tool = "lookup_order", args = { order_number = "A1001" } },
      { say = "Order A1001 has shipped." },
    ]

    [[turn]]
    caller = "Thanks, bye."
    steps = [{ say = "Goodbye!" }, { tool = "end_call", args = { reason = "done" } }]

The emulated caller speaks once per turn (recorded speech; the words are the turn's
``caller`` text) after the agent has answered the previous one, then stays on the line for
``hold_s`` seconds (default 10) unless the agent ends the call first. Every problem in the
file is reported with its place (``turn[2].steps[0]: ...``).
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callbridge.emulators.gemini_live import CallTool, Pause, Script, Speak, Step, Turn
from callbridge.emulators.telcoflow import (
    CallerScript,
    HangUp,
    Say,
    WaitForAgentAudio,
    resample_pcm,
)
from callbridge.emulators.telcoflow import Pause as CallerPause
from callbridge.emulators.voices import load_phrase

__all__ = [
    "Scenario",
    "ScenarioError",
    "declared_tools",
    "default_scenario",
    "load_scenario",
    "parse_scenario",
]

DEFAULT_GREETING = "Hello, thanks for calling. How can I help you today?"
_AGENT_VOICES = ("agent_greeting", "agent_transfer", "agent_farewell", "agent_unanswered")
_CALLER_VOICES = ("caller_greeting", "caller_question", "caller_bye", "caller_bargein")


class ScenarioError(ValueError):
    """A scenario file that cannot be played; the message names the place to fix."""


@dataclass(frozen=True)
class Scenario:
    """A parsed scenario: the model's script and the caller's lines."""

    greeting: str
    turns: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]
    hold_s: float = 10.0

    def tools(self) -> list[str]:
        """Tool names the scenario makes the model call, in order of first use."""
        names = (str(step["tool"]) for _, steps in self.turns for step in steps if "tool" in step)
        return list(dict.fromkeys(names))

    def script(self) -> Script:
        voices = itertools.cycle(_AGENT_VOICES[1:])
        turns = [
            Turn([_step(step, voices) for step in steps], input_transcript=caller)
            for caller, steps in self.turns
        ]
        greeting = Speak(load_phrase(_AGENT_VOICES[0]).pcm, self.greeting)
        return Script(greeting=Turn([greeting]), turns=turns)

    def caller(self, rate: int) -> CallerScript:
        steps: list[Any] = [WaitForAgentAudio(min_s=2.0, timeout_s=20), CallerPause(1.5)]
        for (_, _), voice in zip(self.turns, itertools.cycle(_CALLER_VOICES), strict=False):
            phrase = load_phrase(voice)
            steps.append(Say(resample_pcm(phrase.pcm, phrase.rate, rate)))
            steps += [WaitForAgentAudio(min_s=0.8, timeout_s=20), CallerPause(1.0)]
        steps += [CallerPause(self.hold_s), HangUp()]
        return CallerScript(steps)


def declared_tools(setup: Mapping[str, Any]) -> list[str]:
    """Function names a (normalized) Live setup declared: what a scenario may call."""
    return sorted(
        str(declaration.get("name"))
        for tool in setup.get("tools") or []
        for declaration in (tool or {}).get("function_declarations") or []
    )


def _step(step: Mapping[str, Any], voices: Iterator[str]) -> Step:
    if "tool" in step:
        return CallTool(str(step["tool"]), dict(step.get("args", {})))
    if "pause" in step:
        return Pause(float(step["pause"]))
    return Speak(load_phrase(next(voices)).pcm, str(step["say"]))


def default_scenario() -> Scenario:
    """Without a scenario file: a greeting, one question answered in words, the caller leaves."""
    return Scenario(
        DEFAULT_GREETING,
        [("Hello, I have a question about my order.", [{"say": "Of course, let me help."}])],
        hold_s=3.0,
    )


def load_scenario(path: Path) -> Scenario:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    return parse_scenario(data, str(path))


def parse_scenario(data: Mapping[str, Any], where: str = "scenario") -> Scenario:
    problems: list[str] = []
    unknown = set(data) - {"greeting", "turn", "hold_s"}
    problems += [f"{key}: unknown setting (use greeting, hold_s, turn)" for key in sorted(unknown)]
    greeting = data.get("greeting", DEFAULT_GREETING)
    if not isinstance(greeting, str):
        problems.append("greeting: must be a string")
    hold_s = data.get("hold_s", 10.0)
    if not isinstance(hold_s, int | float) or hold_s < 0:
        problems.append("hold_s: must be a number of seconds >= 0")
    raw_turns = data.get("turn", [])
    if not isinstance(raw_turns, list) or not raw_turns:
        problems.append("turn: at least one [[turn]] is needed")
        raw_turns = []
    turns: list[tuple[str, list[Mapping[str, Any]]]] = []
    for i, turn in enumerate(raw_turns):
        at = f"turn[{i}]"
        if not isinstance(turn, dict) or not isinstance(turn.get("caller"), str):
            problems.append(f"{at}.caller: what the caller says is required (a string)")
            continue
        steps = turn.get("steps", [])
        if not isinstance(steps, list):
            problems.append(f"{at}.steps: must be a list of {{say=...}} / {{tool=..., args=...}}")
            continue
        for j, step in enumerate(steps):
            problems += [f"{at}.steps[{j}]: {p}" for p in _step_problems(step)]
        turns.append((turn["caller"], steps))
    if problems:
        raise ScenarioError(f"{where}: " + "; ".join(problems))
    return Scenario(str(greeting), turns, float(hold_s))


def _step_problems(step: Any) -> list[str]:
    if not isinstance(step, dict):
        return ["a step is a table: {say = ...}, {tool = ..., args = {...}} or {pause = s}"]
    kinds = {"say", "tool", "pause"} & set(step)
    if len(kinds) != 1:
        return ["give exactly one of say, tool, pause"]
    allowed = {"tool", "args"} if "tool" in step else kinds
    extra = sorted(set(step) - allowed)
    if extra:
        return [f"unknown keys {extra}"]
    if "tool" in step and not isinstance(step.get("args", {}), dict):
        return ["args: must be a table of the tool's arguments"]
    if "pause" in step and not isinstance(step["pause"], int | float):
        return ["pause: must be a number of seconds"]
    return []
