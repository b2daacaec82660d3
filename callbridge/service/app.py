"""The composition root of one tenant's bridge: call source + model connectors + runner.

``bridge/`` never imports a vendor SDK; this module is where the concrete adapters are
chosen from the tenant configuration and wired together.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from callbridge.adapters.recording import CallRecorder, purge_forever
from callbridge.adapters.telcoflow.dialer import DialFailure, TelcoflowDialer
from callbridge.adapters.telcoflow.source import TelcoflowCallSource
from callbridge.bridge.amd import DetectorSettings
from callbridge.bridge.call import BridgedCall
from callbridge.bridge.config import TenantConfig
from callbridge.bridge.errors import ConfigError
from callbridge.bridge.models import unknown_model_hint
from callbridge.bridge.outbound import DialOutcome, DialResult, check_number, fill_template
from callbridge.bridge.outbound_line import LinePolicy
from callbridge.bridge.record import CallRecord, RecordListener
from callbridge.bridge.recording import TappedCall
from callbridge.bridge.runner import CallRunner, IncomingCall, NamedConnector, OutboundPlan
from callbridge.bridge.tools import Tool
from callbridge.service.campaign_runner import CampaignRunner
from callbridge.service.campaigns import CampaignStore, ClaimedRow, RowState
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
        campaign_engine: AsyncEngine | None = None,
        on_campaign_row: Callable[[ClaimedRow, DialResult, RowState], None] | None = None,
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
        self.dialer = TelcoflowDialer(config.outbound, config.call_flow, config.audio.call_rate)
        self.source = TelcoflowCallSource(
            config.telcoflow,
            sample_rate=config.audio.call_rate,
            handle_call=self._handle_call,
            max_concurrent_calls=config.limits.max_concurrent_calls,
            claim_spread_ms=config.limits.claim_spread_ms,
            unready=unready,
            on_connected=self.dialer.declare,
        )
        self._dialling: set[str] = set()
        self._group: asyncio.TaskGroup | None = None
        self._dial_tasks: list[asyncio.Task[None]] = []
        self.dials: dict[str, DialResult | None] = {}
        """Dials started with :meth:`start_dial`: ``None`` while under way, then the result."""
        self.campaigns: CampaignRunner | None = None
        settings = config.campaigns
        if settings.enabled and campaign_engine is not None:
            self.campaigns = CampaignRunner(
                CampaignStore(campaign_engine, config.tenant),
                lambda to, variables: self.dial(to, variables=variables),
                replica=settings.replica or socket.gethostname(),
                max_concurrent=settings.max_concurrent_calls,
                calls_per_minute=settings.calls_per_minute,
                poll_s=settings.poll_s,
                stale_after_s=settings.stale_after_s,
                on_row_done=on_campaign_row,
                has_capacity=self._can_dial,
            )

    async def _handle_call(
        self, call: IncomingCall, plan: OutboundPlan | None = None
    ) -> CallRecord:
        """Run one call (inbound, or outbound with ``plan``); with recording on, through a tap
        whose writer this call owns."""
        settings = self.config.recording
        if not settings.enabled:
            return await self.runner.handle(call, plan)
        recorder = CallRecorder(
            settings, tenant=self.config.tenant, call_id=call.call_id, sample_rate=call.sample_rate
        )
        async with asyncio.TaskGroup() as group:
            group.create_task(recorder.run(), name=f"recorder-{call.call_id}")
            try:
                record = await self.runner.handle(TappedCall(call, recorder.tap), plan)
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
                self._group = group
                hub = group.create_task(self.warnings.run(), name="warning-hub")
                collector = group.create_task(self.collector.run(), name="cycle-collector")
                outbound: list[asyncio.Task[None]] = []
                if self.campaigns is not None:
                    outbound.append(group.create_task(self.campaigns.run(), name="campaigns"))
                purge = (
                    group.create_task(purge_forever(self.config.recording), name="recording-purge")
                    if self.config.recording.enabled
                    else None
                )
                await self.source.run()
                self._group = None
                outbound += self._dial_tasks
                if outbound:  # outbound calls still under way keep their warnings
                    await asyncio.wait(outbound)
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
        if self.campaigns is not None:
            self.campaigns.stop()  # calls under way finish; no new row is claimed

    def _can_dial(self) -> bool:
        limit = self.config.outbound.max_concurrent_calls
        return self.source.has_capacity() and len(self._dialling) < limit

    @property
    def campaign_store(self) -> CampaignStore | None:
        """Where ``POST /campaigns`` stores rows (``None`` unless campaigns are enabled)."""
        return self.campaigns.store if self.campaigns is not None else None

    # -- outbound calls: one implementation behind app.dial, POST /calls and `callbridge call` --

    def outbound_plan(
        self,
        to: str,
        variables: Mapping[str, str] | None = None,
        instruction: str | None = None,
    ) -> OutboundPlan:
        """Check a dial request; raises ``ConfigError`` naming the field at fault."""
        outbound = self.config.outbound
        if not outbound.enabled:
            raise ConfigError("outbound.enabled: outbound calls are off for this tenant")
        check_number(to, "to")
        template = instruction or outbound.instruction_template
        if template is None:
            template = self.config.model.resolved_instruction()
            if variables:
                raise ConfigError(
                    "variables: this tenant has no outbound.instruction_template to fill"
                )
            text = template
        else:
            text = fill_template(template, dict(variables or {}))
        detector = DetectorSettings(
            opening_silence_s=outbound.opening_silence_s,
            end_silence_s=outbound.end_of_hello_s,
            machine_speech_s=outbound.machine_speech_s,
        )
        policy = LinePolicy(
            opening_prompt=outbound.opening_prompt,
            voicemail=outbound.voicemail,
            voicemail_prompt=outbound.voicemail_prompt,
            opening_barge_in_s=outbound.opening_barge_in_s,
            detector=detector,
        )
        return OutboundPlan(instruction=text, policy=policy)

    async def dial(
        self,
        to: str,
        *,
        variables: Mapping[str, str] | None = None,
        instruction: str | None = None,
    ) -> DialResult:
        """Place one call and bridge it to the end; returns its outcome (never raises for
        the callee's or the platform's answer; ``ConfigError`` for a bad request)."""
        plan = self.outbound_plan(to, variables, instruction)
        key = f"dial-{secrets.token_hex(6)}"
        manager = self.source.manager
        refusal: str | None = None
        if manager is None:
            refusal = "NOT_CONNECTED"
        elif len(self._dialling) >= self.config.outbound.max_concurrent_calls:
            refusal = "OUTBOUND_AT_CAPACITY"
        elif not self.source.try_reserve(key):
            refusal = "AT_CAPACITY"
        if refusal is not None or manager is None:
            code = refusal or "NOT_CONNECTED"
            self.runner.record_failed_dial(key, to, DialOutcome.FAILED, code, refused=True)
            return DialResult(to, DialOutcome.FAILED, code, key, "not placed")
        self._dialling.add(key)
        try:
            placed = await self.dialer.create(manager, to)
            if isinstance(placed, DialFailure):
                self.runner.record_failed_dial(
                    key, to, placed.outcome, placed.error_code, refused=placed.refused
                )
                return DialResult(to, placed.outcome, placed.error_code, key)
            record = await self._handle_call(placed, plan)
            known = record.outcome in DialOutcome.__members__.values()
            outcome = DialOutcome(record.outcome) if known else DialOutcome.FAILED
            failed_code = placed.error_code if outcome in _UNANSWERED else None
            return DialResult(to, outcome, failed_code, record.call_id)
        finally:
            self._dialling.discard(key)
            self.source.release(key)

    def start_dial(
        self,
        to: str,
        *,
        variables: Mapping[str, str] | None = None,
        instruction: str | None = None,
    ) -> str:
        """Check the request now, then dial in the app's TaskGroup; returns the dial id."""
        self.outbound_plan(to, variables, instruction)
        group = self._group
        if group is None:
            raise ConfigError("the bridge is not running; dials need `callbridge serve`")
        dial_id = f"dial-{secrets.token_hex(6)}"
        self.dials[dial_id] = None

        async def run() -> None:
            try:
                self.dials[dial_id] = await self.dial(
                    to, variables=variables, instruction=instruction
                )
            except Exception:
                structlog.get_logger("callbridge.app").exception("dial_failed", dial_id=dial_id)
                self.dials[dial_id] = DialResult(to, DialOutcome.FAILED, "INTERNAL_ERROR")

        task = group.create_task(run(), name=dial_id)
        self._dial_tasks.append(task)
        task.add_done_callback(self._dial_tasks.remove)
        return dial_id


_UNANSWERED = frozenset(
    {DialOutcome.NO_ANSWER, DialOutcome.BUSY, DialOutcome.REJECTED, DialOutcome.FAILED}
)
