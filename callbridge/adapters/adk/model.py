"""``ObservedGemini``: ADK's ``Gemini`` model, plus a window onto its live connections.

ADK opens, rotates (on ``goAway``) and re-opens (after a drop) Live connections on its own and
tells nobody. The bridge needs to know three things that happen down there:

- that the first connection is up (``setupComplete``), so opening a call's model session can
  fail fast and let the runner fall back, exactly like the raw back end;
- that a ``goAway`` came and a connection was replaced, for the call record and warnings;
- that the model made function calls, as early as possible, so caller audio can be held while
  a BLOCKING one is pending (see :mod:`callbridge.adapters.adk.queue`).

The session that runs ``run_live`` sets :data:`CURRENT_OBSERVER` in its own task; ADK's tasks
inherit the context, so the model (shared by every call of the tenant) reports each connection
to the call it belongs to. Without an observer it behaves exactly like ``Gemini``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from contextvars import ContextVar
from typing import Protocol

from google.adk.models.base_llm_connection import BaseLlmConnection
from google.adk.models.google_llm import Gemini
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.genai import types
from typing_extensions import override

from callbridge.adapters.genai_common import fresh_credentials
from callbridge.bridge.scheduling import result_scheduling

CALL_CONTROL = frozenset({"transfer_to_human", "end_call", "set_agent_mode"})


class ConnectionObserver(Protocol):
    """What a call's model session wants to hear about its live connections."""

    def connected(self, model: str) -> None: ...

    def go_away(self, time_left: str | None) -> None: ...

    def function_calls(self, calls: list[types.FunctionCall]) -> None: ...

    def interrupted(self) -> None:
        """The server said ``interrupted``: called as it arrives, ahead of ADK's backlog."""
        ...


PREFETCH = 256
"""Server messages read ahead of ADK (about 10 s of model audio). Policy when full: the reader
waits, so the socket is read no faster than ADK consumes; an ``interrupted`` behind a full
queue is then seen late, as without read-ahead."""


CURRENT_OBSERVER: ContextVar[ConnectionObserver | None] = ContextVar(
    "callbridge_adk_observer", default=None
)


class ObservedGemini(Gemini):
    """``Gemini`` that reports connects, ``goAway`` and function calls to the current call."""

    @contextlib.asynccontextmanager
    @override
    async def connect(self, llm_request: LlmRequest) -> AsyncIterator[BaseLlmConnection]:
        observer = CURRENT_OBSERVER.get()
        # Vertex: refresh an expiring token in a worker thread; genai would do it on the loop.
        await fresh_credentials((self.client_kwargs or {}).get("credentials"))
        async with super().connect(llm_request) as connection:
            if observer is None:
                yield connection
                return
            observer.connected(self.model)
            observed = _ObservedConnection(connection, observer)
            try:
                yield observed
            finally:
                await observed.stop()

    @classmethod
    def from_gemini(cls, model: Gemini) -> ObservedGemini:
        """The same model settings (client and client_kwargs included), observed."""
        fields = {name: getattr(model, name) for name in type(model).model_fields}
        return cls(**fields)


def with_scheduling(content: types.Content) -> types.Content:
    """Call-control results sent with the scheduling :mod:`callbridge.bridge.scheduling` picks per
    outcome.

    ADK gives every result of a NON_BLOCKING tool the tool's one ``response_scheduling``; the
    bridge wants a failed transfer spoken at once and a mode change taken silently. Only
    results that already carry a scheduling (their tool was declared NON_BLOCKING) change: a
    BLOCKING call's result carries none.
    """
    parts = content.parts or []
    if not parts or any(p.function_response is None for p in parts):
        return content
    changed = []
    for part in parts:
        response = part.function_response
        assert response is not None
        if response.name in CALL_CONTROL and response.scheduling is not None:
            mode = result_scheduling(response.name, response.response or {})
            response = response.model_copy(
                update={"scheduling": types.FunctionResponseScheduling(mode)}
            )
            part = part.model_copy(update={"function_response": response})
        changed.append(part)
    return content.model_copy(update={"parts": changed})


class _End:
    """One ``receive()`` of the inner connection ended (ADK calls ``receive()`` again)."""


class _ObservedConnection(BaseLlmConnection):
    """Delegates everything to ADK's connection; reads its ``receive()`` ahead of ADK.

    ADK consumes server messages one at a time in its live flow: each becomes an event that
    runs through plugins and the session service, and a non-blocking tool's launch, an
    ``after_model`` screen or a slow session write all happen in that same loop. Under load,
    and with the model's audio arriving in bursts faster than real time, that loop falls
    seconds behind the socket, and an ``interrupted`` waits behind the backlog: a barge-in
    cleared the line 1-2 s late in our measurements. A reader task (owned by this connection,
    cancelled when it closes) takes messages off the socket as they arrive, tells the observer
    about ``interrupted``, ``goAway`` and function calls at once, and hands every message to
    ADK unchanged and in order.
    """

    def __init__(self, inner: BaseLlmConnection, observer: ConnectionObserver) -> None:
        self._inner = inner
        self._observer = observer
        self._ahead: asyncio.Queue[LlmResponse | _End | Exception] = asyncio.Queue(PREFETCH)
        self._reader: asyncio.Task[None] | None = None

    @override
    async def send_history(self, history: list[types.Content]) -> None:
        await self._inner.send_history(history)

    @override
    async def send_content(self, content: types.Content) -> None:
        await self._inner.send_content(with_scheduling(content))

    @override
    async def _send_content(self, content: types.Content, *, partial: bool = False) -> None:
        await self._inner._send_content(with_scheduling(content), partial=partial)

    @override
    async def send_realtime(self, blob: types.Blob) -> None:
        # ADK also passes ActivityStart/End and audio_stream_end here: forwarded untouched.
        await self._inner.send_realtime(blob)

    def _observe(self, response: LlmResponse) -> None:
        if response.interrupted:
            self._observer.interrupted()
        if response.go_away is not None:
            self._observer.go_away(response.go_away.time_left)
        parts = response.content.parts if response.content else None
        calls = [p.function_call for p in parts or () if p.function_call is not None]
        if calls:
            self._observer.function_calls(calls)

    async def _read_ahead(self) -> None:
        try:
            while True:
                received = False
                async with contextlib.aclosing(self._inner.receive()) as responses:
                    async for response in responses:
                        received = True
                        self._observe(response)
                        await self._ahead.put(response)
                await self._ahead.put(_End())
                if not received:
                    return  # the connection is done
        except Exception as exc:  # handed to ADK, which raises it where it always did
            await self._ahead.put(exc)

    @override
    async def receive(self) -> AsyncGenerator[LlmResponse, None]:
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(
                self._read_ahead(), name="adk-live-read-ahead"
            )
        while True:
            if self._reader.done() and self._ahead.empty():
                return
            item = await self._ahead.get()
            if isinstance(item, _End):
                return
            if isinstance(item, Exception):
                raise item
            yield item

    async def stop(self) -> None:
        """Cancel the reader and wait for it (the connection is closing)."""
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    @override
    async def close(self) -> None:
        await self._inner.close()
