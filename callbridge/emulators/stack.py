"""Both emulators plus a real bridge, wired together on 127.0.0.1.

The demo, the end-to-end tests and the benchmark all need the same thing: a Telcoflow
emulator, a Gemini Live emulator (TLS), and a ``BridgeApp`` configured to reach them with the
unmodified SDKs. :class:`LocalStack` builds that in one ``async with``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from callbridge.bridge.config import TenantConfig, load_config
from callbridge.bridge.record import RecordListener
from callbridge.emulators.gemini_live import GeminiLiveEmulator, Script
from callbridge.emulators.telcoflow import (
    CallerScript,
    ConnectOutcome,
    EmulatedCall,
    TelcoflowEmulator,
)
from callbridge.service.app import BridgeApp
from callbridge.service.delivery import WarningHandler, log_warning

DEFAULT_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
"""The model most of the test suite was written against (the demo runs the product default,
``callbridge.bridge.models.DEFAULT_MODEL``; the model matrix in tests/e2e runs every family)."""
VERTEX_PROJECT = "callbridge-local"


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class LocalStack:
    """Emulators + bridge. ``overrides`` are tenant config sections merged over the defaults."""

    def __init__(
        self,
        script: Script,
        *,
        overrides: Mapping[str, Any] | None = None,
        warning_handlers: Iterable[WarningHandler] = (log_warning,),
        record_listeners: Iterable[RecordListener] = (),
        gemini: GeminiLiveEmulator | None = None,
        telcoflow: TelcoflowEmulator | None = None,
    ) -> None:
        self.gemini = gemini or GeminiLiveEmulator(script=script)
        self.telco = telcoflow or TelcoflowEmulator(api_key="stack-key", connector_uuid="conn-1")
        self._overrides = dict(overrides or {})
        self._handlers = list(warning_handlers)
        self._listeners = list(record_listeners)
        self.app: BridgeApp | None = None
        self.config: TenantConfig | None = None
        self._group: asyncio.TaskGroup | None = None
        self._app_task: asyncio.Task[None] | None = None

    def tenant_config(self) -> TenantConfig:
        base: dict[str, Any] = {
            "tenant": "local",
            "telcoflow": {
                "base_url": self.telco.base_url,
                "api_key": self.telco.api_key,
                "connector_uuid": self.telco.connector_uuid,
            },
            "model": {
                "model": DEFAULT_MODEL,
                "api_key": "emulator-key",
                "base_url": self.gemini.base_url,
                "ca_file": str(self.gemini.ca_file),
            },
        }
        merged = _merge(base, self._overrides)
        model = merged["model"]
        if model.get("provider") == "vertex":
            # Vertex AI: no API key; a service-account key whose token endpoint is the
            # emulator's, so google-auth's real JWT exchange runs (see emulators/gemini_live/oauth).
            model.pop("api_key", None)
            model.setdefault("project", VERTEX_PROJECT)
            if "credentials_file" not in model:
                path = Path(self.gemini.ca_file).parent / "service-account.json"
                self.gemini.oauth.service_account_key(path, model["project"])
                model["credentials_file"] = str(path)
        return load_config(overrides=merged, env={})

    async def __aenter__(self) -> LocalStack:
        await self.gemini.__aenter__()
        await self.telco.__aenter__()
        self.config = self.tenant_config()
        self.app = BridgeApp(
            self.config, warning_handlers=self._handlers, record_listeners=self._listeners
        )
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._app_task = self._group.create_task(self.app.run(), name="bridge-app")
        async with asyncio.timeout(15):
            await self.app.source.ready.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self.app is not None:
                self.app.stop_claiming()
            if self._app_task is not None:
                try:
                    async with asyncio.timeout(20):
                        await asyncio.shield(self._app_task)
                except TimeoutError:
                    self._app_task.cancel()
            if self._group is not None:
                await self._group.__aexit__(None, None, None)
        finally:
            await self.telco.__aexit__(None, None, None)
            await self.gemini.__aexit__(None, None, None)

    def place_call(
        self,
        script: CallerScript,
        *,
        caller: str = "+15550001",
        callee: str = "+15559999",
        connect_outcomes: Iterable[ConnectOutcome] = (),
    ) -> EmulatedCall:
        return self.telco.place_call(
            script, caller=caller, callee=callee, connect_outcomes=list(connect_outcomes)
        )
