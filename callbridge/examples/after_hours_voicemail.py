"""After-hours voicemail: an ADK phone agent that takes a message, stores it and hangs up.

Messages go into the ``messages`` table of a SQLite file. The module exposes an ``App`` (with
callbridge's plugin registered explicitly, as an existing App would) and its ``root_agent``.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

from google.adk.agents import Agent
from google.adk.apps.app import App
from google.adk.tools.tool_context import ToolContext

from callbridge.adapters.adk.plugin import CallbridgePlugin
from callbridge.adapters.adk.tools import call_control_tools
from callbridge.examples._data import run_db

DB_FILE = "voicemail.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    call_id TEXT,
    name TEXT NOT NULL,
    callback_number TEXT NOT NULL,
    message TEXT NOT NULL
);
"""


async def take_message(
    name: str, callback_number: str, message: str, tool_context: ToolContext
) -> dict[str, Any]:
    """Store the caller's message for the team to call back.

    Args:
      name: The caller's name.
      callback_number: The number to call back on.
      message: What the caller wants, in their words.
    """
    call_id = str(tool_context.custom_metadata.get("call_id") or "")
    received = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

    def insert(db: sqlite3.Connection) -> int:
        cursor = db.execute(
            "INSERT INTO messages (received_at, call_id, name, callback_number, message) "
            "VALUES (?, ?, ?, ?, ?)",
            (received, call_id, name, callback_number, message),
        )
        return int(cursor.lastrowid or 0)

    message_id = await run_db(DB_FILE, SCHEMA, insert)
    tool_context.state["voicemail_id"] = message_id
    return {"status": "stored", "message_id": message_id}


async def stored_messages() -> list[dict[str, Any]]:
    """Every stored message, oldest first (for the team, and for tests)."""

    def query(db: sqlite3.Connection) -> list[dict[str, Any]]:
        rows = db.execute(
            "SELECT id, received_at, call_id, name, callback_number, message "
            "FROM messages ORDER BY id"
        )
        keys = ("id", "received_at", "call_id", "name", "callback_number", "message")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    return await run_db(DB_FILE, SCHEMA, query)


root_agent = Agent(
    name="after_hours",
    description="Takes messages outside opening hours.",
    instruction=(
        "The office is closed. Tell the caller so in one sentence and offer to take a "
        "message. Ask for their name, a callback number and the message, read the number "
        "back, then store it with take_message. Thank them, say goodbye and call end_call."
    ),
    tools=[take_message, *call_control_tools(names=["end_call"])],
)

app = App(name="after_hours", root_agent=root_agent, plugins=[CallbridgePlugin()])
