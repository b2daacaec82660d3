"""The service's HTTP face: probes, metrics and the operator's admin API, on one port.

- ``GET /healthz``: the event loop answers, so the process is alive (liveness).
- ``GET /readyz``: 200 only while connected to Telcoflow, not draining and under capacity;
  otherwise 503 with a JSON ``reason``. Calls arrive over Telcoflow's WebSocket, not through
  a Kubernetes Service, so readiness is what operators and rollouts watch, not a router.
- ``GET /metrics``: Prometheus text from this bridge's own registry.
- Admin API (``Authorization: Bearer <service.admin_token>``): ``GET /calls``,
  ``POST /calls/{call_id}/inject`` ``{"text": ...}``, ``POST /calls/{call_id}/end``.
  401 for a missing or wrong token, 404 for an unknown call, 503 when no token is
  configured (the admin API is then off, rather than open).

The app is built from the bridge's state by :func:`create_http_app`, and served by uvicorn
inside the service's own event loop (see ``callbridge.service.serve``).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

import structlog
from callbridge.service.campaigns import CampaignPolicy
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from callbridge.adapters.http_calls import Dialer, outbound_routes
from callbridge.bridge.call import BridgedCall
from callbridge.bridge.record import mask_number
from callbridge.bridge.warnings import WarningCode
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
    """Everything the HTTP app reads; nothing here is owned by it."""

    source: CallSourceStatus
    live: Mapping[str, BridgedCall]
    metrics: BridgeMetrics
    admin_token: str | None
    max_concurrent_calls: int
    full_numbers: bool = False
    dialer: Dialer | None = None
    """Outbound calls (``POST /calls``); ``None`` when the tenant does not dial."""
    campaign_policy: CampaignPolicy | None = None


class InjectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_INJECT_CHARS)
    ]


def readiness(source: CallSourceStatus) -> str | None:
    """``None`` when ready, else the reason (first failing condition, most important first)."""
    if source.draining:
        return "draining"
    if not source.connected:
        return "telcoflow_not_connected"
    if not source.has_capacity():
        return "at_capacity"
    return None


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def _error(status: int, error: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, **extra}, status_code=status)


def create_http_app(deps: HttpDeps) -> Starlette:
    """The Starlette app for one bridge process."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        reason = readiness(deps.source)
        body = {
            "ready": reason is None,
            "active_calls": deps.source.active_calls,
            "max_concurrent_calls": deps.max_concurrent_calls,
        }
        if reason is None:
            return JSONResponse(body)
        return JSONResponse({**body, "reason": reason}, status_code=503)

    async def metrics(_: Request) -> Response:
        return Response(deps.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    def refuse(request: Request) -> Response | None:
        """The admin API's gate: ``None`` lets the request through."""
        if not deps.admin_token:
            return _error(503, "admin API disabled: set CALLBRIDGE_ADMIN_TOKEN to enable it")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        expected = deps.admin_token.encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            return JSONResponse(
                {"error": "missing or invalid bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="callbridge-admin"'},
            )
        return None

    def live_call(request: Request) -> tuple[BridgedCall | None, Response | None]:
        denied = refuse(request)
        if denied is not None:
            return None, denied
        call_id = request.path_params["call_id"]
        bridged = deps.live.get(call_id)
        if bridged is None:
            return None, _error(404, "no live call with this id", call_id=call_id)
        return bridged, None

    async def list_calls(request: Request) -> Response:
        denied = refuse(request)
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
        return JSONResponse({"calls": calls, "count": len(calls)})

    async def inject(request: Request) -> Response:
        bridged, denied = live_call(request)
        if bridged is None:
            assert denied is not None
            return denied
        try:
            body = InjectBody.model_validate_json(await request.body())
        except ValidationError as exc:
            problems = [
                f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
            ]
            return _error(422, 'invalid body; expected {"text": "..."}', problems=problems)
        before = {code: bridged.warner.counts.get(code, 0) for code in INJECT_REFUSALS}
        try:
            injected = await bridged.inject(body.text)
        except Exception as exc:  # the model session may be closing under us
            log.warning("inject_failed", call_id=bridged.record.call_id, error=str(exc))
            return _error(409, "the call's model session did not take the message", code=None)
        if injected:
            log.info("operator_inject", call_id=bridged.record.call_id, chars=len(body.text))
            return JSONResponse({"injected": True})
        code = next(
            (c for c in INJECT_REFUSALS if bridged.warner.counts.get(c, 0) > before[c]), None
        )
        return JSONResponse(
            {"injected": False, "code": code.value if code else None}, status_code=409
        )

    async def end(request: Request) -> Response:
        bridged, denied = live_call(request)
        if bridged is None:
            assert denied is not None
            return denied
        bridged.finish("ended_by_operator", hang_up="disconnect")
        log.info("operator_end", call_id=bridged.record.call_id)
        return JSONResponse({"ending": True, "outcome": bridged.outcome})

    routes = [
        Route(HEALTH_PATH, healthz, methods=["GET"]),
        Route(READY_PATH, readyz, methods=["GET"]),
        Route(METRICS_PATH, metrics, methods=["GET"]),
        Route("/calls", list_calls, methods=["GET"]),
        Route("/calls/{call_id}/inject", inject, methods=["POST"]),
        Route("/calls/{call_id}/end", end, methods=["POST"]),
    ]
    if deps.dialer is not None:
        routes += outbound_routes(
            deps.dialer, refuse, full_numbers=deps.full_numbers, policy=deps.campaign_policy
        )
    return Starlette(routes=routes)


def route_paths(app: Starlette) -> set[str]:
    """Every path the app serves (the deployment's probes must be among them)."""
    return {route.path for route in app.routes if isinstance(route, Route)}
