"""A small ADK phone agent: it takes a callback request and ends the call.

Callback requests are appended to ``callbacks.jsonl`` in the working directory (the image's
``/var/lib/callbridge``); a real agent would call your CRM here.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from google.adk.agents import Agent

from callbridge.adapters.adk import call_control_tools

CALLBACKS = Path("callbacks.jsonl")


async def request_callback(reason: str) -> dict[str, object]:
    """Ask a colleague to call the caller back.

    Args:
      reason: What the caller needs help with.
    """
    line = json.dumps({"reason": reason, "at": time.time()}) + "\n"
    await asyncio.to_thread(_append, line)  # file I/O off the event loop (the call's audio)
    return {"status": "requested", "when": "within one working day"}


def _append(line: str) -> None:
    with CALLBACKS.open("a", encoding="utf-8") as out:
        out.write(line)


root_agent = Agent(
    name="callback_desk",
    model="gemini-2.5-flash-native-audio-preview-12-2025",
    instruction=(
        "You answer the phone. If the caller needs a person, promise a callback with "
        "request_callback. When the caller is done, say goodbye and call end_call."
    ),
    tools=[request_callback, *call_control_tools(names=["end_call"])],
)
