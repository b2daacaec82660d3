"""``callbridge demo``: one whole bridged call on the local emulators, no credentials.

The simulated caller greets, asks about an order, barges in over the agent's long answer and
asks for a person; the agent tries to transfer, nobody answers, it tries again, a human picks
up and the agent leaves the line. The terminal shows a timeline as it happens (who spoke,
transcripts, barge-in with the measured interrupt-to-clear time, the escalation) and
``demo-call.wav`` holds the call as the emulated phone heard it (caller left, agent right).
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from callbridge.bridge.models import DEFAULT_MODEL
from callbridge.bridge.record import CallRecord, RecordEntry
from callbridge.bridge.warnings import BridgeWarning
from callbridge.emulators.demo_agents import DEMOS
from callbridge.emulators.gemini_live import CallTool, Script, Speak, Turn
from callbridge.emulators.scenario import (
    ScenarioError,
    declared_tools,
    default_scenario,
    load_scenario,
)
from callbridge.emulators.stack import LocalStack
from callbridge.emulators.telcoflow import (
    CallerScript,
    ConnectOutcome,
    Pause,
    Say,
    WaitForAgentAudio,
    resample_pcm,
    write_stereo_wav,
)
from callbridge.emulators.voices import load_phrase
from callbridge.service import loop
from callbridge.service.logs import configure_logging


def _agent(name: str) -> Speak:
    return Speak.phrase(load_phrase(name))


def _caller(name: str, rate: int) -> bytes:
    phrase = load_phrase(name)
    return resample_pcm(phrase.pcm, phrase.rate, rate)


def demo_script() -> Script:
    """The model's side of the demo conversation."""
    transfer_args = {"reason": "caller asked for a person", "summary": "Order status question."}
    return Script(
        greeting=Turn([_agent("agent_greeting")]),
        turns=[
            Turn(
                [_agent("agent_answer_long")], input_transcript=load_phrase("caller_greeting").text
            ),
            Turn(
                [
                    _agent("agent_transfer"),
                    CallTool("transfer_to_human", transfer_args),
                    _agent("agent_unanswered"),
                    CallTool("transfer_to_human", transfer_args),
                ],
                input_transcript=load_phrase("caller_bargein").text,
            ),
        ],
    )


def caller_script(rate: int) -> CallerScript:
    """The caller's side: greet, ask, barge in, then wait for the transfer."""
    return CallerScript(
        [
            WaitForAgentAudio(min_s=2.5, timeout_s=20),
            Pause(1.2),
            Say(_caller("caller_greeting", rate)),
            WaitForAgentAudio(min_s=2.0, timeout_s=20),
            Say(_caller("caller_bargein", rate)),
            Pause(60),
        ]
    )


class TimelinePrinter:
    """Prints the bridge's call record as it grows: the demo's live view."""

    SKIP = {"usage", "tool"}

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self._out = out

    def on_entry(self, record: CallRecord, entry: RecordEntry) -> None:
        if entry.kind in self.SKIP:
            return
        text = self.describe(entry)
        if text:
            print(f"  {entry.t:6.2f}s  {text}", file=self._out, flush=True)

    @staticmethod
    def describe(entry: RecordEntry) -> str:
        data: dict[str, Any] = entry.data
        match entry.kind:
            case "transcript":
                who = "CALLER" if data["speaker"] == "caller" else "AGENT "
                return f'{who} "{data["text"]}"'
            case "command":
                status = "ok" if data["ok"] else f"failed: {data['error_code']}"
                return f"command {data['command']} -> {status}"
            case "warning":
                return f"WARNING {data['code']}: {data['description']}"
            case "state":
                return f"call {data['state']}" + (
                    f" ({data['outcome']})" if "outcome" in data else ""
                )
        event = str(data.get("event", ""))
        if event == "barge_in":
            return f"caller barged in: dropped {data['dropped_bytes']} B of unplayed agent audio"
        if event == "buffer_cleared":
            return (
                f"send buffer cleared ({data['cleared_bytes']} B) "
                f"{data['interrupt_to_clear_ms']:.1f} ms after `interrupted`"
            )
        if event in {"agent_turn_start", "agent_turn_end", "caller_stopped_speaking"}:
            return event.replace("_", " ")
        if event in {"transfer_requested", "tool_call", "model_connected", "agent_audio"}:
            details = {k: v for k, v in data.items() if k != "event"}
            return f"{event.replace('_', ' ')} {details}"
        return ""


def agent_conversation(
    agent: str, scenario: Path | None, rate: int
) -> tuple[Script, CallerScript, list[ConnectOutcome]]:
    """The scripted call for ``--agent``: the bundled example's, or a scenario's.

    A bundled example (``examples.NAME``) has its own conversation; any other agent
    (``module:attr``) plays ``--scenario`` (or a short default) with its own tools.
    """
    demo = DEMOS.get(agent)
    if demo is not None and scenario is None:
        return demo.script(), demo.caller(rate), list(demo.connect_outcomes)
    played = default_scenario() if scenario is None else load_scenario(scenario)
    return played.script(), played.caller(rate), [ConnectOutcome.answered(after_s=1.0)]


async def run_demo(
    wav_path: Path, rate: int, agent: str | None = None, scenario: Path | None = None
) -> int:
    printer = TimelinePrinter()
    warnings: list[BridgeWarning] = []
    overrides: dict[str, Any] = {
        "model": {"model": DEFAULT_MODEL},
        "audio": {"call_rate": rate},
        "tools": {"ring_time_s": 3, "after_transfer": "leave"},
    }
    script, caller = demo_script(), caller_script(rate)
    outcomes = [ConnectOutcome.unanswered(), ConnectOutcome.answered(after_s=1.0)]
    data = tempfile.TemporaryDirectory(prefix="callbridge-demo-")
    if agent is not None:
        try:
            script, caller, outcomes = agent_conversation(agent, scenario, rate)
        except ScenarioError as exc:
            print(f"callbridge demo: {exc}")
            return 2
        os.environ["CALLBRIDGE_EXAMPLES_DATA"] = data.name
        overrides["model"] = {
            "model": DEFAULT_MODEL,
            "backend": "adk",
            "adk_agent": agent,
            "adk_session_db": f"sqlite+aiosqlite:///{data.name}/adk-sessions.sqlite",
        }
    who = f"the ADK agent {agent}" if agent else "Gemini Live"
    print(f"callbridge demo: a {rate} Hz call through both emulators, answered by {who}\n")
    with data:
        async with LocalStack(
            script,
            overrides=overrides,
            warning_handlers=[warnings.append],
            record_listeners=[printer],
        ) as stack:
            call = stack.place_call(caller, connect_outcomes=outcomes)
            record = await call.ended(timeout=120)
        if agent is not None:
            declared = (
                declared_tools(stack.gemini.sessions[0].setup) if stack.gemini.sessions else []
            )
            print(f"\nTools the agent declared to the model: {', '.join(declared) or 'none'}")
            print("What the agent's tools returned to the model:")
            for session in stack.gemini.sessions:
                for response in session.tool_responses:
                    print(f"  {response}")
            if agent == "callbridge.examples.appointment_booking":
                print(f"\nBookings in the example's calendar: {await booked()}")
    write_stereo_wav(record, wav_path)
    seconds = len(record.caller_pcm) / (2 * rate)
    print(
        f"\nThe call ended ({record.end_reason}) after {seconds:.1f} s. "
        f"Telcoflow saw {len(record.interrupts)} agent.interrupt, "
        f"{sum(c.name == 'call.connect' for c in record.commands)} connect attempt(s), "
        f"{record.underruns} underrun tick(s)."
    )
    print(f"Wrote {wav_path} (stereo: caller left, agent right, {rate} Hz).")
    return 0


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="callbridge demo", description=__doc__)
    parser.add_argument("--wav", type=Path, default=Path("demo-call.wav"))
    parser.add_argument("--rate", type=int, choices=[8000, 16000, 24000], default=16000)
    parser.add_argument("--log-level", default="ERROR")
    parser.add_argument(
        "--agent",
        default=None,
        help="your ADK agent as module:attribute (an Agent or an App; the current directory "
        f"is importable), or a bundled example: {', '.join(sorted(DEMOS))}",
    )
    parser.add_argument(
        "--scenario",
        type=Path,
        default=None,
        help="a TOML file scripting the call for --agent: what the caller says, which of the "
        "agent's tools the emulated model calls with which arguments (see emulators/scenario.py)",
    )
    args = parser.parse_args(argv)
    if args.scenario is not None and args.agent is None:
        parser.error("--scenario needs --agent")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would: your agent's package is here
    configure_logging("console", level=getattr(logging, args.log_level))
    return loop.run(run_demo(args.wav, args.rate, args.agent, args.scenario))


async def booked() -> list[tuple[str, str, str]]:
    """Rows of the appointment example's calendar (read after the call)."""
    from callbridge.examples._data import run_db
    from callbridge.examples.appointment_booking import DB_FILE, SCHEMA

    def rows(db: sqlite3.Connection) -> list[tuple[str, str, str]]:
        return [tuple(r) for r in db.execute("SELECT day, time, name FROM bookings")]

    return await run_db(DB_FILE, SCHEMA, rows)
