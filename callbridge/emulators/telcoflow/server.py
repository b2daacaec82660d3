"""``TelcoflowEmulator``: a local Telcoflow server the unmodified telcoflow 1.0.0 SDK talks to.

One websockets server on 127.0.0.1 serves both planes (wire notes section 8):

- ``/v1/agent/session-manager``: API-key checked in the handshake (401 with a plain-text body,
  which the SDK turns into its ``WSSConnectionError`` message), then ``SessionManagerHub``;
- ``/v1/agent/voice/<callId>``: bearer token checked, one connection per call (409 for a
  second), then the call's ``VoiceLeg``;
- ``GET /public/v1/sessions``: the REST listing behind ``SessionManager.list_sessions()``.

Usage::

    async with TelcoflowEmulator(api_key="k", connector_uuid="c") as emu:
        call = emu.place_call(CallerScript([Say(pcm), HangUp()]))
        ... point SessionManagerConfig.create(base_url=emu.base_url, ...) at it ...
        record = await call.ended(timeout=30)

Compression is off: the SDK offers permessage-deflate, and deflating PCM costs CPU for
nothing (the benchmark runs 100+ calls through one emulator).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
import secrets
from collections import deque
from collections.abc import Iterable
from http import HTTPStatus
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from . import wire
from .call import EmulatedCall
from .outbound import FAILURE_CODES, Callee, CalleePhone, OutboundOptions
from .outcomes import ConnectOutcome
from .script import CallerScript
from .session_manager import SessionManagerHub, SmConnection

logger = logging.getLogger(__name__)

AUTH_FAILED_TEXT = "invalid api key or connector uuid"
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class TelcoflowEmulator:
    """A protocol-faithful local Telcoflow server; use it as ``async with``."""

    def __init__(
        self,
        api_key: str = "test-key",
        connector_uuid: str = "conn-1",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        advertise_host: str | None = None,
        notify_delay_s: float = 0.25,
        renotify_after_s: float = 2.0,
        resume_delay_s: float = 0.3,
        record_audio: bool = True,
        shutdown_timeout_s: float = 10.0,
        outbound: OutboundOptions | None = None,
    ) -> None:
        self.api_key = api_key
        self.connector_uuid = connector_uuid
        self._host = host
        # The host the SDK is told to dial (voice URLs, base_url); a wildcard bind is not one.
        self._advertise_host = advertise_host or (
            "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
        )
        self._requested_port = port
        self._record_audio = record_audio
        self._shutdown_timeout_s = shutdown_timeout_s
        self._calls: dict[str, EmulatedCall] = {}
        self._by_call_id: dict[str, EmulatedCall] = {}
        self._hub = SessionManagerHub(
            self._calls,
            notify_delay_s=notify_delay_s,
            renotify_after_s=renotify_after_s,
            resume_delay_s=resume_delay_s,
        )
        self._hub.on_create = self._create
        self.outbound = outbound or OutboundOptions()
        self.default_callee = Callee.person(CallerScript())
        self._callees: dict[str, deque[Callee]] = {}
        self._refusals: deque[str] = deque()
        self.dialled: list[str] = []
        """Every number a ``session.create`` asked for (refused ones included), in order."""
        self._server: Server | None = None
        self._stack = contextlib.AsyncExitStack()
        self._port = 0
        self._running = False

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> TelcoflowEmulator:
        tg = await self._stack.enter_async_context(asyncio.TaskGroup())
        try:
            self._server = await serve(
                self._handler,
                self._host,
                self._requested_port,
                process_request=self._process_request,
                compression=None,
            )
        except BaseException:
            await self._stack.aclose()
            raise
        self._port = next(iter(self._server.sockets)).getsockname()[1]
        tg.create_task(self._hub.run_offers())
        self._hub.spawn = tg.create_task
        self._running = True
        logger.info("telcoflow emulator listening on %s", self.base_url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._running = False
        try:
            async with asyncio.TaskGroup() as tg:
                for call in self._calls.values():
                    if not call.is_ended:
                        tg.create_task(self._shut_call(call))
            await self._hub.drop_all(1001, "emulator shutting down")
        finally:
            self._hub.stop()
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
            await self._stack.__aexit__(exc_type, exc, tb)

    async def _shut_call(self, call: EmulatedCall) -> None:
        try:
            await call.end_call("emulator_shutdown")
            await call.ended(timeout=self._shutdown_timeout_s)
        except Exception:
            logger.exception("call %s did not shut down cleanly", call.call_id)

    # -- public API ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """What to pass as ``SessionManagerConfig.create(base_url=...)``."""
        return f"ws://{self._advertise_host}:{self._port}"

    @property
    def calls(self) -> list[EmulatedCall]:
        """Every call placed, in placement order."""
        return list(self._calls.values())

    @property
    def sm_connections_seen(self) -> int:
        """How many SM-WS handshakes succeeded (reconnects included)."""
        return self._hub.handshakes

    @property
    def sm_connection_ids(self) -> list[str]:
        """``smWsId`` of every SM-WS connected and set up right now."""
        return list(self._hub.connections)

    def call_by_id(self, call_id: str) -> EmulatedCall:
        return self._by_call_id[call_id]

    def place_call(
        self,
        script: CallerScript | None = None,
        *,
        caller: str = "+15550001",
        callee: str = "+15559999",
        connect_outcomes: Iterable[ConnectOutcome] = (),
        missed: bool = True,
    ) -> EmulatedCall:
        """Place an inbound call; it is offered as soon as a session manager is connected.

        Non-blocking. ``connect_outcomes`` are consumed by the call's ``call.connect`` commands
        in order; once they run out every connect is answered after 0.5 s.
        """
        if not self._running:
            raise RuntimeError("place_call() needs a running emulator (inside `async with`)")
        return self._new_call(
            script if script is not None else CallerScript(),
            caller=caller,
            callee=callee,
            connect_outcomes=connect_outcomes,
            missed=missed,
        )

    def _new_call(
        self,
        script: CallerScript,
        *,
        caller: str,
        callee: str,
        connect_outcomes: Iterable[ConnectOutcome] = (),
        missed: bool = True,
        phone: CalleePhone | None = None,
    ) -> EmulatedCall:
        call_id = f"call-{secrets.token_hex(6)}"
        session_id = f"sess-{secrets.token_hex(6)}"
        call = EmulatedCall(
            call_id=call_id,
            session_id=session_id,
            token=f"tok-{secrets.token_urlsafe(24)}",
            voice_url=f"{self.base_url}{wire.VOICE_PATH_PREFIX}{call_id}",
            caller=caller,
            callee=callee,
            script=script,
            connect_outcomes=connect_outcomes,
            record_audio=self._record_audio,
            on_change=self._hub.wake,
            phone=phone,
            missed=missed,
        )
        self._calls[session_id] = call
        self._by_call_id[call_id] = call
        self._hub.wake()
        return call

    # -- outbound (see ``outbound`` for the assumptions) -------------------------------------

    def expect_callee(self, number: str, *callees: Callee) -> None:
        """How ``number`` behaves when dialled: one ``Callee`` per dial, the last one repeats."""
        self._callees[number] = deque(callees)

    def refuse_next_create(self, error_code: str, times: int = 1) -> None:
        """Refuse the next ``times`` ``session.create`` with ``error_code`` (QUOTA_EXCEEDED...)."""
        self._refusals.extend([error_code] * times)

    @property
    def call_flows(self) -> dict[str, list[wire.JsonObject]]:
        """``call_flow.setup`` data received on each SM-WS connected now, by ``smWsId``."""
        return {sm_id: list(c.call_flows) for sm_id, c in self._hub.connections.items()}

    @property
    def outbound_calls(self) -> list[EmulatedCall]:
        return [c for c in self._calls.values() if c.phone is not None]

    def _callee_for(self, number: str) -> Callee:
        queue = self._callees.get(number)
        if not queue:
            return self.default_callee
        return queue.popleft() if len(queue) > 1 else queue[0]

    async def _create(
        self, conn: SmConnection, req_id: str, obj: wire.JsonObject
    ) -> wire.JsonObject:
        remote, channel = obj.get("remoteAddress"), obj.get("channel")
        if isinstance(remote, str):
            self.dialled.append(remote)
        # The connector's own configuration first, then the request (the order is [unknown]).
        if conn.flow.get("outboundCall") is not True:
            return wire.response_error(req_id, "CHANNEL_NOT_CONFIGURED")
        if channel != "TELCO" or not isinstance(remote, str) or not E164.match(remote):
            return wire.response_error(req_id, "INVALID_REQUEST")
        options = self.outbound
        if self._refusals:
            return wire.response_error(req_id, self._refusals.popleft())
        live = [c for c in self.outbound_calls if not c.is_ended]
        if len(live) >= options.max_concurrent:
            return wire.response_error(req_id, "OUTBOUND_OVERFLOW")
        if options.quota is not None and len(self.outbound_calls) >= options.quota:
            return wire.response_error(req_id, "QUOTA_EXCEEDED")
        callee = self._callee_for(remote)
        phone = CalleePhone(callee, options)
        call = self._new_call(
            callee.script, caller=options.local_number, callee=remote, phone=phone
        )
        call.bind(conn)  # created by this connector: its own session.open succeeds
        if options.ring_start == "create" or options.report == "create":
            phone.start_ringing()
        if options.report == "create":
            decision = await phone.wait(options.ring_timeout_s + 1.0)
            if decision != "answer":
                call.raw_record.dial_result = decision or "no_answer"
                call.unbind(conn)
                await call.end_call("caller_hangup", close_session=False)
                return wire.response_error(req_id, FAILURE_CODES[decision or "no_answer"])
        return wire.response_ok(req_id, {"sessionId": call.session_id, "created": True})

    async def drop_session_manager(self, code: int = 1011) -> int:
        """Close every SM-WS; returns how many were closed.

        The SDK reconnects by itself; still-open calls are then re-offered with
        ``activity:"RESUME"`` at least 300 ms after the new ``setup.done``. Voice WSs go on.
        """
        return await self._hub.drop_all(code, "dropped by the emulator")

    async def send_raw_sm_text(self, text: str) -> int:
        """Send ``text`` verbatim on every SM-WS (malformed-frame faults); returns how many."""
        return await self._hub.send_raw_all(text)

    # -- HTTP layer ------------------------------------------------------------------------

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        path = parts.path
        if path == wire.SM_PATH:
            if not self._api_key_ok(request):
                return conn.respond(HTTPStatus.UNAUTHORIZED, AUTH_FAILED_TEXT)
            return None
        if path.startswith(wire.VOICE_PATH_PREFIX):
            call = self._by_call_id.get(path.removeprefix(wire.VOICE_PATH_PREFIX))
            if call is None:
                return conn.respond(HTTPStatus.NOT_FOUND, "unknown call")
            auth = request.headers.get("Authorization", "")
            if not hmac.compare_digest(auth.encode(), f"Bearer {call.token}".encode()):
                return conn.respond(HTTPStatus.UNAUTHORIZED, "invalid voice token")
            rejection = call.reserve_voice()
            if rejection is not None:
                return conn.respond(rejection[0], rejection[1])
            return None
        if path == wire.SESSIONS_REST_PATH:
            return self._list_sessions(conn, request, parts.query)
        return conn.respond(HTTPStatus.NOT_FOUND, "not found")

    def _api_key_ok(self, request: Request) -> bool:
        key = request.headers.get("x-api-key", "")
        connector = request.headers.get("x-connector-uuid", "")
        return hmac.compare_digest(key.encode(), self.api_key.encode()) and hmac.compare_digest(
            connector.encode(), self.connector_uuid.encode()
        )

    def _list_sessions(self, conn: ServerConnection, request: Request, query: str) -> Response:
        if not self._api_key_ok(request):
            return _json_response(
                conn, HTTPStatus.UNAUTHORIZED, {"code": "UNAUTHORIZED", "message": AUTH_FAILED_TEXT}
            )
        params = parse_qs(query)
        channel = params.get("channel", [None])[0]
        remote = params.get("remoteAddress", [None])[0]
        items = [
            wire.session_object(c.session_id, c.caller, c.callee, c.created_at)
            for c in self._calls.values()
            if not c.is_ended
            and channel in (None, "TELCO")
            and (remote is None or c.caller == remote)
        ]
        return _json_response(conn, HTTPStatus.OK, {"items": items})

    async def _handler(self, ws: ServerConnection) -> None:
        try:
            path = urlsplit(ws.request.path).path if ws.request is not None else ""
            if path == wire.SM_PATH:
                await self._hub.handle(ws)
            elif path.startswith(wire.VOICE_PATH_PREFIX):
                call = self._by_call_id[path.removeprefix(wire.VOICE_PATH_PREFIX)]
                await call.run_voice(ws)
        except Exception:
            logger.exception("telcoflow emulator connection handler failed")


def _json_response(conn: ServerConnection, status: HTTPStatus, body: object) -> Response:
    response = conn.respond(status, "")
    payload = json.dumps(body).encode()
    del response.headers["Content-Type"]
    del response.headers["Content-Length"]
    response.headers["Content-Type"] = "application/json"
    response.headers["Content-Length"] = str(len(payload))
    return Response(response.status_code, response.reason_phrase, response.headers, payload)
