"""A running service with a record store and the console, and helpers to use it over HTTP.

The service runs in the test's event loop against both emulators (unmodified SDKs, real
sockets); requests go over a real socket to the console under ``/console`` on the admin
listener (``service.admin_port``), where ``callbridge.service.serve`` mounts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from callbridge.bridge.config import load_config
from callbridge.emulators.gemini_live import GeminiLiveEmulator
from callbridge.emulators.telcoflow import TelcoflowEmulator
from callbridge.service.console import auth
from callbridge.service.serve import Service
from callbridge.service.store import RecordStore
from tests.service.helpers import ADMIN_TOKEN, secrets_env, sections, wait_ready

BASE = "/console"


@dataclass
class Console:
    service: Service
    store: RecordStore
    http: httpx.AsyncClient
    """A client of the admin listener, where the console is."""
    url: str
    probes: httpx.AsyncClient
    """A client of the probes and metrics listener (``service.http_port``)."""

    async def login(self, operator: str = "Ada Lovelace") -> dict[str, str]:
        """Log in as ``operator``; returns the headers that carry the session cookie."""
        response = await self.http.post(
            f"{BASE}/login", data={"operator": operator, "token": ADMIN_TOKEN}
        )
        assert response.status_code == 303, response.text
        cookie = response.headers["set-cookie"]
        value = cookie.split(";", 1)[0].split("=", 1)[1]
        return {"Cookie": f"{auth.COOKIE_NAME}={value}"}

    async def csrf(self, headers: dict[str, str]) -> str:
        page = await self.http.get(f"{BASE}/", headers=headers)
        marker = '<meta name="csrf-token" content="'
        start = page.text.index(marker) + len(marker)
        return page.text[start : page.text.index('"', start)]


@contextlib.asynccontextmanager
async def console_service(
    telco: TelcoflowEmulator,
    gemini: GeminiLiveEmulator,
    tmp_path: Path,
    *,
    full_numbers: bool = False,
    admin: bool = True,
    tools: dict[str, Any] | None = None,
    outbound: dict[str, Any] | None = None,
) -> AsyncIterator[Console]:
    """``Service.run`` with a SQLite record store; drained on exit (exit status 0)."""
    tmp_path.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before serving
    overrides = sections(gemini)
    overrides["service"] = {
        **overrides["service"],
        "records_url": f"sqlite+aiosqlite:///{tmp_path / 'records.db'}",
        "log_full_numbers": full_numbers,
    }
    if tools:
        overrides["tools"] = tools
    if outbound:
        overrides["outbound"] = outbound
    config = load_config(overrides=overrides, env=secrets_env(telco, admin=admin), service=True)
    async with RecordStore(config.service.records_url, full_numbers=full_numbers) as store:
        service = Service(config, store=store)
        async with asyncio.TaskGroup() as group:
            task = group.create_task(service.run(), name="service-under-test")
            async with asyncio.timeout(15):
                await service.started.wait()
            url = f"http://127.0.0.1:{service.admin_port}"
            probes_url = f"http://127.0.0.1:{service.port}"
            try:
                async with (
                    httpx.AsyncClient(base_url=url, timeout=10) as http,
                    httpx.AsyncClient(base_url=probes_url, timeout=10) as probes,
                ):
                    await wait_ready(probes)
                    yield Console(service, store, http, url, probes)
            finally:
                service.request_drain("test over")
        assert task.result() == 0


async def sse_events(
    http: httpx.AsyncClient,
    path: str,
    headers: dict[str, str],
    until: Any,
    timeout: float = 20.0,
) -> list[tuple[str, Any]]:
    """Read server-sent events from ``path`` until ``until(events)`` holds; return them."""
    events: list[tuple[str, Any]] = []
    async with asyncio.timeout(timeout), http.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        name = "message"
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
                if until(events):
                    return events
    return events
