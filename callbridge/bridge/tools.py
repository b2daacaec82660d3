"""Tool dispatch beside the audio pumps, and the call-control tool catalogue.

Tool calls never run inline in the model pump: :class:`ToolDispatcher` runs each one as a
task in its own TaskGroup with a timeout, so a tool that takes seconds (a human's phone
ringing) causes no gap in caller audio and no delay in barge-in. A tool that raises, times
out or returns something that is not JSON gives the model an error result (and a
``TOOL_CALL_FAILED`` warning); the call goes on.

``toolCallCancellation`` cancels a running tool, so its side effect never lands and no result
is sent. The exception is a tool whose effect cannot be called back: a ringing ``connect()``
has no cancel command, and the human may still pick up. Such a tool (``cancellable=False``)
is *withdrawn* instead: it runs to the end so the bridge's view of the call (a human on the
line, the after-transfer mode) matches the platform's, but its result is not sent.

The call-control tools (``transfer_to_human``, ``end_call``, ``set_agent_mode``) turn the
model's requests into call commands; the same functions serve the raw Gemini back end and
the ADK tools (``callbridge.adapters.adk.tools``): one implementation, two front doors.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import pkgutil
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import structlog

from callbridge.bridge.config import ToolsSettings
from callbridge.bridge.errors import CallGone, CommandFailed, ConfigError
from callbridge.bridge.events import ToolCall, ToolResult
from callbridge.bridge.ports import CallCommand, CallPort, CommandOutcome, FunctionSpec
from callbridge.bridge.record import CallRecord
from callbridge.bridge.scheduling import result_scheduling
from callbridge.bridge.tool_declarations import declare_function
from callbridge.bridge.warnings import CallWarner, WarningCode

log = structlog.get_logger("callbridge.tools")

HangUp = Literal["none", "disconnect", "close"]
AgentMode = Literal["whisper", "barge", "spy"]


class CallControl(Protocol):
    """What tools may ask of the running call (implemented by
    ``callbridge.bridge.call.BridgedCall``)."""

    async def wait_until_played(self, timeout_s: float) -> bool:
        """Wait until the agent's current turn is over and all its audio was pulled."""
        ...

    def set_agent_audio(self, enabled: bool) -> None:
        """Mute (spy) or unmute the agent's voice on the line."""
        ...

    def finish(self, outcome: str, hang_up: HangUp = "none") -> None:
        """End the bridged call with this outcome, hanging up as asked."""
        ...


@dataclass
class HumanLeg:
    """What we know about the human side of the call (for state checks)."""

    connected: bool = False
    mode: AgentMode | None = None


@dataclass(frozen=True)
class ToolContext:
    call: CallPort
    control: CallControl
    record: CallRecord
    warner: CallWarner
    settings: ToolsSettings
    human: HumanLeg = field(default_factory=HumanLeg)


@dataclass(frozen=True)
class ToolReply:
    """A tool's answer, plus optional work to do once the model has it."""

    response: Mapping[str, Any]
    then: Callable[[], Awaitable[None]] | None = None


ToolHandler = Callable[[ToolContext, Mapping[str, Any]], Awaitable[Mapping[str, Any] | ToolReply]]


@dataclass(frozen=True)
class Tool:
    spec: FunctionSpec
    handler: ToolHandler
    timeout_s: float
    cancellable: bool = True
    """False when the tool's effect cannot be called back (see the module docstring)."""


# ── Call-control tools ──────────────────────────────────────────────────────────────────────


class CommandSite(Protocol):
    """Where a call command is run from: a tool's context, or the call itself at its end."""

    @property
    def call(self) -> CallPort: ...

    @property
    def record(self) -> CallRecord: ...

    @property
    def warner(self) -> CallWarner: ...


async def run_command(
    ctx: CommandSite, command: CallCommand, *, ring_time_s: int | None = None
) -> CommandOutcome:
    """Run a call command, record it, and warn when it failed (raises ``CallGone``)."""
    outcome = await ctx.call.command(command, ring_time_s=ring_time_s)
    ctx.record.command(
        command.value,
        outcome.ok,
        outcome.error_code,
        message=outcome.message,
        elapsed_s=round(outcome.elapsed_s, 3),
    )
    log.info(
        "call_command",
        command=command.value,
        ok=outcome.ok,
        error_code=outcome.error_code,
        elapsed_s=round(outcome.elapsed_s, 3),
    )
    if not outcome.ok:
        ctx.warner.warn(
            WarningCode.CALL_COMMAND_FAILED,
            f"{command.value} failed with {outcome.error_code}: {outcome.message}",
            command=command.value,
            error_code=outcome.error_code,
        )
    return outcome


NOBODY_ANSWERED = {"CALL_UNANSWERED", "TIMEOUT"}

PLATFORM_PLAYOUT_LEAD_S = 0.25
"""How far the platform may pull agent audio ahead of playing it. The last pull of a farewell
is this long from being heard, so ``end_call`` waits this much more before it hangs up (the
emulator keeps 100 ms; the real platform's lead is not documented)."""


async def transfer_to_human(ctx: ToolContext, args: Mapping[str, Any]) -> ToolReply:
    """Ring the human line; on success leave, whisper or spy as configured."""
    reason = str(args.get("reason", ""))
    summary = str(args.get("summary", ""))
    ctx.record.note("transfer_requested", reason=reason, summary=summary)
    if ctx.human.connected:
        return ToolReply({"status": "already_connected", "mode": ctx.human.mode})
    outcome = await run_command(ctx, CallCommand.CONNECT, ring_time_s=ctx.settings.ring_time_s)
    if not outcome.ok:
        if outcome.error_code in NOBODY_ANSWERED:
            return ToolReply(
                {
                    "status": "unanswered",
                    "error_code": outcome.error_code,
                    "instruction": "Nobody answered. Tell the caller, then offer to try again, "
                    "take a message, or end the call.",
                }
            )
        return ToolReply(
            {"status": "failed", "error_code": outcome.error_code, "message": outcome.message}
        )
    ctx.human.connected = True
    after = ctx.settings.after_transfer
    if after == "leave":

        async def leave() -> None:
            outcome = await run_command(ctx, CallCommand.CLOSE)
            # A failed close is retried once at call end: never stay on the line silently.
            ctx.control.finish("transferred", hang_up="none" if outcome.ok else "close")

        return ToolReply({"status": "connected", "agent": "leaving"}, then=leave)
    mode_reply = await set_mode(ctx, after)
    # "status" stays "connected" whatever the mode command did: the human *is* on the line.
    response: dict[str, Any] = {"status": "connected", "mode": ctx.human.mode}
    if mode_reply["status"] != "ok":
        response["mode_error"] = mode_reply.get("error_code") or mode_reply.get("reason")
    response["instruction"] = _MODE_INSTRUCTIONS.get(ctx.human.mode or "", _NO_MODE_INSTRUCTION)
    if ctx.human.mode == "whisper" and summary:
        response["instruction"] += " Brief them with this summary: " + summary
    return ToolReply(response)


_MODE_INSTRUCTIONS: Mapping[str, str] = {
    "whisper": "A human agent is on the call. Only the human agent hears you now.",
    "barge": "A human agent is on the call. Both the caller and the human hear you.",
    "spy": "A human agent is on the call. You are listening silently: nobody hears you.",
}
_NO_MODE_INSTRUCTION = (
    "A human agent is on the call, but switching your mode failed; stay quiet and let the "
    "human talk."
)


async def end_call(ctx: ToolContext, args: Mapping[str, Any]) -> ToolReply:
    """Hang up once the farewell has fully played (bounded wait).

    With only the caller on the line this is ``disconnect()``. Once a human has been
    connected the agent *leaves* with ``close()`` instead: ``disconnect()`` would hang up on
    the caller and the human alike (see the SDK's close-vs-disconnect contract).
    """
    reason = str(args.get("reason", ""))
    ctx.record.note("end_call_requested", reason=reason)
    if ctx.human.connected:

        async def leave() -> None:
            await ctx.control.wait_until_played(ctx.settings.farewell_drain_timeout_s)
            outcome = await run_command(ctx, CallCommand.CLOSE)
            # A failed close is retried once at call end: never stay on the line silently.
            ctx.control.finish("transferred", hang_up="none" if outcome.ok else "close")

        return ToolReply({"status": "leaving_call", "human": "stays with the caller"}, then=leave)

    async def hang_up() -> None:
        played = await ctx.control.wait_until_played(ctx.settings.farewell_drain_timeout_s)
        if played:
            # "Played" means pulled by the platform, which pulls ahead of what it plays.
            await asyncio.sleep(PLATFORM_PLAYOUT_LEAD_S)
        else:
            ctx.record.note("farewell_drain_timeout")
        outcome = await run_command(ctx, CallCommand.DISCONNECT)
        if outcome.ok:
            ctx.control.finish("agent_hangup", hang_up="none")
        else:
            ctx.control.finish("agent_hangup", hang_up="close")

    return ToolReply({"status": "ending_call"}, then=hang_up)


_MODE_COMMANDS: Mapping[str, CallCommand] = {
    "whisper": CallCommand.WHISPER,
    "barge": CallCommand.BARGE,
    "spy": CallCommand.SPY,
}


async def set_mode(ctx: ToolContext, mode: str) -> dict[str, Any]:
    if mode not in _MODE_COMMANDS:
        return {"status": "refused", "reason": f"unknown mode {mode!r}; use whisper, barge or spy"}
    if not ctx.human.connected:
        return {
            "status": "refused",
            "reason": "no human is on the call yet; transfer_to_human must succeed first",
        }
    if mode == "spy":
        # Mute first and empty the line: agent audio already queued for the caller must not
        # be heard once the platform has switched to spy (nobody may hear the agent then).
        ctx.control.set_agent_audio(False)
        await _clear_line(ctx)
    outcome = await run_command(ctx, _MODE_COMMANDS[mode])
    if not outcome.ok:
        ctx.control.set_agent_audio(ctx.human.mode != "spy")  # back to the mode we are in
        return {"status": "failed", "error_code": outcome.error_code}
    ctx.human.mode = mode  # type: ignore[assignment]
    ctx.control.set_agent_audio(mode != "spy")
    return {"status": "ok", "mode": mode}


async def _clear_line(ctx: ToolContext) -> None:
    """Drop agent audio not yet played (a failure is a warning: the mode switch goes on)."""
    try:
        cleared = await ctx.call.clear_audio()
    except CommandFailed as exc:
        ctx.record.command("agent.interrupt", False, exc.error_code)
        ctx.warner.warn(
            WarningCode.CALL_COMMAND_FAILED,
            f"agent.interrupt before spy failed with {exc.error_code}; up to the server's "
            "prefetch of agent audio may still be heard",
            command="agent.interrupt",
            error_code=exc.error_code,
        )
    else:
        ctx.record.note("line_cleared", cleared_bytes=cleared, reason="spy")


async def set_agent_mode(ctx: ToolContext, args: Mapping[str, Any]) -> dict[str, Any]:
    return await set_mode(ctx, str(args.get("mode", "")))


TRANSFER_SPEC = FunctionSpec(
    name="transfer_to_human",
    description="Connect the caller to a human colleague. Say you are connecting them first.",
    parameters={
        "type": "object",
        "properties": {
            "reason": {"type": "string", "description": "Why the caller needs a human."},
            "summary": {"type": "string", "description": "Short summary for the human."},
        },
        "required": ["reason"],
    },
)
END_CALL_SPEC = FunctionSpec(
    name="end_call",
    description="Hang up after saying goodbye. The farewell finishes playing first.",
    parameters={
        "type": "object",
        "properties": {"reason": {"type": "string"}},
    },
)
SET_MODE_SPEC = FunctionSpec(
    name="set_agent_mode",
    description="After a transfer: whisper (only the human hears you), barge (both hear you) "
    "or spy (listen silently).",
    parameters={
        "type": "object",
        "properties": {"mode": {"type": "string", "enum": ["whisper", "barge", "spy"]}},
        "required": ["mode"],
    },
)

_CALL_CONTROL: Mapping[str, tuple[FunctionSpec, ToolHandler]] = {
    "transfer_to_human": (TRANSFER_SPEC, transfer_to_human),
    "end_call": (END_CALL_SPEC, end_call),
    "set_agent_mode": (SET_MODE_SPEC, set_agent_mode),
}


def _user_tool(name: str, target: str, timeout_s: float, non_blocking: bool) -> Tool:
    """Wrap ``module:function`` (a plain async function taking keyword args) as a tool.

    The declaration and the argument check come from the signature
    (``callbridge.bridge.tool_declarations``): arguments that do not fit never reach the function.
    """
    try:
        fn = pkgutil.resolve_name(target)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"tools.custom.{name}: cannot load {target!r}: {exc}") from None
    if not inspect.iscoroutinefunction(fn):
        raise ConfigError(f"tools.custom.{name}: {target!r} must be an async function")
    declared = declare_function(name, fn)
    spec = FunctionSpec(
        name=name,
        description=declared.description,
        parameters=declared.parameters,
        non_blocking=non_blocking,
    )

    async def handler(_ctx: ToolContext, args: Mapping[str, Any]) -> Mapping[str, Any]:
        result = await fn(**declared.validate(args))
        return result if isinstance(result, Mapping) else {"result": result}

    return Tool(spec, handler, timeout_s)


def build_tools(
    settings: ToolsSettings,
    *,
    non_blocking: bool,
    extra: Iterable[Tool] = (),
) -> dict[str, Tool]:
    """The tenant's tool set: enabled call-control tools, user tools from config, extras."""
    tools: dict[str, Tool] = {}
    for name, (spec, handler) in _CALL_CONTROL.items():
        if getattr(settings, name):
            declared = FunctionSpec(spec.name, spec.description, spec.parameters, non_blocking)
            timeout = call_control_timeout_s(name, settings)
            # A ringing connect cannot be cancelled at the platform: withdraw, never cancel.
            cancellable = name != "transfer_to_human"
            tools[name] = Tool(declared, handler, timeout, cancellable=cancellable)
    for name, target in settings.custom.items():
        timeout = settings.custom_timeouts_s.get(name, settings.default_timeout_s)
        tools[name] = _user_tool(name, target, timeout, non_blocking)
    for tool in extra:
        tools[tool.spec.name] = tool
    return tools


# ── Execution policy: the same for every back end ──────────────────────────────────────
#
# ``ToolDispatcher`` (raw Gemini) and the ADK front door (``callbridge.adapters.adk.tools`` for the
# call-control tools, ``callbridge.adapters.adk.plugin`` for every tool ADK runs) apply these, so a
# tool
# times out, fails, is slow and is answered the same way whichever back end runs it.

CALL_CONTROL_TIMEOUT_S = 60.0
"""How long a call-control tool may run, except a transfer (which rings first)."""


def call_control_timeout_s(name: str, settings: ToolsSettings) -> float:
    """A transfer may ring for ``ring_time_s``, plus time to connect; others get a minute."""
    return settings.ring_time_s + 30.0 if name == "transfer_to_human" else CALL_CONTROL_TIMEOUT_S


def tool_failed(warner: CallWarner, name: str, error: str, **log_data: Any) -> dict[str, Any]:
    """A failed tool: warn (``TOOL_CALL_FAILED``), log, and give the model an error result."""
    warner.warn(WarningCode.TOOL_CALL_FAILED, f"tool {name} failed: {error}", tool=name)
    log.warning("tool_failed", tool=name, error=error, **log_data)
    return {"error": error}


def tool_slow(warner: CallWarner, name: str, after_s: float) -> None:
    """A tool is still running ``after_s`` after it started (``SLOW_TOOL_CALL``)."""
    warner.warn(
        WarningCode.SLOW_TOOL_CALL, f"tool {name} still running after {after_s:.1f} s", tool=name
    )


def warn_slow(warner: CallWarner, name: str, after_s: float) -> asyncio.TimerHandle:
    """Arm :func:`tool_slow` for a tool starting now; cancel the handle when it ends."""
    return asyncio.get_running_loop().call_later(after_s, tool_slow, warner, name, after_s)


async def invoke(
    handler: ToolHandler, ctx: ToolContext, args: Mapping[str, Any], *, name: str, timeout_s: float
) -> ToolReply:
    """Run one tool handler under the shared rules; it never fails the call.

    A handler that raises, times out or answers something that is not JSON gives the model an
    error result (and a ``TOOL_CALL_FAILED`` warning). ``CallGone`` (the caller left) and
    cancellation propagate: what to do then is the caller's decision.
    """
    try:
        async with asyncio.timeout(timeout_s):
            raw = await handler(ctx, args)
    except CallGone:
        raise
    except TimeoutError:
        error = f"timed out after {timeout_s:.0f} s"
        return ToolReply(tool_failed(ctx.warner, name, error, call_id=ctx.record.call_id))
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        return ToolReply(tool_failed(ctx.warner, name, error, call_id=ctx.record.call_id))
    reply = raw if isinstance(raw, ToolReply) else ToolReply(raw)
    try:
        json.dumps(reply.response, allow_nan=False)
    except (TypeError, ValueError) as exc:
        # Sending it would fail inside the model client and take the whole call down.
        error = f"returned a result that is not JSON ({exc})"
        return ToolReply(tool_failed(ctx.warner, name, error, call_id=ctx.record.call_id))
    return reply


# ── Dispatch ────────────────────────────────────────────────────────────────────────────────


class ToolDispatcher:
    """Runs tool calls as tasks beside the audio pumps.

    ``submit`` and ``cancel`` are synchronous so the model pump never waits on a tool.
    Pending calls are bounded; a call beyond the bound is answered with an error at once.
    """

    def __init__(
        self,
        tools: Mapping[str, Tool],
        ctx: ToolContext,
        send_result: Callable[[ToolResult], Awaitable[None]],
        *,
        slow_after_s: float,
        max_pending: int = 16,
    ) -> None:
        self._tools = tools
        self._ctx = ctx
        self._send_result = send_result
        self._slow_after_s = slow_after_s
        self._max_pending = max_pending
        self._group: asyncio.TaskGroup | None = None
        self._early: list[ToolCall] = []
        self._running: dict[str, asyncio.Task[None]] = {}
        self._cancelled: set[str] = set()
        self._blocking: set[str] = set()
        self._overloaded: set[str] = set()
        self._uncancellable: set[str] = set()
        self._withdrawn: set[str] = set()

    @property
    def blocking_pending(self) -> bool:
        """True while a BLOCKING tool call waits for its result (caller audio must be held)."""
        return bool(self._blocking)

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def context(self) -> ToolContext:
        """The call's tool context, for operator actions that use the same call-control
        functions as the model's tools (transfer, mode)."""
        return self._ctx

    def submit(self, call: ToolCall) -> None:
        """Start the tool now, beside the pumps; never waits."""
        if self._group is None:
            self._early.append(call)
            return
        if len(self._running) >= self._max_pending:
            self._ctx.warner.warn(
                WarningCode.TOOL_CALL_FAILED,
                f"tool {call.name} refused: {self._max_pending} tool calls already running",
                tool=call.name,
            )
            self._overloaded.add(call.call_id)
        tool = self._tools.get(call.name)
        if tool is not None and not tool.spec.non_blocking:
            self._blocking.add(call.call_id)
        if tool is not None and not tool.cancellable:
            self._uncancellable.add(call.call_id)
        self._running[call.call_id] = self._group.create_task(self._execute(call))

    def cancel(self, call_ids: Iterable[str]) -> None:
        for call_id in call_ids:
            task = self._running.get(call_id)
            if task is None:
                continue
            if call_id in self._uncancellable:
                # The model no longer waits for it (so caller audio is not held for it either),
                # but its effect on the call may still happen: let it finish.
                self._withdrawn.add(call_id)
                self._blocking.discard(call_id)
                self._ctx.record.note("tool_withdrawn_by_model", call_id=call_id)
                continue
            self._cancelled.add(call_id)
            task.cancel()

    async def run(self) -> None:
        """Own every tool task; runs until cancelled with the call."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            for call in self._early:
                self.submit(call)
            self._early.clear()
            await asyncio.Event().wait()

    async def _execute(self, call: ToolCall) -> None:
        tool = self._tools.get(call.name)
        started = time.monotonic()
        self._ctx.record.tool(call.name, call.call_id, "started", args=dict(call.args))
        slow_timer = warn_slow(self._ctx.warner, call.name, self._slow_after_s)
        reply: ToolReply
        try:
            if call.call_id in self._overloaded:
                reply = ToolReply({"error": "too many tool calls running; try again shortly"})
            elif tool is None:
                reply = ToolReply({"error": f"unknown tool {call.name!r}"})
                self._ctx.warner.warn(
                    WarningCode.TOOL_CALL_FAILED,
                    f"model called unknown tool {call.name}",
                    tool=call.name,
                )
            else:
                reply = await invoke(
                    tool.handler, self._ctx, call.args, name=call.name, timeout_s=tool.timeout_s
                )
        except asyncio.CancelledError:
            if call.call_id in self._cancelled:
                self._ctx.record.tool(call.name, call.call_id, "cancelled_by_model")
                self._finish(call)
                return
            raise
        except CallGone:
            self._finish(call)
            self._ctx.control.finish("caller_hangup")
            return
        finally:
            slow_timer.cancel()
        elapsed = time.monotonic() - started
        withdrawn = call.call_id in self._withdrawn
        self._ctx.record.tool(
            call.name,
            call.call_id,
            "done",
            elapsed_s=round(elapsed, 3),
            response=reply.response,
            **({"withdrawn": True} if withdrawn else {}),
        )
        self._finish(call)
        if not withdrawn:
            non_blocking = tool.spec.non_blocking if tool else True
            await self._send_result(
                ToolResult(
                    call.call_id,
                    call.name,
                    reply.response,
                    scheduling=result_scheduling(call.name, reply.response)
                    if non_blocking
                    else None,
                )
            )
        if reply.then is not None:
            try:
                await reply.then()
            except CallGone:
                self._ctx.control.finish("caller_hangup")

    def _finish(self, call: ToolCall) -> None:
        self._running.pop(call.call_id, None)
        self._cancelled.discard(call.call_id)
        self._blocking.discard(call.call_id)
        self._overloaded.discard(call.call_id)
        self._uncancellable.discard(call.call_id)
        self._withdrawn.discard(call.call_id)
