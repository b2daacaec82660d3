"""The composition root of one tenant's bridge: call source + model connectors + runner.

``bridge/`` never imports a vendor SDK; this module is where the concrete adapters are
chosen from the tenant configuration and wired together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence

from callbridge.service.recording import TappedCall

from callbridge.adapters.recording import CallRecorder, purge_forever
from callbridge.adapters.telcoflow.source import TelcoflowCallSource
from callbridge.bridge.call import BridgedCall
from callbridge.bridge.config import TenantConfig
from callbridge.bridge.errors import ConfigError
from callbridge.bridge.record import CallRecord, RecordListener
from callbridge.bridge.runner import CallRunner, IncomingCall, NamedConnector
from callbridge.bridge.tools import Tool
from callbridge.service.delivery import WarningHandler, WarningHub, log_warning
from callbridge.service.housekeeping import (
    CycleCollector,
    freeze_import_time_objects,
    release_frozen_objects,
)


def build_connectors(config: TenantConfig) -> list[NamedConnector]:
    """Primary model first, then the fallback (if configured)."""
    model = config.model
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
            handle_call=self._handle_call,
            max_concurrent_calls=config.limits.max_concurrent_calls,
        )

    async def _handle_call(self, call: IncomingCall) -> CallRecord:
        """Run one call; with recording on, through a tap whose writer this call owns."""
        settings = self.config.recording
        if not settings.enabled:
            return await self.runner.handle(call)
        recorder = CallRecorder(
            settings, tenant=self.config.tenant, call_id=call.call_id, sample_rate=call.sample_rate
        )
        async with asyncio.TaskGroup() as group:
            group.create_task(recorder.run(), name=f"recorder-{call.call_id}")
            try:
                record = await self.runner.handle(TappedCall(call, recorder.tap))
            finally:
                recorder.tap.close()
        if recorder.saved is not None:
            # Known once the file is complete, so it follows the call's end in the record.
            record.note("recording_saved", **recorder.saved)
        elif recorder.failed is not None:
            record.note("recording_failed", error=recorder.failed)
        return record

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
                purge = (
                    group.create_task(purge_forever(self.config.recording), name="recording-purge")
                    if self.config.recording.enabled
                    else None
                )
                await self.source.run()
                await self.warnings.drain()
                hub.cancel()
                collector.cancel()
                if purge is not None:
                    purge.cancel()
        finally:
            await asyncio.shield(self.runner.aclose())
            release_frozen_objects()

    def stop_claiming(self) -> None:
        self.source.stop_claiming()
