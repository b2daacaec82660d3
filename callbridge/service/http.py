"""The service's HTTP face, on two listeners: probes and metrics; the operator's admin API.

Probes and metrics (``service.http_host:http_port``, default ``0.0.0.0:8080``: the kubelet and
Prometheus must reach them), built by :func:`create_http_app`:

- ``GET /healthz``: the event loop answers, so the process is alive (liveness).
- ``GET /readyz``: 200 only while connected to Telcoflow, not draining, under capacity, the
  model reachable and the record store writing; otherwise 503 with a JSON ``reason``. Calls
  arrive over Telcoflow's WebSocket, not through a Kubernetes Service, so readiness is what
  operators and rollouts watch, not a router.
- ``GET /metrics``: Prometheus text from this bridge's own registry.

The admin API (``service.admin_host:admin_port``, default ``127.0.0.1:8081``: reach it with
``kubectl port-forward`` or a sidecar, never from the network), built by
:func:`create_admin_app` (``Authorization: Bearer <service.admin_token>``): ``GET /calls``,
``POST /calls/{call_id}/inject`` ``{"text": ...}``, ``POST /calls/{call_id}/end``.
401 for a missing or wrong token, 429 for a peer that keeps failing, 404 for an unknown
call, 503 when no token is configured (the admin API is then off, rather than open). Every
failed authentication is logged with the peer's address (at most once per interval per peer,
with a count); every admin action is audited (``admin_audit``: action, peer, token
fingerprint, call, result). More admin routes are added with
``create_admin_app(deps, extra_routes=...)``: the operator console (``/console``,
``callbridge.service.console``) is served there, with its own login and session cookie, and
counts its failed logins in the same :class:`AuthThrottle`.

Both apps are served by uvicorn inside the service's own event loop (``callbridge.service.serve``),
each behind the limits of ``callbridge.service.http_guard``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

import structlog
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from callbridge.bridge.call import BridgedCall
from callbridge.bridge.record import mask_number
from callbridge.bridge.warnings import WarningCode
from callbridge.service.campaigns import CampaignPolicy
from callbridge.service.http_calls import Dialer, outbound_routes
from callbridge.service.metrics import CONTENT_TYPE_LATEST, BridgeMetrics

log = structlog.get_logger("callbridge.http")

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"

MAX_INJECT_CHARS = 2000
"""An injected message is a sentence for the agent to say, not a new prompt."""

INJECT_REFUSALS = (
    WarningCode.INJECT_MESSAGE_DURING_USER_SPEECH,
    WarningCode.INJECT_MESSAGE_DURING_AGENT_SPEECH,
)


class CallSourceStatus(Protocol):
    """What readiness needs to know about the call source (``TelcoflowCallSource``)."""

    @property
    def connected(self) -> bool: ...

    @property
    def draining(self) -> bool: ...

    @property
    def active_calls(self) -> int: ...

    def has_capacity(self) -> bool: ...


@dataclass(frozen=True)
class HttpDeps:
    """Everything the HTTP apps read; nothing here is owned by them."""

    source: CallSourceStatus
    live: Mapping[str, BridgedCall]
    metrics: BridgeMetrics
    admin_token: str | None
    max_concurrent_calls: int
    full_numbers: bool = False
    unready: Sequence[Callable[[], str | None]] = ()
    """More readiness checks (model reachability): each a reason or ``None``."""
    store_health: Callable[[], Mapping[str, Any]] | None = None
    """The record writer's state, shown in ``/readyz``. Not a readiness condition: the store is
    shared, so an outage would make every replica unready and no call would be answered;
    calls go on and entries queue (bounded) meanwhile."""
    dialer: Dialer | None = None
    """Outbound calls (``POST /calls``); ``None`` when the tenant does not dial."""
    campaign_policy: CampaignPolicy | None = None


class AuthThrottle:
    """Failed admin authentications per peer: logged (rate-limited) and, past a bound, refused.

    A peer with ``max_failures`` failures inside ``window_s`` gets 429 without its token being
    looked at until the window has passed. At most ``max_peers`` peers are remembered (the
    oldest forgotten first), so a spray of addresses cannot grow memory.
    """

    def __init__(
        self,
        *,
        max_failures: int = 10,
        window_s: float = 60.0,
        log_interval_s: float = 10.0,
        max_peers: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.log_interval_s = log_interval_s
        self.max_peers = max_peers
        self._clock = clock
        self._peers: OrderedDict[str, _PeerFailures] = OrderedDict()
        self.failures = 0
        self.throttled = 0

    def blocked(self, peer: str) -> bool:
        state = self._peers.get(peer)
        if state is None:
            return False
        if self._clock() - state.first >= self.window_s:
            del self._peers[peer]
            return False
        if state.count >= self.max_failures:
            self.throttled += 1
            return True
        return False

    def failed(self, peer: str, path: str, why: str) -> None:
        now = self._clock()
        self.failures += 1
        state = self._peers.pop(peer, None)
        if state is None or now - state.first >= self.window_s:
            state = _PeerFailures(first=now)
        state.count += 1
        state.unlogged += 1
        self._peers[peer] = state
        while len(self._peers) > self.max_peers:
            self._peers.popitem(last=False)
        if now - state.last_log >= self.log_interval_s:
            state.last_log = now
            log.warning(
                "admin_auth_failed",
                peer=peer,
                path=path,
                why=why,
                failures=state.unlogged,
                throttled=state.count >= self.max_failures,
            )
            state.unlogged = 0


@dataclass
class _PeerFailures:
    first: float
    count: int = 0
    unlogged: int = 0
    last_log: float = field(default=float("-inf"))


def peer_of(request: Request) -> str:
    client = request.client
    return f"{client.host}:{client.port}" if client else "unknown"


def token_fingerprint(token: str) -> str:
    """Who acted, without the secret: the first 8 hex digits of the token's SHA-256."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:8]


class AdminGate:
    """The admin API's authentication: one bearer token, throttled failures, audited actions."""

    def __init__(self, token: str | None, throttle: AuthThrottle | None = None) -> None:
        self.token = token
        self.throttle = throttle or AuthThrottle()
        self.actor = token_fingerprint(token) if token else "nobody"

    def check(self, request: Request) -> Response | None:
        """``None`` lets the request through; otherwise the response to send."""
        if not self.token:
            return _error(503, "admin API disabled: set CALLBRIDGE_ADMIN_TOKEN to enable it")
        peer = request.client.host if request.client else "unknown"
        if self.throttle.blocked(peer):
            return _error(429, "too many failed authentications; try again later")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        expected = self.token.encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            self.throttle.failed(
                peer, request.url.path, "no bearer token" if not given else "wrong token"
            )
            return JSONResponse(
                {"error": "missing or invalid bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="callbridge-admin"'},
            )
        return None

    def audit(self, request: Request, action: str, result: str, **details: Any) -> None:
        """One line per admin action: what, by whom (token fingerprint), from where, result."""
        log.info(
            "admin_audit",
            action=action,
            actor=self.actor,
            peer=peer_of(request),
            result=result,
            **details,
        )


class InjectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_INJECT_CHARS)
    ]


def readiness(
    source: CallSourceStatus, unready: Sequence[Callable[[], str | None]] = ()
) -> str | None:
    """``None`` when ready, else the reason (first failing condition, most important first)."""
    if source.draining:
        return "draining"
    if not source.connected:
        return "telcoflow_not_connected"
    for check in unready:
        reason = check()
        if reason is not None:
            return reason
    if not source.has_capacity():
        return "at_capacity"
    return None


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def _error(status: int, error: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, **extra}, status_code=status)


def create_http_app(deps: HttpDeps) -> Starlette:
    """Probes and metrics for one bridge process (no admin route: see :func:`create_admin_app`)."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        reason = readiness(deps.source, deps.unready)
        body: dict[str, Any] = {
            "ready": reason is None,
            "active_calls": deps.source.active_calls,
            "max_concurrent_calls": deps.max_concurrent_calls,
        }
        if deps.store_health is not None:
            body["store"] = dict(deps.store_health())
        if reason is None:
            return JSONResponse(body)
        return JSONResponse({**body, "reason": reason}, status_code=503)

    async def metrics(_: Request) -> Response:
        return Response(deps.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route(HEALTH_PATH, healthz, methods=["GET"]),
            Route(READY_PATH, readyz, methods=["GET"]),
            Route(METRICS_PATH, metrics, methods=["GET"]),
        ]
    )


def create_admin_app(
    deps: HttpDeps,
    *,
    gate: AdminGate | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The operator's admin API; ``extra_routes`` (e.g. a console) share its listener.

    Extra routes do their own authentication with ``app.state.gate.check(request)`` (the
    same :class:`AdminGate`, so failures are throttled and logged in one place).
    """
    gate = gate or AdminGate(deps.admin_token)

    def live_call(request: Request) -> tuple[BridgedCall | None, Response | None]:
        denied = gate.check(request)
        if denied is not None:
            return None, denied
        call_id = request.path_params["call_id"]
        bridged = deps.live.get(call_id)
        if bridged is None:
            return None, _error(404, "no live call with this id", call_id=call_id)
        return bridged, None

    async def list_calls(request: Request) -> Response:
        denied = gate.check(request)
        if denied is not None:
            return denied
        calls = []
        for call_id, bridged in list(deps.live.items()):
            record = bridged.record
            calls.append(
                {
                    "call_id": call_id,
                    "caller": mask_number(record.caller, full=deps.full_numbers),
                    "started_at": _iso(record.started_at),
                    "answered_at": _iso(record.answered_at),
                    "duration_s": round(record.elapsed(), 1),
                    "outcome": bridged.outcome,
                    "agent_speaking": bridged.agent_speaking,
                    "interrupts": bridged.stats.interrupts,
                }
            )
        gate.audit(request, "list_calls", "ok", count=len(calls))
        return JSONResponse({"calls": calls, "count": len(calls)})

    async def inject(request: Request) -> Response:
        bridged, denied = live_call(request)
        if bridged is None:
            assert denied is not None
            if denied.status_code == 404:
                gate.audit(
                    request, "inject", "unknown_call", call_id=request.path_params["call_id"]
                )
            return denied
        call_id = bridged.record.call_id
        try:
            body = InjectBody.model_validate_json(await request.body())
        except ValidationError as exc:
            problems = [
                f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
            ]
            gate.audit(request, "inject", "invalid_body", call_id=call_id)
            return _error(422, 'invalid body; expected {"text": "..."}', problems=problems)
        before = {code: bridged.warner.counts.get(code, 0) for code in INJECT_REFUSALS}
        try:
            injected = await bridged.inject(body.text)
        except Exception as exc:  # the model session may be closing under us
            log.warning("inject_failed", call_id=call_id, error=str(exc))
            gate.audit(request, "inject", "failed", call_id=call_id)
            return _error(409, "the call's model session did not take the message", code=None)
        if injected:
            gate.audit(request, "inject", "ok", call_id=call_id, chars=len(body.text))
            return JSONResponse({"injected": True})
        code = next(
            (c for c in INJECT_REFUSALS if bridged.warner.counts.get(c, 0) > before[c]), None
        )
        gate.audit(request, "inject", "refused", call_id=call_id, code=code.value if code else None)
        return JSONResponse(
            {"injected": False, "code": code.value if code else None}, status_code=409
        )

    async def end(request: Request) -> Response:
        bridged, denied = live_call(request)
        if bridged is None:
            assert denied is not None
            if denied.status_code == 404:
                gate.audit(request, "end", "unknown_call", call_id=request.path_params["call_id"])
            return denied
        bridged.finish("ended_by_operator", hang_up="disconnect")
        gate.audit(request, "end", "ok", call_id=bridged.record.call_id)
        return JSONResponse({"ending": True, "outcome": bridged.outcome})

    routes: list[BaseRoute] = [
        Route("/calls", list_calls, methods=["GET"]),
        Route("/calls/{call_id}/inject", inject, methods=["POST"]),
        Route("/calls/{call_id}/end", end, methods=["POST"]),
        *extra_routes,
    ]
    if deps.dialer is not None:
        routes += outbound_routes(
            deps.dialer, gate, full_numbers=deps.full_numbers, policy=deps.campaign_policy
        )
    app = Starlette(routes=routes)
    app.state.gate = gate
    return app


def route_paths(app: Starlette) -> set[str]:
    """Every path the app serves (the deployment's probes must be among them)."""
    return {route.path for route in app.routes if isinstance(route, Route)}
