"""``POST /calls`` (place a call) and ``GET /dials/{id}`` (its outcome) for the admin API.

The handler only checks the request and starts the dial in the bridge's TaskGroup
(``BridgeApp.start_dial``): a call lasts minutes, an HTTP request must not. The outcome is on
``GET /dials/{id}``, in the call record and in the webhook, as for every call.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from callbridge.bridge.errors import ConfigError
from callbridge.bridge.outbound import DialResult
from callbridge.bridge.record import mask_number
from callbridge.service.campaigns import CampaignPolicy, CampaignStore, parse_batch


class Dialer(Protocol):
    """What the routes need (``callbridge.service.app.BridgeApp`` provides it)."""

    @property
    def dials(self) -> Mapping[str, DialResult | None]: ...

    @property
    def campaign_store(self) -> CampaignStore | None: ...

    def start_dial(
        self,
        to: str,
        *,
        variables: Mapping[str, str] | None = None,
        instruction: str | None = None,
    ) -> str: ...


class CampaignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: Annotated[str, Field(min_length=1, max_length=20_000_000)]
    """The file's text: CSV (header with ``number``) or JSON lines."""
    format: Literal["csv", "jsonl"] = "csv"
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] | None = None
    skip_bad: bool = False


class PlaceCallBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str
    variables: dict[str, str] = Field(default_factory=dict)
    instruction: Annotated[str, Field(min_length=1, max_length=25_000)] | None = None


class Gate(Protocol):
    """The admin API's authentication and audit (``callbridge.service.http.AdminGate``)."""

    def check(self, request: Request) -> Response | None: ...

    def audit(self, request: Request, action: str, result: str, **details: object) -> None: ...


def outbound_routes(
    dialer: Dialer,
    gate: Gate,
    *,
    full_numbers: bool,
    policy: CampaignPolicy | None = None,
) -> list[Route]:
    policy = policy or CampaignPolicy()

    async def place_call(request: Request) -> Response:
        denied = gate.check(request)
        if denied is not None:
            return denied
        try:
            body = PlaceCallBody.model_validate_json(await request.body())
        except ValidationError as exc:
            problems = [
                f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
            ]
            return JSONResponse({"error": "invalid body", "problems": problems}, status_code=422)
        try:
            dial_id = dialer.start_dial(
                body.to, variables=body.variables, instruction=body.instruction
            )
        except ConfigError as exc:
            gate.audit(request, "place_call", "refused", error=str(exc))
            return JSONResponse(
                {"error": "call not placed", "problems": str(exc).split("; ")}, status_code=422
            )
        to = mask_number(body.to, full=full_numbers)
        gate.audit(request, "place_call", "ok", dial_id=dial_id, to=to)
        return JSONResponse({"dial_id": dial_id, "to": to, "status": "dialling"}, 202)

    async def dial_status(request: Request) -> Response:
        denied = gate.check(request)
        if denied is not None:
            return denied
        dial_id = request.path_params["dial_id"]
        if dial_id not in dialer.dials:
            return JSONResponse({"error": "no dial with this id", "dial_id": dial_id}, 404)
        result = dialer.dials[dial_id]
        if result is None:
            return JSONResponse({"dial_id": dial_id, "status": "dialling"})
        body = result.as_dict()
        body["to"] = mask_number(result.to, full=full_numbers)
        return JSONResponse({"dial_id": dial_id, "status": "done", **body})

    async def submit_campaign(request: Request) -> Response:
        denied = gate.check(request)
        if denied is not None:
            return denied
        store = dialer.campaign_store
        if store is None:
            return JSONResponse({"error": "campaigns are off (campaigns.enabled)"}, 404)
        try:
            body = CampaignBody.model_validate_json(await request.body())
        except ValidationError as exc:
            problems = [
                f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
            ]
            return JSONResponse({"error": "invalid body", "problems": problems}, status_code=422)
        rows, problems = parse_batch(body.rows, body.format)
        if problems and not body.skip_bad:
            return JSONResponse({"error": "bad rows", "problems": problems}, status_code=422)
        campaign_id = body.id or f"camp-{secrets.token_hex(4)}"
        added = await store.submit(campaign_id, rows, policy)
        gate.audit(request, "submit_campaign", "ok", campaign_id=campaign_id, added=added)
        return JSONResponse(
            {"campaign_id": campaign_id, "rows": len(rows), "added": added, "problems": problems},
            201,
        )

    async def campaign_status(request: Request) -> Response:
        denied = gate.check(request)
        if denied is not None:
            return denied
        store = dialer.campaign_store
        status = None if store is None else await store.status(request.path_params["cid"])
        if status is None:
            return JSONResponse({"error": "no such campaign"}, 404)
        return JSONResponse(status)

    return [
        Route("/campaigns", submit_campaign, methods=["POST"]),
        Route("/campaigns/{cid}", campaign_status, methods=["GET"]),
        Route("/calls", place_call, methods=["POST"]),
        Route("/dials/{dial_id}", dial_status, methods=["GET"]),
    ]
