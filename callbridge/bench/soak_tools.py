"""A cheap user tool for the soak and the benchmark (a tool call now and then)."""

from __future__ import annotations

import asyncio


async def lookup_order(order_id: str) -> dict[str, str]:
    """Look up an order's delivery status."""
    await asyncio.sleep(0.05)
    return {"order_id": order_id, "status": "shipped", "eta": "Thursday"}
