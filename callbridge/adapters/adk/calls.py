"""The live calls of one ADK agent, which its call-control tools and plugin look up.

ADK builds tool and plugin calls itself, so the only per-call thing that reaches them from our
side is ``RunConfig.custom_metadata`` (copied onto every ``ToolContext``). We put the call id
there and keep, per call id, what a call-control tool needs: the bridge's
:class:`~callbridge.bridge.tools.ToolContext` (the phone call, its record and warner) and a way
to run follow-up work (``ToolReply.then``) in a task the call's model session owns, so a tool
can return at once and never hold up ADK.

There is no process-wide registry: a :class:`CallRegistry` belongs to the agent's
:class:`~callbridge.adapters.adk.plugin.CallbridgePlugin` (the one object an ``App`` carries to
every callback), and the :class:`~callbridge.adapters.adk.connector.AdkConnector` serving that
App hands the same registry to its sessions and binds its call-control tools to it when it
prepares the agent. A tool that was never prepared by a connector has no registry and answers
"unavailable".

Two parties fill an entry, in either order: the
:class:`~callbridge.adapters.adk.session.AdkSession` (the follow-up runner and thresholds) when
it opens, and the call runner (the ``ToolContext``) once the call is bridged, through the
model port's ``bind_call``. The session removes the entry when it closes, so nothing outlives
the call.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from callbridge.bridge.tools import ToolContext

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
    """Live calls by call id, for one ADK agent (see the module docstring)."""

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


def call_id_from(metadata: Mapping[str, Any] | None) -> str | None:
    """The call id callbridge put into ``RunConfig.custom_metadata`` (None outside a call)."""
    if not metadata:
        return None
    value = metadata.get(CALL_ID_KEY)
    return value if isinstance(value, str) and value else None
