"""The per-process registry of live calls that ADK tools and the plugin look up.

ADK builds tool and plugin calls itself, so the only thing that reaches them from our side is
``RunConfig.custom_metadata`` (copied onto every ``ToolContext``). We put the call id there and
keep, per call id, what a call-control tool needs: the bridge's
:class:`~callbridge.bridge.tools.ToolContext`
(the phone call, its record and warner) and a way to run follow-up work (``ToolReply.then``)
in a task the call's model session owns, so a tool can return at once and never hold up ADK.

Two parties fill an entry, in either order: the
:class:`~callbridge.adapters.adk.session.AdkSession` (the
follow-up runner and thresholds) when it opens, and the call runner (the ``ToolContext``) once
the call is bridged, through :func:`register_call` or ``AdkSession.bind_call``. The session
removes the entry when it closes, so nothing outlives the call.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from callbridge.bridge.tools import ToolContext

log = structlog.get_logger("callbridge.adk")

FollowUp = Callable[[], Awaitable[None]]
Spawner = Callable[[FollowUp, str], None]

CALL_ID_KEY = "call_id"
TENANT_KEY = "tenant"
DEFAULT_SLOW_TOOL_S = 5.0


@dataclass
class LiveCall:
    """What the ADK side knows about one live call."""

    call_id: str
    ctx: ToolContext | None = None
    spawn: Spawner | None = None
    slow_tool_after_s: float = DEFAULT_SLOW_TOOL_S
    counters: Counter[str] = field(default_factory=Counter)

    def run_later(self, work: FollowUp, name: str) -> bool:
        """Hand ``work`` to the session's TaskGroup; False when no session serves this call."""
        if self.spawn is None:
            return False
        self.spawn(work, name)
        return True


class CallRegistry:
    """Live calls by call id; one instance per process (:data:`REGISTRY`)."""

    def __init__(self) -> None:
        self._calls: dict[str, LiveCall] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def get(self, call_id: str | None) -> LiveCall | None:
        return self._calls.get(call_id) if call_id else None

    def _entry(self, call_id: str) -> LiveCall:
        entry = self._calls.get(call_id)
        if entry is None:
            entry = self._calls[call_id] = LiveCall(call_id)
        return entry

    def open(self, call_id: str, *, spawn: Spawner, slow_tool_after_s: float) -> LiveCall:
        """The session side: where follow-ups run, and the slow-tool threshold."""
        entry = self._entry(call_id)
        entry.spawn = spawn
        entry.slow_tool_after_s = slow_tool_after_s
        return entry

    def bind(self, call_id: str, ctx: ToolContext) -> LiveCall:
        """The bridge side: the call the tools act on."""
        entry = self._entry(call_id)
        entry.ctx = ctx
        return entry

    def unbind(self, call_id: str) -> None:
        entry = self._calls.get(call_id)
        if entry is not None:
            entry.ctx = None

    def close(self, call_id: str) -> None:
        """Forget the call entirely (the session is gone)."""
        self._calls.pop(call_id, None)


REGISTRY = CallRegistry()
"""The process-wide registry the tools and the plugin read."""


def register_call(call_id: str, ctx: ToolContext) -> None:
    """Make ``ctx`` the call that ADK tools with this ``call_id`` act on."""
    REGISTRY.bind(call_id, ctx)
    log.debug("adk_call_registered", call_id=call_id)


def unregister_call(call_id: str) -> None:
    """The call is over: tools for it now answer that call control is unavailable."""
    REGISTRY.unbind(call_id)


def call_id_from(metadata: Mapping[str, Any] | None) -> str | None:
    """The call id callbridge put into ``RunConfig.custom_metadata`` (None outside a call)."""
    if not metadata:
        return None
    value = metadata.get(CALL_ID_KEY)
    return value if isinstance(value, str) and value else None
