"""Human escalation: an ADK phone agent that hands the caller to a person.

All the work is in callbridge's call-control tools: ``transfer_to_human`` rings the human line
(the result says whether someone answered), ``set_agent_mode`` lets the agent whisper to the
human, join the conversation or only listen, and ``end_call`` hangs up after the farewell.
"""

from __future__ import annotations

from google.adk.agents import Agent

from callbridge.adapters.adk.tools import call_control_tools

root_agent = Agent(
    name="front_desk",
    description="Greets callers and connects them to a person when needed.",
    instruction=(
        "You answer the phone for a support team. Find out briefly what the caller needs. If "
        "they ask for a person, are upset, or need something you cannot do, say you are "
        "connecting them and call transfer_to_human with the reason and a one-sentence "
        "summary. If nobody answers, say so and offer to take a message or try again later. "
        "When the caller is done, say goodbye and call end_call."
    ),
    tools=[*call_control_tools()],
)
