"""Warning delivery off the audio path: a bounded queue drained by one task.

``WarningHub.submit`` is what the calls' warners call: it never blocks and never raises.
The hub's ``run`` task (owned by the service's TaskGroup) hands each warning to every
handler: the structured log, the Prometheus counter, the embedder's ``on_warning`` hook and
the webhook. A slow or failing handler delays only the hub, never a call.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence

import structlog

from bridge.warnings import BridgeWarning

log = structlog.get_logger("callbridge.warnings")

WarningHandler = Callable[[BridgeWarning], Awaitable[None] | None]


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
        self.dropped = 0
        self.delivered = 0

    def add_handler(self, handler: WarningHandler) -> None:
        self._handlers.append(handler)

    def submit(self, warning: BridgeWarning) -> None:
        try:
            self._queue.put_nowait(warning)
        except asyncio.QueueFull:
            self.dropped += 1

    async def run(self) -> None:
        while True:
            warning = await self._queue.get()
            for handler in self._handlers:
                try:
                    result = handler(warning)
                    if inspect.isawaitable(result):
                        async with asyncio.timeout(self._timeout):
                            await result
                except Exception as exc:
                    log.error("warning_handler_failed", handler=repr(handler), error=str(exc))
            self.delivered += 1
            self._queue.task_done()

    async def drain(self, timeout_s: float = 2.0) -> None:
        """Wait (bounded) until queued warnings were handed out; for shutdown and tests."""
        async with asyncio.timeout(timeout_s):
            await self._queue.join()
