"""Call-control tools for ADK agents: the bridge's own handlers behind ADK ``FunctionTool`` s.

``transfer_to_human``, ``end_call`` and ``set_agent_mode`` run the very same handlers as the raw
Gemini back end (:mod:`callbridge.bridge.tools`), with the same declarations: one implementation,
two front
doors. The connector serving the agent binds each tool to its agent's live calls
(:mod:`callbridge.adapters.adk.calls`) when it prepares the agent; a tool finds its phone call
there by the ``call_id`` callbridge puts into ``RunConfig.custom_metadata``. Outside a
callbridge call (or on an agent no connector prepared) it answers ``{"status": "unavailable"}``
instead of failing.

Add them to an agent in one line::

    Agent(name="desk", instruction="...", tools=[*call_control_tools(), lookup_order])

Blocking or not
    A transfer rings a human for up to ``tools.ring_time_s``. A BLOCKING tool is awaited inside
    ADK's receive loop, so while it runs no model audio, transcript or ``interrupted`` reaches the
    call. Where the model honours asynchronous calls (2.5, 3.8: see
    :mod:`callbridge.bridge.models`) the
    tools are therefore declared NON_BLOCKING: ADK runs them as background tasks, the agent keeps
    talking and a barge-in clears the line at once. (On 3.8 an undeclared tool is asynchronous at
    the server, but ADK still awaits it in its receive loop; declaring it explicitly is what moves
    it off that loop.) Each result's ``scheduling`` follows :mod:`callbridge.bridge.scheduling`,
    per tool and
    outcome, set as ADK sends it (:mod:`callbridge.adapters.adk.model`). 3.1 does not support
    asynchronous
    calls, so there they stay BLOCKING: the agent is silent while the phone rings (it should say
    "connecting you now" first, which the declaration asks it to), barge-in is not heard until
    the tool returns, and callbridge holds the caller's audio meanwhile (bounded) because the
    service rejects audio while a BLOCKING call is pending. ``call_control_tools()`` leaves the
    choice to the connector, which resolves it from the model table (and
    ``model.non_blocking_tools``); outside the connector an unresolved tool is declared
    BLOCKING, which every model family accepts.

Follow-up work
    A handler's ``ToolReply.then`` (hang up after the farewell has played, leave after a
    transfer) is handed to the call's model session, which runs it in its own TaskGroup, so the
    tool returns at once and ADK sends the result without waiting for the phone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Literal

import structlog
from google.adk.tools.function_tool import FunctionTool
from google.adk.tools.tool_context import ToolContext as AdkToolContext
from google.genai import types
from typing_extensions import override

from callbridge.adapters.adk.calls import CallRegistry, call_id_from
from callbridge.bridge.errors import CallGone
from callbridge.bridge.ports import FunctionSpec
from callbridge.bridge.tools import (
    END_CALL_SPEC,
    SET_MODE_SPEC,
    TRANSFER_SPEC,
    ToolHandler,
    call_control_timeout_s,
    end_call,
    invoke,
    set_agent_mode,
    transfer_to_human,
)

log = structlog.get_logger("callbridge.adk.tools")

ToolMode = Literal["auto", "non_blocking", "blocking"]
CALL_CONTROL_NAMES = ("transfer_to_human", "end_call", "set_agent_mode")

UNAVAILABLE = {
    "status": "unavailable",
    "error": "call control is not available: this conversation is not a live phone call",
}


async def run_call_control(
    calls: CallRegistry | None,
    name: str,
    handler: ToolHandler,
    args: Mapping[str, Any],
    adk_context: AdkToolContext,
) -> dict[str, Any]:
    """Run a bridge handler for the call this ADK invocation serves; never raises."""
    entry = calls.get(call_id_from(adk_context.custom_metadata)) if calls is not None else None
    if entry is None or entry.ctx is None:
        log.warning("adk_call_control_unavailable", tool=name)
        return dict(UNAVAILABLE)
    ctx = entry.ctx
    try:
        # The raw back end's rules (callbridge.bridge.tools.invoke): timeout, failure -> error
        # result.
        timeout_s = call_control_timeout_s(name, ctx.settings)
        reply = await invoke(handler, ctx, args, name=name, timeout_s=timeout_s)
    except CallGone:
        ctx.control.finish("caller_hangup")
        return {"status": "caller_gone"}
    if reply.then is not None and not entry.run_later(reply.then, f"{name}-then"):
        # No model session owns this call (only in tests that bind a context by hand).
        await reply.then()
    return dict(reply.response)


SPECS: dict[str, tuple[ToolHandler, FunctionSpec]] = {
    "transfer_to_human": (transfer_to_human, TRANSFER_SPEC),
    "end_call": (end_call, END_CALL_SPEC),
    "set_agent_mode": (set_agent_mode, SET_MODE_SPEC),
}
"""Each call-control tool's bridge handler and declaration."""


class CallControlTool(FunctionTool):
    """One call-control tool; ``mode`` says how it is declared (see the module docstring),
    ``calls`` where it finds its phone call (``None``: it answers "unavailable")."""

    def __init__(
        self, name: str, mode: ToolMode = "auto", calls: CallRegistry | None = None
    ) -> None:
        self.handler, self.spec = SPECS[name]
        self.calls = calls
        # The functions ADK calls: their signatures give FunctionTool the argument names it
        # passes through; the declaration the model sees is the bridge's FunctionSpec.
        functions: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
            "transfer_to_human": self._transfer_to_human,
            "end_call": self._end_call,
            "set_agent_mode": self._set_agent_mode,
        }
        super().__init__(functions[name])
        self.name = name
        self.description = self.spec.description
        self.mode: ToolMode = mode
        if mode == "non_blocking":
            self.behavior = types.Behavior.NON_BLOCKING
            self.response_scheduling = types.FunctionResponseScheduling.WHEN_IDLE
        elif mode == "blocking":
            self.behavior = types.Behavior.BLOCKING

    def for_call(self, async_ok: bool, calls: CallRegistry | None) -> CallControlTool:
        """A copy of this tool for a connector's agent: declared as the serving model supports
        (``auto`` resolved by ``async_ok``, whether that model honours NON_BLOCKING
        declarations: ``ModelSettings.tools_non_blocking``, from
        :mod:`callbridge.bridge.models`) and bound to that agent's live ``calls``."""
        mode: ToolMode = self.mode
        if mode == "auto":
            mode = "non_blocking" if async_ok else "blocking"
        return CallControlTool(self.name, mode, calls)

    async def _run(self, args: Mapping[str, Any], tool_context: AdkToolContext) -> dict[str, Any]:
        return await run_call_control(self.calls, self.name, self.handler, args, tool_context)

    async def _transfer_to_human(
        self, reason: str, summary: str = "", *, tool_context: AdkToolContext
    ) -> dict[str, Any]:
        return await self._run({"reason": reason, "summary": summary}, tool_context)

    async def _end_call(self, reason: str = "", *, tool_context: AdkToolContext) -> dict[str, Any]:
        return await self._run({"reason": reason}, tool_context)

    async def _set_agent_mode(self, mode: str, *, tool_context: AdkToolContext) -> dict[str, Any]:
        return await self._run({"mode": mode}, tool_context)

    @override
    def _get_declaration(self) -> types.FunctionDeclaration | None:
        return types.FunctionDeclaration(
            name=self.spec.name,
            description=self.spec.description,
            parameters_json_schema=dict(self.spec.parameters),
        )


def call_control_tools(
    non_blocking: bool | None = None, *, names: Iterable[str] = CALL_CONTROL_NAMES
) -> list[CallControlTool]:
    """The call-control tools, ready for ``Agent(tools=[*call_control_tools(), ...])``.

    ``non_blocking=None`` lets callbridge decide per model family when it runs the agent;
    ``True``/``False`` forces NON_BLOCKING (+ ``WHEN_IDLE``) or BLOCKING declarations.
    """
    mode: ToolMode = (
        "auto" if non_blocking is None else "non_blocking" if non_blocking else "blocking"
    )
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        raise ValueError(f"unknown call-control tools {unknown}; choose from {CALL_CONTROL_NAMES}")
    return [CallControlTool(name, mode) for name in names]
