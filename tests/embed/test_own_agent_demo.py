"""``callbridge demo --agent module:attr --scenario file``: a user's own ADK agent, written
outside the repository, on the emulators in one command, its own tool called by the emulated
model as the user's scenario file says.

Runs the installed ``callbridge`` entry point in a subprocess from the agent's directory, as a
user would; the tool writes what it received to a file, so the test sees the real call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from callbridge.emulators.scenario import ScenarioError, parse_scenario

CALLBRIDGE = Path(sys.executable).with_name("callbridge")

AGENT = '''
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from google.adk.agents import Agent

from callbridge.adapters.adk import call_control_tools


async def reserve_table(guests: int, area: Literal["inside", "terrace"]) -> dict[str, object]:
    """Reserve a table for the caller."""
    Path(os.environ["DINER_LOG"]).write_text(json.dumps({"guests": guests, "area": area}))
    return {"reserved": True, "table": 7, "guests": guests, "area": area}


root_agent = Agent(
    name="diner",
    model="gemini-2.5-flash-native-audio-preview-12-2025",
    instruction="You take table reservations by phone.",
    tools=[reserve_table, *call_control_tools(names=["end_call"])],
)
'''

SCENARIO = """
greeting = "Hello, Luigi's diner."

[[turn]]
caller = "A table for four on the terrace, please."
steps = [
  { tool = "reserve_table", args = { guests = 4, area = "terrace" } },
  { say = "Table seven is yours. Goodbye!" },
  { tool = "end_call", args = { reason = "reserved" } },
]
"""


def test_own_agent_and_scenario_run_with_one_command(tmp_path: Path) -> None:
    project = tmp_path / "my_project"
    (project / "diner").mkdir(parents=True)
    (project / "diner" / "__init__.py").write_text("")
    (project / "diner" / "agent.py").write_text(textwrap.dedent(AGENT))
    (project / "call.toml").write_text(SCENARIO)
    log = tmp_path / "tool-log.json"
    env = {**os.environ, "DINER_LOG": str(log)}
    env.pop("PYTHONPATH", None)  # the agent is found from the working directory only

    done = subprocess.run(
        [
            str(CALLBRIDGE),
            "demo",
            "--agent",
            "diner.agent:root_agent",
            "--scenario",
            "call.toml",
            "--wav",
            str(tmp_path / "call.wav"),
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    # The emulated model called the agent's own tool; ADK ran it with the scenario's arguments.
    assert json.loads(log.read_text()) == {"guests": 4, "area": "terrace"}
    out = done.stdout
    assert "Tools the agent declared to the model: end_call, reserve_table" in out
    assert "'reserved': True" in out and "'table': 7" in out
    assert 'CALLER "A table for four on the terrace, please."' in out
    assert "call ended (agent_hangup)" in out
    assert (tmp_path / "call.wav").stat().st_size > 44


def test_scenario_problems_name_their_place() -> None:
    bad = {
        "turn": [
            {"caller": "Hi", "steps": [{"tool": "x", "args": 3}, {"say": "a", "tool": "b"}]},
            {"steps": []},
        ],
        "colour": "red",
    }
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(bad)
    message = str(caught.value)
    assert "colour: unknown setting" in message
    assert "turn[0].steps[0]: args: must be a table" in message
    assert "turn[0].steps[1]: give exactly one of say, tool, pause" in message
    assert "turn[1].caller: what the caller says is required" in message


def test_a_scenario_without_turns_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="at least one"):
        parse_scenario({"greeting": "Hi"})
