"""Database lookup: an ADK phone agent answering order questions from a SQLite table.

The ``orders`` table is seeded with a few demo orders the first time it is used.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from google.adk.agents import Agent

from callbridge.adapters.adk.tools import call_control_tools
from callbridge.examples._data import run_db

DB_FILE = "orders.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    number TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    carrier TEXT,
    eta TEXT
);
INSERT OR IGNORE INTO orders VALUES
    ('A1001', 'shipped', 'express', 'Thursday before noon'),
    ('A1002', 'processing', NULL, 'next week'),
    ('A1003', 'delivered', 'standard', NULL);
"""


def _normalise(number: str) -> str:
    return "".join(ch for ch in number.upper() if ch.isalnum())


async def lookup_order(order_number: str) -> dict[str, Any]:
    """Look up an order's status, carrier and expected delivery.

    Args:
      order_number: The order number the caller reads out, e.g. A1001.
    """
    number = _normalise(order_number)

    def query(db: sqlite3.Connection) -> tuple[str, str | None, str | None] | None:
        row = db.execute(
            "SELECT status, carrier, eta FROM orders WHERE number = ?", (number,)
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    found = await run_db(DB_FILE, SCHEMA, query)
    if found is None:
        return {"status": "not_found", "order_number": number}
    status, carrier, eta = found
    return {"order_number": number, "status": status, "carrier": carrier, "eta": eta}


root_agent = Agent(
    name="order_desk",
    description="Answers order status questions by phone.",
    instruction=(
        "You answer the phone for an online shop. Ask for the order number, look it up with "
        "lookup_order and tell the caller the status and expected delivery in one or two "
        "sentences. If the caller needs more than you can tell, offer a colleague and use "
        "transfer_to_human. When the caller is done, say goodbye and call end_call."
    ),
    tools=[lookup_order, *call_control_tools(names=["transfer_to_human", "end_call"])],
)
