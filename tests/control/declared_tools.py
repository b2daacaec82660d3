"""A user tool with rich parameter types, in a module that defers its annotations.

``from __future__ import annotations`` turns every annotation into a string: the declaration
must resolve them (the old hand-built one declared all of these as ``"string"``).
"""

from __future__ import annotations

from typing import Any, Literal

CALLS: list[dict[str, Any]] = []
"""Every call that reached the function, with the arguments it received."""


async def open_ticket(
    tags: list[str],
    priority: Literal["low", "high"],
    callback_in_min: int | None = None,
    urgent: bool = False,
) -> dict[str, Any]:
    """Open a support ticket for the caller."""
    CALLS.append(
        {"tags": tags, "priority": priority, "callback_in_min": callback_in_min, "urgent": urgent}
    )
    return {"ticket": f"T-{len(CALLS)}", "priority": priority}
