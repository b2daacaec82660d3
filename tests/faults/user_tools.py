"""A user tool (``tools.custom``) slow enough for the model to cancel it mid-flight."""

from __future__ import annotations

import asyncio
from typing import Any


async def slow_order_lookup(order: str) -> dict[str, Any]:
    """Look an order up in a slow backend."""
    await asyncio.sleep(4.0)
    return {"order": order, "status": "shipped"}
