"""A user tool (``tools.custom``) for the observability tests: a quick order lookup."""

from __future__ import annotations

import asyncio
from typing import Any


async def lookup(order: str) -> dict[str, Any]:
    """Look an order up."""
    await asyncio.sleep(0.2)
    return {"order": order, "status": "shipped"}
