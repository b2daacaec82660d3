"""The session-manager plane: SM-WS connections, offering calls and the claim protocol.

Every SM-WS of the connector is a competing consumer (wire notes 2.3): each open call is offered
with ``session.notify`` to every connection, the first ``session.open`` wins, later ones get
``SESSION_BUSY``. Offering follows the SDK's traps:

- a connection is offered nothing until ``notify_delay_s`` after its ``setup.done`` (the SDK
  drops notifies that arrive before the app's handler is wired), and ``RESUME`` notifies wait
  at least ``resume_delay_s`` (300 ms; sooner loses the race with the SDK's reconnect hook);
- a claimed session is never re-notified while its owner is connected; an unclaimed one is
  re-offered to each connection every ``renotify_after_s``;
- when the owner's SM-WS goes away the session becomes unclaimed again and is re-offered, with
  ``activity:"RESUME"`` once its ``call.in`` had been delivered; the voice WS is unaffected.
  Like any unclaimed session it is re-offered every ``renotify_after_s`` until re-claimed.

One task (``run_offers``) does all offering, sleeping until the next notify is due or until
something changes (``wake``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from . import wire
from .call import EmulatedCall
from .pcm import SUPPORTED_RATES

logger = logging.getLogger(__name__)

SETUP_TIMEOUT_S = 10.0
AUDIO_MODES = ("mixed", "isolated")


@dataclass(eq=False)
class SmConnection:
    """One connected, set-up SM-WS."""

    ws: ServerConnection
    sm_ws_id: str
    sample_rate: int
    audio_mode: str
    ready_at: float
    open: bool = True
    call_flows: list[wire.JsonObject] = field(default_factory=list)

    @property
    def flow(self) -> wire.JsonObject:
        """The latest ``call_flow.setup`` data; none declared means inbound ALL, no outbound."""
        return self.call_flows[-1] if self.call_flows else {}

    def takes_inbound(self, call: EmulatedCall) -> bool:
        mode = self.flow.get("inboundCall", "ALL")
        return mode == "ALL" or (mode == "MISSED_ONLY" and call.missed)

    async def send(self, frame: wire.JsonObject) -> bool:
        """Send one frame; ``False`` if the connection is already gone."""
        if not self.open:
            return False
        try:
            await self.ws.send(json.dumps(frame))
        except ConnectionClosed:
            return False
        return True


class SessionManagerHub:
    """All SM-WS connections of the connector, and the offering of calls to them."""

    def __init__(
        self,
        calls: dict[str, EmulatedCall],
        *,
        notify_delay_s: float,
        renotify_after_s: float,
        resume_delay_s: float,
    ) -> None:
        self._calls = calls
        self._notify_delay_s = notify_delay_s
        self._renotify_after_s = renotify_after_s
        self._resume_delay_s = max(resume_delay_s, notify_delay_s)
        self.connections: dict[str, SmConnection] = {}
        self.handshakes = 0
        self._ids = count(1)
        self._wake = asyncio.Event()
        self._stopped = False
        self.on_create: Callable[[SmConnection, str, wire.JsonObject], Awaitable[wire.JsonObject]]
        self.on_create = _no_outbound
        self.spawn: Callable[[Coroutine[Any, Any, None]], object] | None = None

    def wake(self) -> None:
        """Something changed (a call, a connection, a claim): re-plan the offers now."""
        self._wake.set()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    # -- connections -----------------------------------------------------------------------

    async def handle(self, ws: ServerConnection) -> None:
        """Serve one SM-WS from its ``setup`` frame until it closes."""
        self.handshakes += 1
        conn = await self._setup(ws)
        if conn is None:
            return
        self.connections[conn.sm_ws_id] = conn
        self.wake()
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    logger.info("%s: ignoring binary SM frame of %d B", conn.sm_ws_id, len(message))
                    continue
                await self._on_frame(conn, message)
        except ConnectionClosed:
            pass
        finally:
            conn.open = False
            self.connections.pop(conn.sm_ws_id, None)
            for call in self._calls.values():
                call.unbind(conn)
            self.wake()

    async def _setup(self, ws: ServerConnection) -> SmConnection | None:
        try:
            async with asyncio.timeout(SETUP_TIMEOUT_S):
                first = await ws.recv()
        except (TimeoutError, ConnectionClosed):
            await ws.close(1008, "setup expected")
            return None
        obj = wire.parse_object(first)
        data = obj.get("data") if obj is not None and obj["type"] == "setup" else None
        if not isinstance(data, dict):
            await ws.close(1008, "the first frame must be setup")
            return None
        rate = data.get("sampleRate", 16000)
        mode = data.get("audioMode", "mixed")
        if rate not in SUPPORTED_RATES or mode not in AUDIO_MODES:
            await ws.close(1008, "unsupported sampleRate or audioMode")
            return None
        sm_ws_id = f"smws-{next(self._ids)}-{secrets.token_hex(3)}"
        try:
            await ws.send(json.dumps(wire.setup_done(sm_ws_id)))
        except ConnectionClosed:
            return None
        return SmConnection(ws, sm_ws_id, int(rate), str(mode), ready_at=time.monotonic())

    async def drop_all(self, code: int, reason: str = "") -> int:
        """Close every SM-WS (the SDK will reconnect); returns how many were closed."""
        conns = list(self.connections.values())
        for conn in conns:
            conn.open = False
            for call in self._calls.values():
                call.unbind(conn)
        self.wake()
        for conn in conns:
            with contextlib.suppress(ConnectionClosed):
                await conn.ws.close(code, reason)
        return len(conns)

    async def send_raw_all(self, text: str) -> int:
        """Send ``text`` verbatim to every SM-WS; returns how many got it."""
        sent = 0
        for conn in list(self.connections.values()):
            if not conn.open:
                continue
            with contextlib.suppress(ConnectionClosed):
                await conn.ws.send(text)
                sent += 1
        return sent

    # -- frames from the SDK ---------------------------------------------------------------

    async def _on_frame(self, conn: SmConnection, text: str) -> None:
        obj = wire.parse_object(text)
        if obj is None:
            logger.info("%s: ignoring non-JSON SM frame %.200s", conn.sm_ws_id, text)
            return
        kind = obj["type"]
        req_id = obj.get("reqId")
        if kind == "session.open" and isinstance(req_id, str):
            await conn.send(self._open(conn, req_id, obj.get("sessionId")))
        elif kind == "session.ready":
            await self._ready(conn, obj.get("sessionId"))
        elif kind == "call_flow.setup" and isinstance(req_id, str):
            data = obj.get("data")
            conn.call_flows.append(data if isinstance(data, dict) else {})
            await conn.send(wire.response_ok(req_id, {}))
        elif kind == "session.create" and isinstance(req_id, str):
            # Its answer may wait for the callee (report="create"): never block this reader.
            reply = self._reply_to_create(conn, req_id, obj)
            if self.spawn is not None:
                self.spawn(reply)
            else:
                await reply
        elif kind == "wa.msg.out" and isinstance(req_id, str):
            await conn.send(wire.response_error(req_id, "INVALID_CHANNEL"))
        else:
            logger.info("%s: ignoring SM frame %.200s", conn.sm_ws_id, text)

    async def _reply_to_create(self, conn: SmConnection, req_id: str, obj: wire.JsonObject) -> None:
        try:
            response = await self.on_create(conn, req_id, obj)
        except Exception:
            logger.exception("session.create failed")
            response = wire.response_error(req_id, "INTERNAL_ERROR")
        await conn.send(response)

    def _open(self, conn: SmConnection, req_id: str, session_id: object) -> wire.JsonObject:
        call = self._calls.get(session_id) if isinstance(session_id, str) else None
        if call is None:
            return wire.response_error(req_id, "SESSION_NOT_FOUND")
        if call.is_ended:
            return wire.response_error(req_id, "SESSION_CLOSED")
        injected = call.faults.take_failure("session.open")
        if injected is not None:
            # E.g. SESSION_BUSY: the race lost to a replica the emulator does not host.
            bound = (
                {"boundSmWsId": "smws-elsewhere"} if injected.error_code == "SESSION_BUSY" else None
            )
            return wire.response_error(req_id, injected.error_code, bound)
        owner = call.owner
        if owner is not None and owner is not conn and owner.open:
            return wire.response_error(req_id, "SESSION_BUSY", {"boundSmWsId": owner.sm_ws_id})
        if owner is not conn:
            call.bind(conn)
            self.wake()
        session = wire.session_object(call.session_id, call.caller, call.callee, call.created_at)
        return wire.response_ok(req_id, {"session": session})

    async def _ready(self, conn: SmConnection, session_id: object) -> None:
        call = self._calls.get(session_id) if isinstance(session_id, str) else None
        if call is None or call.is_ended or call.owner is not conn or call.call_in_sent:
            logger.info("%s: session.ready for %r ignored", conn.sm_ws_id, session_id)
            return
        call.call_in_sent = True
        call.ever_delivered = True
        if call.phone is not None and call.phone.options.ring_start == "ready":
            call.phone.start_ringing()
        await conn.send(
            wire.call_in(
                call.session_id, call.call_id, call.caller, call.callee, call.voice_url, call.token
            )
        )

    # -- offering --------------------------------------------------------------------------

    async def run_offers(self) -> None:
        """Send every due ``session.notify``; sleep until the next one is due or ``wake``."""
        while not self._stopped:
            self._wake.clear()
            next_due = time.monotonic() + 5.0
            for call in list(self._calls.values()):
                if not call.offerable:
                    continue
                try:
                    next_due = min(next_due, await self._offer(call))
                except Exception:  # one bad offer must not stop all the others
                    logger.exception("offering %s failed", call.session_id)
            delay = next_due - time.monotonic()
            if delay > 0 and not self._wake.is_set():
                try:
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                except TimeoutError:
                    pass

    async def _offer(self, call: EmulatedCall) -> float:
        """Notify every connection the call is due at; returns when it is next due."""
        resume = call.ever_delivered
        delay = self._resume_delay_s if resume else self._notify_delay_s
        activity = "RESUME" if resume else "NEW_INCOMING_CALL"
        next_due = float("inf")
        for conn in list(self.connections.values()):
            if not conn.open or not call.offerable or not conn.takes_inbound(call):
                continue
            now = time.monotonic()
            due = conn.ready_at + delay
            last = call.notified.get(conn.sm_ws_id)
            if last is not None:
                due = max(due, last + self._renotify_after_s)
            if due > now:
                next_due = min(next_due, due)
                continue
            call.notified[conn.sm_ws_id] = now
            call.notifies_sent += 1
            frame = wire.session_notify(
                call.session_id, call.caller, call.callee, activity, call.created_at
            )
            if await conn.send(frame):
                logger.debug("%s: notify %s (%s)", conn.sm_ws_id, call.session_id, activity)
            next_due = min(next_due, now + self._renotify_after_s)
        return next_due


async def _no_outbound(conn: SmConnection, req_id: str, obj: wire.JsonObject) -> wire.JsonObject:
    return wire.response_error(req_id, "CHANNEL_NOT_CONFIGURED")
