"""The operator console's routes: a small Starlette app mounted under ``/console``.

Pages are rendered on the server (Jinja2); ``static/console.js`` (plain JavaScript, no build
step) keeps them live over server-sent events and posts the actions.

Security, in one place (:class:`_Gate`):

- Served on the admin listener only (``callbridge.service.serve`` mounts it there).
- No admin token configured: every route answers 503 (the console is off, never open).
- A wrong token at the login form counts in the admin listener's failed-authentication
  throttle (``ConsoleDeps.throttle``); a throttled peer gets 429 there too.
- Every route but the login page and its stylesheet needs the session cookie
  (``auth.COOKIE_NAME``: ``Secure; HttpOnly; SameSite=Strict; Path=<mount>``). Pages redirect
  to the login page, streams and actions answer 401; neither says anything about calls.
- Every POST (login and logout included) must come from this origin when the browser says
  where it comes from; every action also needs the session's CSRF token
  (``X-CSRF-Token`` header or ``csrf`` form field): 403 otherwise.
- Responses carry a strict Content-Security-Policy (scripts and styles from this origin
  only) and ``Cache-Control: no-store``.

Actions are audited in the call record (a ``timeline`` entry ``operator_action`` with the
operator's name, client address, action and result) before the response is sent.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from callbridge.bridge.call import BridgedCall
from callbridge.bridge.config import ToolsSettings
from callbridge.bridge.errors import CallGone
from callbridge.bridge.record import CallRecord, mask_number
from callbridge.bridge.tools import ToolContext, set_mode, transfer_to_human
from callbridge.bridge.warnings import WarningCode
from callbridge.service.console import auth
from callbridge.service.console.history import HistoryFilter, find_calls, warning_codes
from callbridge.service.console.live import MAX_BATCH, ConsoleHub, entry_json
from callbridge.service.console.timeline import timeline_svg
from callbridge.service.http import AuthThrottle
from callbridge.service.store import RecordStore

log = structlog.get_logger("callbridge.console")

HERE = Path(__file__).parent
STATIC = {"console.js": "text/javascript", "console.css": "text/css"}
PUBLIC = {"/login", "/static/console.css"}
"""The only paths served without a session (the login form and its stylesheet)."""

LIVE_REFRESH_S = 1.0
"""How often the live-calls stream looks for changes (it sends only when something changed)."""
METER_INTERVAL_S = 0.2
"""How often a call's stream samples the audio level meters (and looks for the call's end)."""
KEEPALIVE_S = 15.0
MAX_INJECT_CHARS = 2000

INJECT_REFUSALS = (
    WarningCode.INJECT_MESSAGE_DURING_USER_SPEECH,
    WarningCode.INJECT_MESSAGE_DURING_AGENT_SPEECH,
)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: under it Chromium sends "Origin: null" on same-origin form posts.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class ConsoleDeps:
    """Everything the console reads; nothing here is owned by it."""

    live: Mapping[str, BridgedCall]
    hub: ConsoleHub
    admin_token: str | None
    tenant: str
    tools: ToolsSettings
    full_numbers: bool = False
    store: RecordStore | None = None
    replica: str = ""
    throttle: AuthThrottle | None = None
    """The admin listener's failed-authentication throttle: a wrong token at the login form
    counts as a failed admin authentication, and a throttled peer gets 429 at the form."""


def _iso(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def dbfs(level_rms: float) -> float:
    """An RMS level of s16le audio in dB full scale, floored at -90 (silence)."""
    return -90.0 if level_rms <= 1.0 else max(-90.0, round(20 * math.log10(level_rms / 32768), 1))


def _sse(event: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def _stream(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={**SECURITY_HEADERS, "X-Accel-Buffering": "no"},
    )


class _Gate:
    """Session, origin and CSRF checks for every console request."""

    def __init__(self, admin_token: str | None) -> None:
        self.token = admin_token

    def session(self, request: Request) -> auth.Session | None:
        if not self.token:
            return None
        return auth.read_session(self.token, request.cookies.get(auth.COOKIE_NAME))

    def same_origin(self, request: Request) -> bool:
        return auth.same_origin(
            request.headers.get("origin"), request.headers.get("host"), request.url.scheme
        )

    async def csrf_ok(self, request: Request, session: auth.Session) -> bool:
        assert self.token is not None
        given = request.headers.get("x-csrf-token")
        if given is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            form = await request.form()
            value = form.get("csrf")
            given = value if isinstance(value, str) else None
        return self.same_origin(request) and auth.csrf_ok(self.token, session, given)


Handler = Callable[[Request, auth.Session], Awaitable[Response]]


def create_console_app(deps: ConsoleDeps) -> Starlette:
    """The console for one replica; mount it under ``/console`` beside the admin API."""
    gate = _Gate(deps.admin_token)
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    def base(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    def page(request: Request, name: str, session: auth.Session | None, **context: Any) -> Response:
        csrf = auth.csrf_token(deps.admin_token or "", session) if session else ""
        response = templates.TemplateResponse(
            request,
            name,
            {
                "base": base(request),
                "operator": session.operator if session else None,
                "csrf": csrf,
                "tenant": deps.tenant,
                "replica": deps.replica,
                **context,
            },
        )
        response.headers.update(SECURITY_HEADERS)
        return response

    def guarded(handler: Handler, *, kind: str) -> Callable[[Request], Awaitable[Response]]:
        """``kind``: ``page`` (redirect to login), ``stream`` (401) or ``action`` (401/403)."""

        async def endpoint(request: Request) -> Response:
            if not deps.admin_token:
                return JSONResponse(
                    {"error": "console disabled: set CALLBRIDGE_ADMIN_TOKEN to enable it"},
                    status_code=503,
                )
            session = gate.session(request)
            if session is None:
                if kind == "page":
                    return RedirectResponse(f"{base(request)}/login", status_code=303)
                return JSONResponse({"error": "log in first"}, status_code=401)
            if kind == "action" and not await gate.csrf_ok(request, session):
                return JSONResponse({"error": "missing or invalid CSRF token"}, status_code=403)
            return await handler(request, session)

        return endpoint

    # ── Login ───────────────────────────────────────────────────────────────────────────

    async def login_form(request: Request) -> Response:
        if not deps.admin_token:
            return JSONResponse({"error": "console disabled"}, status_code=503)
        return page(request, "login.html", None, error=None)

    async def login(request: Request) -> Response:
        if not deps.admin_token:
            return JSONResponse({"error": "console disabled"}, status_code=503)
        if not gate.same_origin(request):
            return JSONResponse({"error": "cross-origin login refused"}, status_code=403)
        client = _client(request)
        if deps.throttle is not None and deps.throttle.blocked(client):
            return JSONResponse(
                {"error": "too many failed authentications; try again later"}, status_code=429
            )
        form = await request.form()
        operator = str(form.get("operator", "")).strip()
        token = str(form.get("token", ""))
        error = None
        if not auth.OPERATOR_NAME.match(operator):
            error = "operator: give your name (letters, digits, spaces, .@'- ; at most 64)"
        elif not auth.token_matches(deps.admin_token, token):
            error = "token: not this bridge's admin token"
            if deps.throttle is not None:
                deps.throttle.failed(client, request.url.path, "wrong token at console login")
        if error is not None:
            log.warning("console_login_refused", client=client, reason=error)
            response = page(request, "login.html", None, error=error)
            response.status_code = 401
            return response
        cookie, _ = auth.new_session(deps.admin_token, operator)
        log.info("console_login", operator=operator, client=client)
        response = RedirectResponse(f"{base(request)}/", status_code=303)
        response.set_cookie(
            auth.COOKIE_NAME,
            cookie,
            max_age=auth.SESSION_TTL_S,
            path=base(request) or "/",
            secure=True,
            httponly=True,
            samesite="strict",
        )
        return response

    async def logout(request: Request, session: auth.Session) -> Response:
        response = RedirectResponse(f"{base(request)}/login", status_code=303)
        response.delete_cookie(
            auth.COOKIE_NAME,
            path=base(request) or "/",
            secure=True,
            httponly=True,
            samesite="strict",
        )
        return response

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return JSONResponse({"error": "not found"}, status_code=404)
        if f"/static/{name}" not in PUBLIC and gate.session(request) is None:
            return JSONResponse({"error": "log in first"}, status_code=401)
        return FileResponse(HERE / "static" / name, media_type=STATIC[name])

    # ── Live calls ──────────────────────────────────────────────────────────────────────

    def row(call_id: str, bridged: BridgedCall) -> dict[str, Any]:
        record = bridged.record
        summary = deps.hub.summary(record)
        first = bridged.stats.first_agent_audio_s
        return {
            "call_id": call_id,
            "caller": mask_number(record.caller, full=deps.full_numbers),
            "direction": record.direction,
            "state": summary.state,
            "started_at": record.started_at,
            "started": _iso(record.started_at),
            "model": summary.model or "",
            "warnings": dict(summary.warnings),
            "first_audio_s": None if first is None else round(first, 2),
            "barge_ins": summary.barge_ins,
        }

    def rows() -> list[dict[str, Any]]:
        live = dict(deps.live)
        deps.hub.forget_except(set(live))
        return [row(call_id, bridged) for call_id, bridged in live.items()]

    async def live_page(request: Request, session: auth.Session) -> Response:
        return page(request, "live.html", session, rows=rows())

    async def live_stream(request: Request, session: auth.Session) -> Response:
        if deps.hub.full:
            return JSONResponse({"error": "too many console streams open"}, status_code=503)

        async def body() -> AsyncIterator[str]:
            with deps.hub.stream():
                last = ""
                quiet = 0.0
                while True:
                    payload = json.dumps(rows(), default=str)
                    if payload != last:
                        last, quiet = payload, 0.0
                        yield f"event: calls\ndata: {payload}\n\n"
                    elif quiet >= KEEPALIVE_S:
                        quiet = 0.0
                        yield ": keepalive\n\n"
                    await asyncio.sleep(LIVE_REFRESH_S)
                    quiet += LIVE_REFRESH_S

        return _stream(body())

    # ── One call ────────────────────────────────────────────────────────────────────────

    async def call_page(request: Request, session: auth.Session) -> Response:
        call_id = request.path_params["call_id"]
        bridged = deps.live.get(call_id)
        if bridged is None:
            return RedirectResponse(f"{base(request)}/history/{call_id}", status_code=303)
        return page(request, "call.html", session, call=row(call_id, bridged))

    async def call_stream(request: Request, session: auth.Session) -> Response:
        call_id = request.path_params["call_id"]
        bridged = deps.live.get(call_id)
        if bridged is None:
            # A browser reconnecting after the call ended hears that it ended, not a 404
            # (after which EventSource would give up without saying why).
            stored = await deps.store.get_call(call_id) if deps.store is not None else None
            if stored is None or stored.tenant != deps.tenant:
                return JSONResponse({"error": "no live call with this id"}, status_code=404)
            return _stream(_ended(stored.outcome))
        if deps.hub.full:
            return JSONResponse({"error": "too many console streams open"}, status_code=503)
        try:  # EventSource resends the last id it saw when it reconnects
            cursor = max(0, int(request.headers.get("last-event-id", "0")))
        except ValueError:
            cursor = 0
        return _stream(_call_events(bridged, cursor))

    async def _ended(outcome: str) -> AsyncIterator[str]:
        yield _sse("ended", {"outcome": outcome})

    async def _call_events(bridged: BridgedCall, cursor: int) -> AsyncIterator[str]:
        record = bridged.record
        with deps.hub.stream(), deps.hub.watch(record.call_id) as wake:
            meter: tuple[float, bool] | None = None
            state = ""
            quiet = 0.0
            while True:
                wake.clear()
                entries = record.entries
                if cursor < len(entries):
                    batch = entries[cursor : cursor + MAX_BATCH]
                    cursor += len(batch)
                    quiet = 0.0
                    yield _sse("entries", [entry_json(e) for e in batch], cursor)
                    if (now := deps.hub.summary(record).state) != state:
                        state = now
                        yield _sse("state", {"state": state})
                    continue
                if record.ended_at is not None:
                    yield _sse("ended", {"outcome": record.outcome})
                    return
                level = (dbfs(bridged.caller.level_rms), bridged.agent_speaking)
                if level != meter:
                    meter, quiet = level, 0.0
                    yield _sse("meter", {"caller_dbfs": level[0], "agent_speaking": level[1]})
                elif quiet >= KEEPALIVE_S:
                    quiet = 0.0
                    yield ": keepalive\n\n"
                try:
                    async with asyncio.timeout(METER_INTERVAL_S):
                        await wake.wait()
                except TimeoutError:
                    quiet += METER_INTERVAL_S

    # ── Actions ─────────────────────────────────────────────────────────────────────────

    def audit(
        record: CallRecord, request: Request, session: auth.Session, action: str, **data: Any
    ) -> None:
        record.note(
            "operator_action", action=action, by=session.operator, client=_client(request), **data
        )
        log.info(
            "operator_action",
            call_id=record.call_id,
            action=action,
            by=session.operator,
            result=data.get("result"),
        )

    def action(
        run: Callable[[Request, auth.Session, BridgedCall], Awaitable[Response]],
    ) -> Handler:
        async def handler(request: Request, session: auth.Session) -> Response:
            bridged = deps.live.get(request.path_params["call_id"])
            if bridged is None:
                return JSONResponse({"error": "no live call with this id"}, status_code=404)
            try:
                return await run(request, session, bridged)
            except CallGone:
                name = request.url.path.rsplit("/", 1)[-1]
                audit(bridged.record, request, session, name, result="call_gone")
                return JSONResponse({"error": "the call is gone"}, status_code=409)

        return handler

    async def form_value(request: Request, name: str) -> str:
        if request.headers.get("content-type", "").startswith("application/json"):
            body = await request.json()
            return str(body.get(name, "")) if isinstance(body, dict) else ""
        form = await request.form()
        value = form.get(name, "")
        return value if isinstance(value, str) else ""

    async def inject(request: Request, session: auth.Session, bridged: BridgedCall) -> Response:
        text = (await form_value(request, "text")).strip()
        if not 1 <= len(text) <= MAX_INJECT_CHARS:
            return JSONResponse(
                {"error": f"text: give 1 to {MAX_INJECT_CHARS} characters"}, status_code=422
            )
        before = {code: bridged.warner.counts.get(code, 0) for code in INJECT_REFUSALS}
        try:
            taken = await bridged.inject(text)
        except CallGone:
            raise
        except Exception as exc:  # the model session may be closing under us
            audit(bridged.record, request, session, "inject", text=text, result="failed")
            log.warning("console_inject_failed", error=str(exc))
            return JSONResponse(
                {"injected": False, "error": "the model session did not take the message"},
                status_code=409,
            )
        if taken:
            audit(bridged.record, request, session, "inject", text=text, result="taken")
            return JSONResponse({"injected": True})
        code = next(
            (c for c in INJECT_REFUSALS if bridged.warner.counts.get(c, 0) > before[c]), None
        )
        refusal = code.value if code else None
        audit(bridged.record, request, session, "inject", text=text, result="refused", code=refusal)
        return JSONResponse({"injected": False, "code": refusal}, status_code=409)

    def tool_context(bridged: BridgedCall) -> ToolContext | None:
        return bridged.tools.context if bridged.tools is not None else None

    async def transfer(request: Request, session: auth.Session, bridged: BridgedCall) -> Response:
        ctx = tool_context(bridged)
        if ctx is None:
            return JSONResponse({"error": "this call has no call control"}, status_code=409)
        note = (await form_value(request, "summary")).strip()[:500]
        reply = await transfer_to_human(
            ctx, {"reason": f"operator {session.operator}", "summary": note}
        )
        status = str(reply.response.get("status"))
        audit(bridged.record, request, session, "transfer", result=status, summary=note)
        if reply.then is not None:
            await reply.then()
        ok = status in ("connected", "already_connected")
        return JSONResponse(dict(reply.response), status_code=200 if ok else 409)

    async def mode(request: Request, session: auth.Session, bridged: BridgedCall) -> Response:
        ctx = tool_context(bridged)
        if ctx is None:
            return JSONResponse({"error": "this call has no call control"}, status_code=409)
        wanted = await form_value(request, "mode")
        result = await set_mode(ctx, wanted)
        audit(bridged.record, request, session, f"mode {wanted}"[:32], result=result["status"])
        return JSONResponse(result, status_code=200 if result["status"] == "ok" else 409)

    async def end(request: Request, session: auth.Session, bridged: BridgedCall) -> Response:
        audit(bridged.record, request, session, "end", result="ending")
        bridged.finish("ended_by_operator", hang_up="disconnect")
        return JSONResponse({"ending": True, "outcome": bridged.outcome})

    # ── History ─────────────────────────────────────────────────────────────────────────

    async def history(request: Request, session: auth.Session) -> Response:
        wanted = HistoryFilter.parse(dict(request.query_params))
        found: list[dict[str, Any]] = []
        if deps.store is not None and not wanted.problems:
            stored = await find_calls(deps.store, wanted, tenant=deps.tenant)
            codes = await warning_codes(deps.store, [c.call_id for c in stored])
            found = [
                {
                    "call_id": c.call_id,
                    "caller": c.caller,
                    "started": _iso(c.started_at),
                    "duration_s": None if c.duration is None else round(c.duration, 1),
                    "outcome": c.outcome,
                    "warnings": codes.get(c.call_id, []),
                }
                for c in stored
            ]
        response = page(
            request,
            "history.html",
            session,
            calls=found,
            wanted=wanted,
            query=dict(request.query_params),
            has_store=deps.store is not None,
        )
        if wanted.problems:
            response.status_code = 422
        return response

    async def history_call(request: Request, session: auth.Session) -> Response:
        call_id = request.path_params["call_id"]
        stored = await deps.store.get_call(call_id) if deps.store is not None else None
        if stored is None or stored.tenant != deps.tenant:
            response = page(request, "missing.html", session, call_id=call_id)
            response.status_code = 404
            return response
        return page(
            request,
            "history_call.html",
            session,
            call={
                "call_id": stored.call_id,
                "caller": stored.caller,
                "started": _iso(stored.started_at),
                "ended": _iso(stored.ended_at),
                "duration_s": None if stored.duration is None else round(stored.duration, 1),
                "outcome": stored.outcome,
            },
            timeline=timeline_svg(stored.entries, stored.duration),
            entries=[entry_json(e) for e in stored.entries],
        )

    routes = [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", guarded(logout, kind="action"), methods=["POST"]),
        Route("/static/{name}", static, methods=["GET"]),
        Route("/", guarded(live_page, kind="page"), methods=["GET"]),
        Route("/stream", guarded(live_stream, kind="stream"), methods=["GET"]),
        Route("/calls/{call_id}", guarded(call_page, kind="page"), methods=["GET"]),
        Route("/calls/{call_id}/stream", guarded(call_stream, kind="stream"), methods=["GET"]),
        Route("/calls/{call_id}/inject", guarded(action(inject), kind="action"), methods=["POST"]),
        Route(
            "/calls/{call_id}/transfer", guarded(action(transfer), kind="action"), methods=["POST"]
        ),
        Route("/calls/{call_id}/mode", guarded(action(mode), kind="action"), methods=["POST"]),
        Route("/calls/{call_id}/end", guarded(action(end), kind="action"), methods=["POST"]),
        Route("/history", guarded(history, kind="page"), methods=["GET"]),
        Route("/history/{call_id}", guarded(history_call, kind="page"), methods=["GET"]),
    ]
    return Starlette(routes=routes)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"
