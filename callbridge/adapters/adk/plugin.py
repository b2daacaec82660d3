"""``CallbridgePlugin``: what an ADK ``App`` tells callbridge about its tools and events.

ADK executes an agent's tools itself, so the bridge's own tool dispatcher never sees them. This
plugin puts those runs where the rest of the call's facts are: the call's ``CallRecord`` (tool
started / done / failed with timings and results), its warner (``TOOL_CALL_FAILED``,
``SLOW_TOOL_CALL``) and simple counters.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from google.adk.agents.invocation_context import InvocationContext
from google.adk.events.event import Event
from google.adk.plugins.base_plugin import BasePlugin
from google.adk.tools.base_tool import BaseTool
from google.adk.tools.tool_context import ToolContext as AdkToolContext
from typing_extensions import override

from callbridge.adapters.adk.calls import CallRegistry, LiveCall, call_id_from
from callbridge.bridge.tools import tool_failed, tool_slow

log = structlog.get_logger("callbridge.adk.plugin")

PLUGIN_NAME = "callbridge"


@dataclass(slots=True)
class _Running:
    name: str
    started: float
    slow_timer: asyncio.TimerHandle


class CallbridgePlugin(BasePlugin):
    """Observes an ADK agent on a phone call and reports to the call's record and warner.

    Register it on your ``App`` (``App(name=..., root_agent=..., plugins=[CallbridgePlugin()])``)
    to choose its options; if the App has none, callbridge's ADK connector adds one (first in the
    plugin list, so it sees every callback before another plugin can short-circuit it).

    What it does, for the call named by ``custom_metadata["call_id"]``:

    - ``before_tool`` / ``after_tool``: a ``tool`` entry ``started`` then ``done`` (elapsed time,
      result) in the call record, for every tool ADK runs, the call-control tools included;
    - a ``SLOW_TOOL_CALL`` warning when a tool is still running after the threshold
      (``warnings.slow_tool_call_s`` of the tenant unless ``slow_tool_after_s`` is given);
    - ``on_tool_error``: a ``failed`` entry and a ``TOOL_CALL_FAILED`` warning; with
      ``answer_tool_errors`` (the default) the model receives ``{"error": ...}`` as the tool's
      result, as with the raw Gemini back end. Without it ADK re-raises, which ends the live
      session (blocking tools) or drops the result (NON_BLOCKING tools). Turn it off if your agent
      handles tool errors with its own ``on_tool_error_callback`` (a plugin answer skips those);
    - ``on_event``: counters (events, audio chunks, turns, interruptions, finished transcripts,
      function calls) in :attr:`counters` and per call; with ``record_transcripts`` it also
      records finished transcripts. Leave that off under callbridge: the call loop already
      records transcripts from the session's events, and both would write each line twice.

    What it cannot do: change the live setup. ADK does not call ``before_model`` with the connect
    request, so a plugin can neither add tools nor change the voice, VAD or resumption settings
    (those come from the tenant's ``RunConfig``); it does not see ``goAway``, reconnects or
    ``toolCallCancellation`` (ADK handles or ignores them below the plugin layer); and it cannot
    make a BLOCKING tool non-blocking. Tools for the call go on the agent
    (:func:`callbridge.adapters.adk.tools.call_control_tools`); this plugin only watches and
    accounts.
    Every callback is guarded: a bug here is logged, never raised into ADK.

    The plugin owns the agent's live calls (:attr:`calls`, a
    :class:`~callbridge.adapters.adk.calls.CallRegistry`): the App carries it to every callback,
    and the connector serving the App gives the same registry to its sessions and call-control
    tools, so one App's plugin, tools and sessions see the same calls and no other App's.
    """

    def __init__(
        self,
        *,
        name: str = PLUGIN_NAME,
        answer_tool_errors: bool = True,
        record_transcripts: bool = False,
        slow_tool_after_s: float | None = None,
        calls: CallRegistry | None = None,
    ) -> None:
        super().__init__(name=name)
        self.answer_tool_errors = answer_tool_errors
        self.record_transcripts = record_transcripts
        self.slow_tool_after_s = slow_tool_after_s
        self.counters: Counter[str] = Counter()
        self.calls = calls if calls is not None else CallRegistry()
        """The live calls of the App this plugin is on (see the class docstring)."""
        self._running: dict[tuple[str, str], _Running] = {}

    # ── helpers ────────────────────────────────────────────────────────────────────────

    def _count(self, entry: LiveCall | None, key: str, n: int = 1) -> None:
        self.counters[key] += n
        if entry is not None:
            entry.counters[key] += n

    def _entry(self, metadata: Mapping[str, Any] | None) -> tuple[str | None, LiveCall | None]:
        call_id = call_id_from(metadata)
        return call_id, self.calls.get(call_id)

    def _slow(self, entry: LiveCall | None, name: str, threshold: float) -> None:
        self._count(entry, "slow_tools")
        if entry is not None and entry.ctx is not None:
            tool_slow(entry.ctx.warner, name, threshold)

    def _stop(self, call_id: str | None, function_call_id: str) -> _Running | None:
        running = self._running.pop((call_id or "", function_call_id), None)
        if running is not None:
            running.slow_timer.cancel()
        return running

    # ── tools ──────────────────────────────────────────────────────────────────────────

    @override
    async def before_tool_callback(
        self, *, tool: BaseTool, tool_args: dict[str, Any], tool_context: AdkToolContext
    ) -> dict[str, Any] | None:
        try:
            call_id, entry = self._entry(tool_context.custom_metadata)
            fc_id = tool_context.function_call_id or ""
            self._count(entry, "tool_calls")
            threshold = self.slow_tool_after_s or (
                entry.slow_tool_after_s if entry is not None else 5.0
            )
            timer = asyncio.get_running_loop().call_later(
                threshold, self._slow, entry, tool.name, threshold
            )
            self._stop(call_id, fc_id)
            self._running[(call_id or "", fc_id)] = _Running(tool.name, time.monotonic(), timer)
            if entry is not None and entry.ctx is not None:
                entry.ctx.record.tool(tool.name, fc_id, "started", args=dict(tool_args), via="adk")
        except Exception:
            log.exception("plugin_before_tool_failed", tool=tool.name)
        return None

    @override
    async def after_tool_callback(
        self,
        *,
        tool: BaseTool,
        tool_args: dict[str, Any],
        tool_context: AdkToolContext,
        result: dict[str, Any],
    ) -> dict[str, Any] | None:
        try:
            call_id, entry = self._entry(tool_context.custom_metadata)
            fc_id = tool_context.function_call_id or ""
            running = self._stop(call_id, fc_id)
            # None: already closed as failed (ADK runs after_tool on an answered error too).
            if running is not None and entry is not None and entry.ctx is not None:
                elapsed = time.monotonic() - running.started
                response = dict(result) if isinstance(result, Mapping) else {"result": result}
                entry.ctx.record.tool(
                    tool.name, fc_id, "done", elapsed_s=round(elapsed, 3), response=response
                )
        except Exception:
            log.exception("plugin_after_tool_failed", tool=tool.name)
        return None

    @override
    async def on_tool_error_callback(
        self,
        *,
        tool: BaseTool,
        tool_args: dict[str, Any],
        tool_context: AdkToolContext,
        error: Exception,
    ) -> dict[str, Any] | None:
        call_id, entry = self._entry(tool_context.custom_metadata)
        fc_id = tool_context.function_call_id or ""
        try:
            running = self._stop(call_id, fc_id)
            elapsed = round(time.monotonic() - running.started, 3) if running else 0.0
            ctx = entry.ctx if entry is not None else None
            # ADK also reports a cancelled call here (CancelledError is no Exception).
            if isinstance(error, asyncio.CancelledError):
                self._count(entry, "tools_cancelled")
                if ctx is not None:
                    ctx.record.tool(tool.name, fc_id, "cancelled", elapsed_s=elapsed)
                return None
            self._count(entry, "tool_errors")
            description = f"{type(error).__name__}: {error}"
            if ctx is None:
                log.warning("adk_tool_failed", tool=tool.name, error=description, call_id=call_id)
            else:
                ctx.record.tool(tool.name, fc_id, "failed", elapsed_s=elapsed, error=description)
                tool_failed(ctx.warner, tool.name, description, call_id=call_id, via="adk")
        except Exception:
            log.exception("plugin_tool_error_failed", tool=tool.name)
        if self.answer_tool_errors:
            return {"error": f"the tool failed: {type(error).__name__}: {error}"}
        return None

    # ── events ─────────────────────────────────────────────────────────────────────────

    @override
    async def on_event_callback(
        self, *, invocation_context: InvocationContext, event: Event
    ) -> Event | None:
        try:
            run_config = invocation_context.run_config
            _, entry = self._entry(run_config.custom_metadata if run_config else None)
            self._observe(entry, event)
        except Exception:
            log.exception("plugin_on_event_failed")
        return None

    def _observe(self, entry: LiveCall | None, event: Event) -> None:
        self._count(entry, "events")
        parts = event.content.parts if event.content is not None else None
        for part in parts or ():
            if part.inline_data is not None:
                self._count(entry, "audio_chunks")
            if part.function_call is not None:
                self._count(entry, "function_calls")
        if event.interrupted:
            self._count(entry, "interruptions")
        if event.turn_complete:
            self._count(entry, "turns")
        for speaker, transcription in (
            ("caller", event.input_transcription),
            ("agent", event.output_transcription),
        ):
            if transcription is None or not transcription.finished or not transcription.text:
                continue
            self._count(entry, f"{speaker}_transcripts")
            if self.record_transcripts and entry is not None and entry.ctx is not None:
                entry.ctx.record.transcript(speaker, transcription.text.strip())

    @override
    async def after_run_callback(self, *, invocation_context: InvocationContext) -> None:
        """The run is over: no slow-tool warning may fire for it any more."""
        try:
            run_config = invocation_context.run_config
            call_id = call_id_from(run_config.custom_metadata if run_config else None) or ""
            for key in [k for k in self._running if k[0] == call_id]:
                self._stop(key[0], key[1])
        except Exception:
            log.exception("plugin_after_run_failed")
