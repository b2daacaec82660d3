"""Shared set-up for the service tests: tenant configs, an in-process service, a serve process.

Every endpoint is on 127.0.0.1 with an OS-chosen port. The service under test talks to the
two emulators through the unmodified telcoflow and google-genai clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from callbridge.bridge.config import TenantConfig, load_config
from callbridge.emulators.gemini_live import GeminiLiveEmulator
from callbridge.emulators.telcoflow import TelcoflowEmulator
from callbridge.service.serve import Service

ADMIN_TOKEN = "test-admin-token-0123456789"
API_KEY = "svc-key"
CONNECTOR = "svc-connector"
MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
REPO = Path(__file__).resolve().parents[2]

T = TypeVar("T")


async def poll_until(
    fetch: Callable[[], Awaitable[T]],
    until: Callable[[T], bool],
    timeout: float = 15.0,
    what: str = "condition",
) -> T:
    """Fetch repeatedly (e.g. over HTTP) until the value satisfies ``until``; return it."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                value = await fetch()
                if until(value):
                    return value
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def secrets_env(telco: TelcoflowEmulator, *, admin: bool = True) -> dict[str, str]:
    env = {
        "TELCOFLOW_API_KEY": telco.api_key,
        "TELCOFLOW_CONNECTOR_UUID": telco.connector_uuid,
        "TELCOFLOW_BASE_URL": telco.base_url,
        "GEMINI_API_KEY": "emulator-key",
    }
    if admin:
        env["CALLBRIDGE_ADMIN_TOKEN"] = ADMIN_TOKEN
    return env


def sections(
    gemini: GeminiLiveEmulator, *, limits: Mapping[str, Any] | None = None, tenant: str = "svc"
) -> dict[str, Any]:
    """Non-secret settings pointing at the emulators (what a tenant TOML would hold)."""
    return {
        "tenant": tenant,
        "model": {"model": MODEL, "base_url": gemini.base_url, "ca_file": str(gemini.ca_file)},
        "limits": {"drain_grace_s": 5.0, **(limits or {})},
        "service": {"http_host": "127.0.0.1", "http_port": 0, "admin_port": 0},
        "warnings": {"min_interval_s": 0.0},
    }


def service_config(
    telco: TelcoflowEmulator,
    gemini: GeminiLiveEmulator,
    *,
    limits: Mapping[str, Any] | None = None,
    admin: bool = True,
) -> TenantConfig:
    return load_config(
        overrides=sections(gemini, limits=limits),
        env=secrets_env(telco, admin=admin),
        service=True,
    )


def toml_text(data: Mapping[str, Any]) -> str:
    """A tiny TOML writer for the flat sections used here (strings, numbers, booleans)."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    for name, table in tables:
        lines.append(f"\n[{name}]")
        lines.extend(f"{k} = {json.dumps(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


@dataclass
class Running:
    service: Service
    http: httpx.AsyncClient
    admin_http: httpx.AsyncClient
    """The admin API's own listener (``service.admin_port``)."""
    admin: dict[str, str] = field(
        default_factory=lambda: {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )


@contextlib.asynccontextmanager
async def running_service(config: TenantConfig) -> AsyncIterator[Running]:
    """``Service.run`` in a TaskGroup; on exit, drain it and require exit status 0."""
    service = Service(config)
    async with asyncio.TaskGroup() as group:
        task = group.create_task(service.run(), name="service-under-test")
        async with asyncio.timeout(15):
            await service.started.wait()
        base = f"http://127.0.0.1:{service.port}"
        admin_base = f"http://127.0.0.1:{service.admin_port}"
        try:
            async with (
                httpx.AsyncClient(base_url=base, timeout=10) as http,
                httpx.AsyncClient(base_url=admin_base, timeout=10) as admin_http,
            ):
                await wait_ready(http)
                yield Running(service, http, admin_http)
        finally:
            service.request_drain("test over")
    assert task.result() == 0


async def wait_ready(http: httpx.AsyncClient, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while (await http.get("/readyz")).status_code != 200:
            await asyncio.sleep(0.05)


# ── `callbridge serve` as a real process ────────────────────────────────────────────────────


class ServeProcess:
    """``python -m callbridge.service.cli serve --config FILE``; its JSON log lines are
    collected."""

    def __init__(self, config_file: Path, env: Mapping[str, str]) -> None:
        self.config_file = config_file
        self.env = {**os.environ, **env}
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self.port: int | None = None
        self.admin_port: int | None = None
        self._port_known = asyncio.Event()

    async def start(self, group: asyncio.TaskGroup) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "callbridge.service.cli",
            "serve",
            "--config",
            str(self.config_file),
            cwd=str(REPO),
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        group.create_task(self._read_logs(), name=f"serve-logs-{self.proc.pid}")

    async def _read_logs(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for raw in self.proc.stderr:
            text = raw.decode(errors="replace").rstrip()
            self.raw.append(text)
            try:
                line = json.loads(text)
            except ValueError:
                continue
            if isinstance(line, dict):
                self.lines.append(line)
                # With service.workers > 1 the workers log their own (loopback) start too.
                if line.get("event") == "service_started" and "worker" not in line:
                    self.port = int(line["http_port"])
                    self.admin_port = int(line["admin_port"])
                    self._port_known.set()
        self._port_known.set()

    async def wait_started(self, timeout: float = 30.0) -> httpx.AsyncClient:
        async with asyncio.timeout(timeout):
            await self._port_known.wait()
        if self.port is None:
            raise AssertionError("serve exited before starting:\n" + "\n".join(self.raw[-30:]))
        return httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def admin_client(self) -> httpx.AsyncClient:
        """A client for the admin API's listener (after :meth:`wait_started`)."""
        assert self.admin_port is not None
        return httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.admin_port}", timeout=10)

    def signal(self, signum: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    async def wait(self, timeout: float) -> int:
        assert self.proc is not None
        async with asyncio.timeout(timeout):
            return await self.proc.wait()

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("event") == name]

    async def kill(self) -> None:
        """Make sure the process is gone (test clean-up after a failure)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@contextlib.asynccontextmanager
async def serve_processes(*processes: ServeProcess) -> AsyncIterator[None]:
    """Start the processes; whatever happens, none is left running."""
    async with asyncio.TaskGroup() as group:
        try:
            for process in processes:
                await process.start(group)
            yield
        finally:
            for process in processes:
                await process.kill()
