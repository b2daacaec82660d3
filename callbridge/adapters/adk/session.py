"""``AdkSession``: one call's conversation with an ADK agent, as a bridge ``ModelSession``.

Opening it creates (or, after a restart, finds) the ADK session for the call (session id = call
id, user id = caller) *before* ``Runner.run_live`` starts, then runs ``run_live`` in a task that
the session's own TaskGroup owns. That task translates ADK events (:mod:`.translate`) into a
bounded queue which :meth:`AdkSession.events` reads; caller audio goes the other way through the
call's :class:`~callbridge.adapters.adk.queue.CallerQueue`. When the ADK model is observable
(:mod:`.model`) opening waits for the first connection, so a model that cannot be reached
fails the open with ``ModelUnavailable`` (and the runner can fall back), as with the raw back
end.

ADK reconnects by itself on ``goAway`` and on 1000/1006/1011 drops (with the resumption handle);
those surface here as ``SessionNotice`` s (``go_away``, ``rotated``, ``reconnected``). ADK runs
the agent's tools; call-control tools reach the phone call through the agent's live calls
(:mod:`.calls`, given by the connector), where opening registers this call and
:meth:`AdkSession.bind_call` binds it; their follow-up work (``ToolReply.then``) runs as tasks
of this session's TaskGroup.

Closing closes the request queue (ADK closes the connection and ends ``run_live``), waits a
bounded time for that, cancels what is left and removes the call from the registry.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

import structlog
import websockets
from google.adk.agents.live_request_queue import LiveRequest
from google.adk.events.event import Event
from google.adk.runners import Runner
from google.auth.exceptions import GoogleAuthError
from google.genai import errors, types

from callbridge.adapters.adk.calls import CallRegistry, FollowUp
from callbridge.adapters.adk.model import CURRENT_OBSERVER
from callbridge.adapters.adk.queue import CallerQueue
from callbridge.adapters.adk.runconfig import run_config
from callbridge.adapters.adk.translate import EventTranslator, function_call_ids
from callbridge.adapters.gemini_live.translate import function_response
from callbridge.adapters.genai_common import unavailable
from callbridge.bridge.config import ModelSettings
from callbridge.bridge.errors import CallGone, ModelUnavailable
from callbridge.bridge.events import (
    Interrupted,
    ModelEvent,
    SessionNotice,
    ToolResult,
    ToolRunByModelSide,
)
from callbridge.bridge.ports import SessionRequest
from callbridge.bridge.tools import ToolContext
from callbridge.bridge.warnings import WarningCode

log = structlog.get_logger("callbridge.adk")

EVENT_QUEUE_SIZE = 512
"""Translated events waiting for the call (the call's model pump never waits on anything slow,
so this only fills if the call stops reading; ``run_live`` then waits)."""
MAX_MODEL_BACKLOG_S = 10.0
"""Caller audio the model side may fall behind by before new frames are dropped."""
CLOSE_TIMEOUT_S = 5.0
"""How long ``run_live`` gets to finish after the queue is closed before it is cancelled."""
MAX_NOTICES = 32


@dataclass(frozen=True, slots=True)
class _Ended:
    error: ModelUnavailable | None


def _unavailable(exc: BaseException, model: str) -> ModelUnavailable:
    """Vendor exceptions -> ours (:func:`callbridge.adapters.genai_common.unavailable`)."""
    if isinstance(exc, errors.APIError | websockets.WebSocketException | OSError | GoogleAuthError):
        return unavailable(exc, model)
    return ModelUnavailable(f"{model}: ADK run_live failed: {type(exc).__name__}: {exc}")


class AdkSession:
    """A :class:`~callbridge.bridge.ports.ModelSession` over ``Runner.run_live``; an async context
    manager."""

    output_rate = 24000

    def __init__(
        self,
        runner: Runner,
        settings: ModelSettings,
        request: SessionRequest,
        *,
        model: str,
        user_id: str,
        observed: bool,
        non_blocking_tools: frozenset[str] = frozenset(),
        slow_tool_after_s: float = 5.0,
        max_held_audio_s: float = 20.0,
        calls: CallRegistry,
    ) -> None:
        """``calls``: the agent's live calls (the connector's), which its tools and plugin
        read."""
        self._runner = runner
        self._calls = calls
        self._settings = settings
        self._request = request
        self._model = model
        self._user_id = user_id
        self._observed = observed
        self._non_blocking = non_blocking_tools
        self._slow_tool_after_s = slow_tool_after_s
        self._run_config = run_config(settings, request, settings.caps(model))
        self._mime = f"audio/pcm;rate={request.input_rate}"
        bytes_per_s = request.input_rate * 2
        self._queue = CallerQueue(
            max_pending_bytes=int(MAX_MODEL_BACKLOG_S * bytes_per_s),
            max_held_bytes=int(max_held_audio_s * bytes_per_s),
            on_held_dropped=self._held_audio_dropped,
        )
        self._max_held_audio_s = max_held_audio_s
        self._events: asyncio.Queue[ModelEvent | _Ended] = asyncio.Queue(maxsize=EVENT_QUEUE_SIZE)
        self._notices: deque[SessionNotice] = deque(maxlen=MAX_NOTICES)
        self._translator = EventTranslator()
        self._group: asyncio.TaskGroup | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._followups: set[asyncio.Task[None]] = set()
        self._settled = asyncio.Event()
        self._failure: ModelUnavailable | None = None
        self._ended: _Ended | None = None
        self._closing = False
        self._dropping = False
        self._go_away_seen = False
        self.connections = 0
        self.stats: Counter[str] = Counter()
        self._log = log.bind(call_id=request.call_id, tenant=request.tenant)

    # ── ModelSession ───────────────────────────────────────────────────────────────────

    @property
    def input_rate(self) -> int:
        return self._request.input_rate

    @property
    def call_id(self) -> str:
        return self._request.call_id

    @property
    def queue(self) -> CallerQueue:
        return self._queue

    async def send_audio(self, pcm: bytes) -> None:
        """Never waits: see :class:`~callbridge.adapters.adk.queue.CallerQueue` for the bound."""
        self.stats["caller_bytes"] += len(pcm)
        if self._queue.offer_audio(types.Blob(data=pcm, mime_type=self._mime)):
            self._dropping = False
        elif not self._closing and not self._dropping:
            self._dropping = True
            self._notices.append(
                SessionNotice(
                    "caller_audio_dropped",
                    f"the model side is over {MAX_MODEL_BACKLOG_S:.0f} s behind; caller audio "
                    f"is being dropped ({self._queue.dropped_bytes} bytes so far)",
                )
            )

    async def send_text(self, text: str) -> None:
        self._queue.send_content(types.Content(role="user", parts=[types.Part(text=text)]))

    async def send_context(self, role: Literal["user", "model"], text: str) -> None:
        """A ``partial`` request: ADK sends it as ``clientContent`` with ``turnComplete`` false
        and does not store it as a user event (see the port)."""
        content = types.Content(role=role, parts=[types.Part(text=text)])
        self._queue.send(LiveRequest(content=content, partial=True))

    async def send_tool_result(self, result: ToolResult) -> None:
        """Answer a call the host owns (e.g. a long-running tool); ADK forwards it as is."""
        response = function_response(result)
        self._queue.send_content(
            types.Content(role="user", parts=[types.Part(function_response=response)])
        )

    async def events(self) -> AsyncIterator[ModelEvent]:
        """Translated ADK events until the conversation is over (``ModelUnavailable`` if it
        ended with an error)."""
        while self._ended is None:
            item = await self._events.get()
            if isinstance(item, _Ended):
                self._ended = item
                break
            yield item
        if self._ended.error is not None:
            raise self._ended.error

    def bind_call(self, ctx: ToolContext) -> None:
        """Let this call's ADK tools act on ``ctx`` (the bridge's per-call tool context)."""
        self._calls.bind(self._request.call_id, ctx)

    # ── ConnectionObserver (called from ADK's tasks, synchronously) ─────────────────────

    def connected(self, model: str) -> None:
        self.connections += 1
        self._translator.reset()
        if self.connections == 1:
            self._settled.set()
            return
        kind = "rotated" if self._go_away_seen else "reconnected"
        why = "after goAway" if self._go_away_seen else "after the connection dropped"
        self._go_away_seen = False
        self._notices.append(
            SessionNotice(kind, f"ADK opened connection {self.connections} to {model} {why}")
        )

    def go_away(self, time_left: str | None) -> None:
        self._go_away_seen = True
        self._notices.append(
            SessionNotice("go_away", f"connection ends in {time_left or '?'}; ADK reconnects")
        )

    def function_calls(self, calls: list[types.FunctionCall]) -> None:
        self._expect([(call.id or "", call.name or "") for call in calls])

    def interrupted(self) -> None:
        """Barge-in, seen on the socket ahead of ADK's event backlog: tell the call now.

        The events queue only fills if the call stops reading; then the interruption
        arrives the ordinary way, through ADK's own event.
        """
        if self._translator.interrupt_early():
            self.stats["early_interrupts"] += 1
            with contextlib.suppress(asyncio.QueueFull):
                self._events.put_nowait(Interrupted())

    def _held_audio_dropped(self, dropped: int) -> None:
        entry = self._calls.get(self.call_id)
        if entry is not None and entry.ctx is not None:
            entry.ctx.warner.warn(
                WarningCode.CALLER_AUDIO_DROPPED,
                f"caller audio held during a BLOCKING tool call went over "
                f"{self._max_held_audio_s:.0f} s; {self._queue.dropped_held_bytes} bytes of the "
                "oldest dropped",
                dropped_bytes=dropped,
            )

    def _expect(self, calls: list[tuple[str, str]]) -> None:
        blocking = [call_id for call_id, name in calls if name not in self._non_blocking]
        if blocking:
            self._queue.expect_responses(blocking)

    # ── Lifecycle ──────────────────────────────────────────────────────────────────────

    async def __aenter__(self) -> AdkSession:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """ADK session first, then ``run_live``; waits for the first connection if it can."""
        group = asyncio.TaskGroup()
        await group.__aenter__()
        self._group = group
        try:
            await self._ensure_adk_session()
            self._calls.open(
                self._request.call_id,
                spawn=self._spawn,
                slow_tool_after_s=self._slow_tool_after_s,
            )
            self._run_task = group.create_task(
                self._run(), name=f"adk-run-live-{self._request.call_id}"
            )
            await self._wait_connected()
        except BaseException:
            await self.aclose()
            raise

    async def _ensure_adk_session(self) -> None:
        service = self._runner.session_service
        app_name, session_id = self._runner.app_name, self._request.call_id
        try:
            found = await service.get_session(
                app_name=app_name, user_id=self._user_id, session_id=session_id
            )
            if found is None:
                await service.create_session(
                    app_name=app_name, user_id=self._user_id, session_id=session_id
                )
                self._log.debug("adk_session_created")
            else:
                self._log.info("adk_session_continued", events=len(found.events))
        except Exception as exc:
            raise ModelUnavailable(
                f"ADK session store failed ({type(exc).__name__}: {exc}); "
                "check model.adk_session_db"
            ) from None

    async def _wait_connected(self) -> None:
        if not self._observed:
            return
        timeout = self._settings.connect_timeout_s
        try:
            async with asyncio.timeout(timeout):
                await self._settled.wait()
        except TimeoutError:
            raise ModelUnavailable(
                f"{self._model}: no Live connection within {timeout:.0f} s"
            ) from None
        if self._failure is not None:
            raise self._failure

    async def _run(self) -> None:
        CURRENT_OBSERVER.set(self)
        error: ModelUnavailable | None = None
        try:
            stream = self._runner.run_live(
                user_id=self._user_id,
                session_id=self._request.call_id,
                live_request_queue=self._queue,
                run_config=self._run_config,
            )
            async with contextlib.aclosing(stream):
                async for event in stream:
                    await self._deliver(event)
        except Exception as exc:
            error = _unavailable(exc, self._model)
            if not self._closing:
                self._log.warning("adk_run_live_failed", error=str(error))
        self._queue.release()
        if not self._closing:
            self._failure = error
        self._settled.set()
        await self._put(_Ended(error))

    async def _deliver(self, event: Event) -> None:
        self.stats["events"] += 1
        calls = function_call_ids(event)
        if calls:
            self._expect(calls)
            for call_id, name in calls:
                await self._put(ToolRunByModelSide(call_id, name))
        while self._notices:
            await self._put(self._notices.popleft())
        for item in self._translator.translate(event):
            await self._put(item)

    async def _put(self, item: ModelEvent | _Ended) -> None:
        if self._closing:
            with contextlib.suppress(asyncio.QueueFull):
                self._events.put_nowait(item)
            return
        await self._events.put(item)

    def _spawn(self, work: FollowUp, name: str) -> None:
        """Run a tool's follow-up beside the conversation (never inside ADK's tool call)."""
        if self._group is None or self._closing:
            self._log.warning("adk_followup_dropped", followup=name, reason="session closing")
            return
        task = self._group.create_task(self._follow_up(work, name), name=f"{name}-{self.call_id}")
        self._followups.add(task)
        task.add_done_callback(self._followups.discard)

    async def _follow_up(self, work: FollowUp, name: str) -> None:
        entry = self._calls.get(self.call_id)
        ctx = entry.ctx if entry is not None else None
        try:
            await work()
        except CallGone:
            if ctx is not None:
                ctx.control.finish("caller_hangup")
        except Exception as exc:
            self._log.warning("adk_followup_failed", followup=name, error=repr(exc))
            if ctx is not None:
                ctx.warner.warn(
                    WarningCode.TOOL_CALL_FAILED,
                    f"{name} failed after the tool returned: {type(exc).__name__}: {exc}",
                )

    async def aclose(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._queue.close()
        self._drain()
        run = self._run_task
        if run is not None and not run.done():
            await asyncio.wait({run}, timeout=CLOSE_TIMEOUT_S)
            if not run.done():
                self._log.warning("adk_run_live_cancelled", after_s=CLOSE_TIMEOUT_S)
                run.cancel()
        for task in list(self._followups):
            task.cancel()
        try:
            if self._group is not None:
                await self._group.__aexit__(None, None, None)
        finally:
            self._calls.close(self._request.call_id)
            self._drain()
            self._events.put_nowait(_Ended(None))
            self._log.info(
                "adk_session_closed",
                connections=self.connections,
                held_bytes=self._queue.held_total_bytes,
                dropped_bytes=self._queue.dropped_bytes,
                **dict(self.stats),
            )

    def _drain(self) -> None:
        while not self._events.empty():
            self._events.get_nowait()
