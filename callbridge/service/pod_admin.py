"""The pod's one admin API and console, over the workers of ``service.workers``.

Served by the supervisor (:mod:`callbridge.service.supervisor`) on ``service.admin_host:
admin_port``; every request is answered by a worker's own admin listener (loopback):

- ``GET /calls`` asks every worker and merges the lists (each call carries its ``worker``);
  ``workers_missing`` names those that did not answer (restarting).
- Per-call actions (``POST /calls/{id}/inject|end``) and console pages go to the worker that
  owns the call (the workers report their live calls over their links); a call too new to
  be reported is asked of each worker in turn.
- ``POST /calls`` goes to the worker with the most free capacity, ``GET /dials/{id}`` to the
  worker that placed the dial; campaigns and the rest of the console to worker 0.
- The console's live table (``/console/stream``) follows every worker's stream and sends one
  merged list whenever any of them changes.

The supervisor checks the bearer token itself (the same :class:`~callbridge.service.http.
AdminGate`) before anything is forwarded; the console's session cookie is checked by the
workers (it is stateless, signed with a key derived from the token). Each forwarded request
carries ``X-Forwarded-For``, which the workers' uvicorn trusts from 127.0.0.1, so audits and
authentication throttles see the real client. Every relayed answer says which worker gave it
(``X-Callbridge-Worker``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route

from callbridge.service.console import CONSOLE_PATH
from callbridge.service.http import AdminGate
from callbridge.service.metrics_merge import Families
from callbridge.service.workers import RestartBackoff, WorkerState

log = structlog.get_logger("callbridge.supervisor")

MAX_REMEMBERED_DIALS = 4096
WORKER_HEADER = "X-Callbridge-Worker"
"""On every answer the admin listener relays: which worker gave it."""
CONSOLE_RETRY_S = 1.0
"""A merged console stream reopens a worker's stream this long after it ended (restart)."""
CONSOLE_KEEPALIVE_S = 15.0
FORWARDED_REQUEST_HEADERS = (
    "authorization",
    "content-type",
    "cookie",
    "accept",
    "x-csrf-token",
    # The console compares Origin with Host (same-origin checks): the browser's, unchanged.
    "host",
    "origin",
    "referer",
)
FORWARDED_RESPONSE_HEADERS = (
    "content-type",
    "set-cookie",
    "location",
    "cache-control",
    "www-authenticate",
    "retry-after",
    "x-content-type-options",
    "content-security-policy",
    "referrer-policy",
    "x-frame-options",
)


@dataclass
class Slot:
    """One worker position: the process in it now, and what outlives its restarts."""

    index: int
    max_calls: int
    proc: asyncio.subprocess.Process | None = None
    http: httpx.AsyncClient | None = None
    admin: httpx.AsyncClient | None = None
    calls: set[str] = field(default_factory=set)
    state: WorkerState = field(default_factory=lambda: WorkerState(running=False))
    ever_ready: bool = False
    started_at: float = 0.0
    backoff: RestartBackoff = field(default_factory=RestartBackoff)
    last_metrics: Families = field(default_factory=dict)
    retired: Families = field(default_factory=dict)
    """Counters of this slot's dead workers, as last scraped (kept so sums never go back)."""

    @property
    def serving(self) -> bool:
        return self.http is not None and self.admin is not None


class PodAdmin:
    """The admin listener's app: authenticate, then fan out or route to a worker."""

    def __init__(self, slots: Sequence[Slot], admin_token: str | None) -> None:
        self.slots = slots
        self.admin_token = admin_token
        self.gate = AdminGate(admin_token)
        self.dials: OrderedDict[str, int] = OrderedDict()

    def app(self) -> Starlette:
        routes: list[BaseRoute] = [
            Route("/calls", self._list_calls, methods=["GET"]),
            Route("/calls", self._place_call, methods=["POST"]),
            Route("/calls/{call_id}/{action}", self._call_action, methods=["POST"]),
            Route("/dials/{dial_id}", self._dial_status, methods=["GET"]),
            Route("/campaigns", self._to_first, methods=["POST"]),
            Route("/campaigns/{cid}", self._to_first, methods=["GET"]),
            Mount(CONSOLE_PATH, routes=self._console_routes()),
        ]
        return Starlette(routes=routes)

    def _serving(self) -> list[Slot]:
        return [slot for slot in self.slots if slot.serving]

    async def _list_calls(self, request: Request) -> Response:
        denied = self.gate.check(request)
        if denied is not None:
            return denied

        async def ask(slot: Slot) -> list[dict[str, Any]] | None:
            assert slot.admin is not None
            try:
                response = await slot.admin.get("/calls", headers=self._bearer())
                response.raise_for_status()
                calls: list[dict[str, Any]] = response.json()["calls"]
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                log.warning("worker_calls_unavailable", worker=slot.index, error=repr(exc))
                return None
            return [{**call, "worker": slot.index} for call in calls]

        serving = self._serving()
        answers = await asyncio.gather(*(ask(slot) for slot in serving))
        calls = [call for answer in answers if answer is not None for call in answer]
        missing = [
            slot.index
            for slot in self.slots
            if slot not in serving or answers[serving.index(slot)] is None
        ]
        self.gate.audit(request, "list_calls", "ok", count=len(calls), workers_missing=missing)
        return JSONResponse({"calls": calls, "count": len(calls), "workers_missing": missing})

    async def _call_action(self, request: Request) -> Response:
        denied = self.gate.check(request)
        if denied is not None:
            return denied
        call_id = request.path_params["call_id"]
        return await self._to_owner(request, call_id, request.url.path)

    async def _place_call(self, request: Request) -> Response:
        denied = self.gate.check(request)
        if denied is not None:
            return denied
        candidates = [s for s in self._serving() if s.state.reason in (None, "at_capacity")]
        if not candidates:
            return JSONResponse({"error": "no worker is ready to place a call"}, 503)
        slot = max(candidates, key=lambda s: s.max_calls - s.state.active_calls)
        body = await request.body()
        response = await self._forward(request, slot, request.url.path, body)
        if response.status_code == 202:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self.dials[str(json.loads(bytes(response.body))["dial_id"])] = slot.index
                while len(self.dials) > MAX_REMEMBERED_DIALS:
                    self.dials.popitem(last=False)
        return response

    async def _dial_status(self, request: Request) -> Response:
        denied = self.gate.check(request)
        if denied is not None:
            return denied
        index = self.dials.get(request.path_params["dial_id"])
        slot = self.slots[index] if index is not None else None
        if slot is None or not slot.serving:
            return await self._first_that_knows(request, request.url.path, self._serving())
        return await self._forward(request, slot, request.url.path, b"")

    async def _to_first(self, request: Request) -> Response:
        denied = self.gate.check(request)
        if denied is not None:
            return denied
        return await self._to_slot(request, self.slots[0], request.url.path)

    async def _to_slot(self, request: Request, slot: Slot, path: str) -> Response:
        if not slot.serving:
            return JSONResponse({"error": f"worker {slot.index} is restarting"}, 503)
        return await self._forward(request, slot, path, await request.body())

    async def _to_owner(self, request: Request, call_id: str, path: str) -> Response:
        """The call's worker, by the workers' reports; a call too new for a report: asked."""
        owner = next((s for s in self._serving() if call_id in s.calls), None)
        if owner is not None:
            return await self._forward(request, owner, path, await request.body())
        return await self._first_that_knows(request, path, self._serving())

    async def _first_that_knows(
        self, request: Request, path: str, slots: Sequence[Slot]
    ) -> Response:
        body = await request.body()
        last: Response = JSONResponse({"error": "not found on any worker"}, 404)
        for slot in slots:
            last = await self._forward(request, slot, path, body)
            if last.status_code != 404:
                return last
        return last

    def _bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"} if self.admin_token else {}

    async def _forward(self, request: Request, slot: Slot, path: str, body: bytes) -> Response:
        """One request to one worker's admin listener; its answer, as it came."""
        assert slot.admin is not None
        try:
            answer = await slot.admin.request(
                request.method,
                path,
                params=request.query_params,
                content=body,
                headers=_request_headers(request),
            )
        except httpx.HTTPError as exc:
            log.warning("worker_unreachable", worker=slot.index, path=path, error=repr(exc))
            return JSONResponse({"error": f"worker {slot.index} did not answer"}, 502)
        relayed = _relayed(Response(answer.content, status_code=answer.status_code), answer)
        relayed.headers[WORKER_HEADER] = str(slot.index)
        return relayed

    # ── Console ──────────────────────────────────────────────────────────────────────

    def _console_routes(self) -> list[BaseRoute]:
        async def per_call(request: Request) -> Response:
            call_id = request.path_params["call_id"]
            path = request.url.path
            if path.endswith("/stream"):
                owner = next((s for s in self._serving() if call_id in s.calls), None)
                return await self._stream(request, owner or self.slots[0], path)
            return await self._to_owner(request, call_id, path)

        async def live_stream(request: Request) -> Response:
            return await self._merged_live_stream(request)

        async def rest(request: Request) -> Response:
            return await self._to_slot(request, self.slots[0], request.url.path)

        methods = ["GET", "POST"]
        return [
            Route("/calls/{call_id}", per_call, methods=methods),
            Route("/calls/{call_id}/{rest:path}", per_call, methods=methods),
            Route("/stream", live_stream, methods=["GET"]),
            Route("/{rest:path}", rest, methods=methods),
        ]

    async def _merged_live_stream(self, request: Request) -> Response:
        """The live-calls table's stream over every worker: each worker's own stream is
        followed (with the operator's session cookie, so each worker checks it) and every
        change to any of them is sent as one ``calls`` event listing all workers' calls."""
        first = self.slots[0]
        if first.admin is None:
            return JSONResponse({"error": f"worker {first.index} is restarting"}, 503)
        path = request.url.path
        headers = _request_headers(request)
        # Worker 0 answers the session check (401, 503 when streams are full) as it would.
        probe = await first.admin.send(
            first.admin.build_request("GET", path, headers=headers), stream=True
        )
        if probe.status_code != 200:
            await probe.aread()
            await probe.aclose()
            return _relayed(Response(probe.content, status_code=probe.status_code), probe)
        await probe.aclose()  # only its answer matters here; the followers open their own
        latest: dict[int, list[Any]] = {}
        changed = asyncio.Event()

        async def follow(slot: Slot) -> None:
            opened: httpx.Response | None = None
            while True:
                try:
                    if opened is None:
                        client = slot.admin
                        if client is None:
                            await asyncio.sleep(CONSOLE_RETRY_S)
                            continue
                        opened = await client.send(
                            client.build_request("GET", path, headers=headers), stream=True
                        )
                    if opened.status_code == 200:
                        async for rows in _sse_calls(opened):
                            latest[slot.index] = [{**row, "worker": slot.index} for row in rows]
                            changed.set()
                except httpx.HTTPError:
                    pass
                finally:
                    if opened is not None:
                        await opened.aclose()
                    opened = None
                if latest.pop(slot.index, None) is not None:
                    changed.set()
                await asyncio.sleep(CONSOLE_RETRY_S)

        async def body() -> AsyncIterator[str]:
            async with asyncio.TaskGroup() as group:
                followers = [group.create_task(follow(slot)) for slot in self.slots]
                try:
                    while True:
                        try:
                            async with asyncio.timeout(CONSOLE_KEEPALIVE_S):
                                await changed.wait()
                        except TimeoutError:
                            yield ": keepalive\n\n"
                            continue
                        changed.clear()
                        merged = [row for i in sorted(latest) for row in latest[i]]
                        yield f"event: calls\ndata: {json.dumps(merged, default=str)}\n\n"
                finally:
                    for follower in followers:
                        follower.cancel()

        relay = StreamingResponse(body(), media_type="text/event-stream")
        return _relayed(relay, probe)

    async def _stream(self, request: Request, slot: Slot, path: str) -> Response:
        """A console event stream, relayed as it comes (server-sent events never end)."""
        if slot.admin is None:
            return JSONResponse({"error": f"worker {slot.index} is restarting"}, 503)
        client = slot.admin
        upstream = await client.send(
            client.build_request(
                "GET", path, params=request.query_params, headers=_request_headers(request)
            ),
            stream=True,
        )
        relay = StreamingResponse(
            upstream.aiter_raw(),
            status_code=upstream.status_code,
            background=BackgroundTask(upstream.aclose),
        )
        return _relayed(relay, upstream)


def _request_headers(request: Request) -> dict[str, str]:
    headers = {k: request.headers[k] for k in FORWARDED_REQUEST_HEADERS if k in request.headers}
    client = request.client
    if client is not None:
        headers["x-forwarded-for"] = client.host
    return headers


async def _sse_calls(response: httpx.Response) -> AsyncIterator[list[Any]]:
    """The ``calls`` events of a console live stream, each its list of rows."""
    event, data = "", []
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())
        elif not line:
            if event == "calls" and data:
                rows = json.loads("\n".join(data))
                if isinstance(rows, list):
                    yield rows
            event, data = "", []


def _relayed(response: Response, answer: httpx.Response) -> Response:
    """``response`` with the worker's headers that matter to the client (every Set-Cookie)."""
    response.raw_headers.extend(
        (key.lower().encode("latin-1"), value.encode("latin-1"))
        for key, value in answer.headers.multi_items()
        if key.lower() in FORWARDED_RESPONSE_HEADERS
    )
    return response
