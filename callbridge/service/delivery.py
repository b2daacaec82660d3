"""Warning delivery off the audio path: a bounded queue drained by one task.

``WarningHub.submit`` is what the calls' warners call: it never blocks and never raises.
The hub's ``run`` task (owned by the service's TaskGroup) hands each warning to every
handler: the structured log, the Prometheus counter, the embedder's ``on_warning`` hook and
the webhook. A slow or failing handler delays only the hub, never a call.

A handler that needs its own worker (the webhook: its receiver may stall for seconds, and
the log and the counter must not wait for it) implements :class:`BackgroundHandler`: its
``__call__`` only enqueues, and the hub runs its ``run()`` in the hub's own TaskGroup, so
whoever owns the hub owns every delivery task, and cancelling the hub stops them all.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

import structlog

from callbridge.bridge.warnings import BridgeWarning

log = structlog.get_logger("callbridge.warnings")

WarningHandler = Callable[[BridgeWarning], Awaitable[None] | None]


@runtime_checkable
class BackgroundHandler(Protocol):
    """A handler with its own worker: ``__call__`` enqueues, ``run`` delivers until cancelled."""

    def __call__(self, warning: BridgeWarning) -> None: ...

    async def run(self) -> None: ...

    async def drain(self, timeout_s: float) -> bool: ...


def log_warning(warning: BridgeWarning) -> None:
    """The structured log line every warning gets."""
    log.warning(
        "bridge_warning",
        code=warning.code.value,
        description=warning.description,
        call_id=warning.call_id,
        tenant=warning.tenant,
        **dict(warning.details),
    )


class WarningHub:
    """Fans warnings out to handlers from a bounded queue (drops, counted, when full)."""

    def __init__(
        self,
        handlers: Sequence[WarningHandler] = (log_warning,),
        *,
        maxsize: int = 10_000,
        handler_timeout_s: float = 2.0,
    ) -> None:
        self._handlers = list(handlers)
        self._queue: asyncio.Queue[BridgeWarning] = asyncio.Queue(maxsize=maxsize)
        self._timeout = handler_timeout_s
        self._running = False
        self.dropped = 0
        self.delivered = 0

    def add_handler(self, handler: WarningHandler) -> None:
        if self._running and isinstance(handler, BackgroundHandler):
            raise RuntimeError("add background handlers before the hub runs")
        self._handlers.append(handler)

    @property
    def background(self) -> list[BackgroundHandler]:
        return [h for h in self._handlers if isinstance(h, BackgroundHandler)]

    def submit(self, warning: BridgeWarning) -> None:
        try:
            self._queue.put_nowait(warning)
        except asyncio.QueueFull:
            self.dropped += 1

    async def run(self) -> None:
        """Deliver until cancelled; background handlers' workers run alongside."""
        self._running = True
        try:
            async with asyncio.TaskGroup() as group:
                for handler in self.background:
                    group.create_task(handler.run(), name=f"warning-worker {handler!r}")
                await self._dispatch()
        finally:
            self._running = False

    async def _dispatch(self) -> None:
        while True:
            warning = await self._queue.get()
            for handler in self._handlers:
                try:
                    result = handler(warning)
                    if inspect.isawaitable(result):
                        async with asyncio.timeout(self._timeout):
                            await result
                except Exception as exc:
                    log.error(
                        "warning_handler_failed",
                        handler=repr(handler),
                        code=warning.code.value,
                        call_id=warning.call_id,
                        error=f"{type(exc).__name__}: {exc}",
                    )
            self.delivered += 1
            self._queue.task_done()

    async def drain(self, timeout_s: float = 2.0) -> bool:
        """Wait (bounded) until queued warnings were handed out and background handlers
        attempted theirs; for shutdown and tests. Never raises: ``False`` when time ran out.
        """
        deadline = time.monotonic() + timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                await self._queue.join()
        except TimeoutError:
            log.warning("warning_hub_drain_timeout", queued=self._queue.qsize())
            return False
        done = True
        for handler in self.background:
            left = max(0.0, deadline - time.monotonic())
            if not await handler.drain(left):
                log.warning("warning_worker_drain_timeout", handler=repr(handler))
                done = False
        return done
