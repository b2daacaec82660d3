"""User tools named in tenant config (``tools.custom``) by the warning tests."""

from __future__ import annotations

import asyncio
from typing import Any


async def failing_lookup(order: str) -> dict[str, Any]:
    """Look an order up (this backend is down)."""
    raise LookupError(f"order {order} not found: the order backend is unreachable")


async def slow_lookup(order: str) -> dict[str, Any]:
    """Look an order up (slowly)."""
    await asyncio.sleep(1.2)
    return {"order": order, "status": "shipped"}


async def blocking_lookup(order: str) -> dict[str, Any]:
    """Look an order up while the caller keeps talking (slower than the held-audio bound)."""
    await asyncio.sleep(2.5)
    return {"order": order, "status": "shipped"}
