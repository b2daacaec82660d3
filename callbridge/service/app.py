"""The composition root of one tenant's bridge: call source + model connectors + runner.

``bridge/`` never imports a vendor SDK; this module is where the concrete adapters are
chosen from the tenant configuration and wired together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence

import structlog

from callbridge.adapters.telcoflow.source import TelcoflowCallSource
from callbridge.bridge.call import BridgedCall
from callbridge.bridge.config import TenantConfig
from callbridge.bridge.errors import ConfigError
from callbridge.bridge.models import unknown_model_hint
from callbridge.bridge.record import CallRecord, RecordListener
from callbridge.bridge.runner import CallRunner, NamedConnector
from callbridge.bridge.tools import Tool
from callbridge.service.delivery import WarningHandler, WarningHub, log_warning
from callbridge.service.housekeeping import (
    CycleCollector,
    freeze_import_time_objects,
    release_frozen_objects,
)

log = structlog.get_logger("callbridge.app")


def warn_unknown_models(config: TenantConfig) -> list[str]:
    """Start-up warnings for model names the capability table does not know (logged)."""
    model = config.model
    hints = [
        unknown_model_hint(name)
        for name in filter(None, (model.model, model.fallback_model))
        if not model.caps(name).known
    ]
    for hint in hints:
        log.warning("model_unknown", detail=hint)
    return hints


def build_connectors(config: TenantConfig) -> list[NamedConnector]:
    """Primary model first, then the fallback (if configured)."""
    model = config.model
    warn_unknown_models(config)
    if model.backend == "adk":
        from callbridge.adapters.adk.connector import AdkConnector

        primary = AdkConnector(config)
        connectors = [NamedConnector(primary.model, primary)]
        fallback = primary.fallback()
        if fallback is not None:
            connectors.append(NamedConnector(fallback.model, fallback))
        return connectors
    from callbridge.adapters.gemini_live import (
        GeminiLiveConnector,
    )  # after the branch: keeps ADK-only images light

    try:
        connectors = [NamedConnector(model.model, GeminiLiveConnector(model))]
        if model.fallback_model:
            key = model.fallback_api_key or model.api_key
            connectors.append(
                NamedConnector(
                    model.fallback_model,
                    GeminiLiveConnector(
                        model,
                        model=model.fallback_model,
                        api_key=key.get_secret_value() if key else None,
                    ),
                )
            )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return connectors


class BridgeApp:
    """One tenant process: takes calls from Telcoflow and bridges each to the model."""

    def __init__(
        self,
        config: TenantConfig,
        *,
        connectors: Sequence[NamedConnector] | None = None,
        warning_handlers: Iterable[WarningHandler] = (log_warning,),
        record_listeners: Iterable[RecordListener] = (),
        extra_tools: Iterable[Tool] = (),
        on_call_finished: Callable[[CallRecord, BridgedCall | None], None] | None = None,
        unready: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.config = config
        self.warnings = WarningHub(list(warning_handlers))
        self.runner = CallRunner(
            config,
            connectors if connectors is not None else build_connectors(config),
            warning_sink=self.warnings,
            record_listeners=record_listeners,
            extra_tools=extra_tools,
            on_finished=self._call_finished,
        )
        self._on_call_finished = on_call_finished
        self.collector = CycleCollector()
        self.source = TelcoflowCallSource(
            config.telcoflow,
            sample_rate=config.audio.call_rate,
            handle_call=self.runner.handle,
            max_concurrent_calls=config.limits.max_concurrent_calls,
            unready=unready,
        )

    def _call_finished(self, record: CallRecord, bridged: BridgedCall | None) -> None:
        self.collector.call_finished()
        if self._on_call_finished is not None:
            self._on_call_finished(record, bridged)

    async def run(self) -> None:
        """Serve until :meth:`stop_claiming` and the last call ends (or cancellation)."""
        freeze_import_time_objects()
        try:
            async with asyncio.TaskGroup() as group:
                hub = group.create_task(self.warnings.run(), name="warning-hub")
                collector = group.create_task(self.collector.run(), name="cycle-collector")
                await self.source.run()
                await self.warnings.drain()
                hub.cancel()
                collector.cancel()
        finally:
            await asyncio.shield(self.runner.aclose())
            release_frozen_objects()

    def stop_claiming(self) -> None:
        self.source.stop_claiming()
