"""What keeps the HTTP listeners from being held open: connection cap, read deadline, body cap.

uvicorn 0.54 (h11) bounds a request's header size (h11's 16 KiB incomplete-event limit) and
closes *idle* keep-alive connections, but a connection that sends a few header bytes and then
nothing is never closed (its keep-alive timer is armed only after a response), and
``limit_concurrency`` answers 503 only once a whole request has arrived. A slow-loris client
could therefore hold every descriptor of the process, and the next Telcoflow voice socket
then fails with "Too many open files". So each listener gets:

- **a connection cap** (``max_connections``): a connection beyond it is closed at once,
  before anything is read from it;
- **a read deadline** (``read_timeout_s``): from a connection's first byte (or the first byte
  of its next request) the whole request, headers *and* body, must arrive in time, else the
  connection is closed;
- **a body cap** (:class:`BodyLimit`, ASGI middleware): a declared ``Content-Length`` over the
  cap is refused with 413 before one body byte is read, and a chunked body is cut off as soon
  as it passes the cap. The admin API's bodies are a sentence; probes and metrics take none.

Drops are counted in :class:`GuardStats` (exported as metrics) and logged at most once per
``LOG_INTERVAL_S`` per reason, so a flood cannot flood the log.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import h11
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

log = structlog.get_logger("callbridge.http")

LOG_INTERVAL_S = 10.0


@dataclass(frozen=True)
class HttpLimits:
    max_connections: int = 64
    read_timeout_s: float = 5.0
    max_body_bytes: int = 64 * 1024


@dataclass
class GuardStats:
    """Per listener, since start."""

    listener: str
    refused_connections: int = 0
    read_timeouts: int = 0
    bodies_refused: int = 0
    _last_log: dict[str, float] = field(default_factory=dict)

    def note(self, reason: str, **details: Any) -> None:
        """Log ``reason`` at most once per interval, with the running counts."""
        now = time.monotonic()
        if now - self._last_log.get(reason, float("-inf")) < LOG_INTERVAL_S:
            return
        self._last_log[reason] = now
        log.warning(
            reason,
            listener=self.listener,
            refused_connections=self.refused_connections,
            read_timeouts=self.read_timeouts,
            bodies_refused=self.bodies_refused,
            **details,
        )


_DONE_STATES = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR, h11.SWITCHED_PROTOCOL)


def guarded_protocol(limits: HttpLimits, stats: GuardStats) -> type[H11Protocol]:
    """An h11 protocol class for uvicorn (``Config(http=...)``) enforcing ``limits``."""

    class GuardedH11Protocol(H11Protocol):
        _read_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                stats.refused_connections += 1
                stats.note("http_connection_refused", max_connections=limits.max_connections)
                self.connections.discard(self)
                transport.abort()
                return
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state in _DONE_STATES:
                self._disarm()
            elif self._read_timer is None and (
                self.conn.their_state is h11.SEND_BODY or self.conn.trailing_data[0]
            ):
                self._arm()  # the next request on a kept-alive connection has begun

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._disarm()  # idle now: uvicorn's keep-alive timer takes over

        def _arm(self) -> None:
            self._disarm()
            self._read_timer = self.loop.call_later(limits.read_timeout_s, self._read_timed_out)

        def _disarm(self) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None

        def _read_timed_out(self) -> None:
            self._read_timer = None
            if self.conn.their_state in _DONE_STATES:
                return
            stats.read_timeouts += 1
            stats.note("http_read_timeout", read_timeout_s=limits.read_timeout_s)
            self.transport.abort()

    return GuardedH11Protocol


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is refused with 413, unread."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, stats: GuardStats) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, declared)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, seen)

    async def _refuse(self, send: Send, size: int) -> None:
        self.stats.bodies_refused += 1
        self.stats.note("http_body_refused", size=size, max_body_bytes=self.max_bytes)
        body = b'{"error":"request body too large"}'
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
