"""The event loop the bridge runs on: uvloop where available.

The bridge is socket-bound (two WebSocket legs per call, 50 small messages a second each
way); uvloop's libuv-based loop does that work at a fraction of the default loop's cost.
``CALLBRIDGE_EVENT_LOOP=asyncio`` falls back to the standard loop (for debugging).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop unless disabled or not installed; ``None`` means asyncio's default."""
    if os.environ.get("CALLBRIDGE_EVENT_LOOP", "uvloop") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the bridge's event loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
