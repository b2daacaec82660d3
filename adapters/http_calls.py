"""``POST /calls`` (place a call) and ``GET /dials/{id}`` (its outcome) for the admin API.

The handler only checks the request and starts the dial in the bridge's TaskGroup
(``BridgeApp.start_dial``): a call lasts minutes, an HTTP request must not. The outcome is on
``GET /dials/{id}``, in the call record and in the webhook, as for every call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.errors import ConfigError
from bridge.outbound import DialResult
from bridge.record import mask_number


class Dialer(Protocol):
    """What the routes need (``adapters.app.BridgeApp`` provides it)."""

    @property
    def dials(self) -> Mapping[str, DialResult | None]: ...

    def start_dial(
        self,
        to: str,
        *,
        variables: Mapping[str, str] | None = None,
        instruction: str | None = None,
    ) -> str: ...


class PlaceCallBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str
    variables: dict[str, str] = Field(default_factory=dict)
    instruction: Annotated[str, Field(min_length=1, max_length=25_000)] | None = None


def outbound_routes(
    dialer: Dialer, refuse: Callable[[Request], Response | None], *, full_numbers: bool
) -> list[Route]:
    async def place_call(request: Request) -> Response:
        denied = refuse(request)
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
            return JSONResponse(
                {"error": "call not placed", "problems": str(exc).split("; ")}, status_code=422
            )
        to = mask_number(body.to, full=full_numbers)
        return JSONResponse({"dial_id": dial_id, "to": to, "status": "dialling"}, 202)

    async def dial_status(request: Request) -> Response:
        denied = refuse(request)
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

    return [
        Route("/calls", place_call, methods=["POST"]),
        Route("/dials/{dial_id}", dial_status, methods=["GET"]),
    ]
