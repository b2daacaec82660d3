"""The ADK agent the parametrised back-end suite puts on the phone (no model name: the tenant's)."""

from __future__ import annotations

import asyncio

from google.adk.agents import Agent

from callbridge.adapters.adk import call_control_tools


async def lookup_order(order_id: str) -> dict[str, str]:
    """Look up an order's delivery status."""
    return {"order_id": order_id, "status": "shipped", "eta": "Thursday"}


async def slow_lookup(order_id: str) -> dict[str, str]:
    """Look up an order in the slow warehouse system (takes about 3 seconds)."""
    await asyncio.sleep(SLOW_LOOKUP_S)
    return {"order_id": order_id, "status": "in the warehouse"}


SLOW_LOOKUP_S = 3.0

root_agent = Agent(
    name="phone_agent",
    instruction="You answer the phone for Acme.",
    tools=[lookup_order, slow_lookup, *call_control_tools()],
)
