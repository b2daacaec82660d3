"""From an incoming call to a finished record: answer, open the model, bridge, account.

One :class:`CallRunner` serves every call of a tenant. It answers the call while the model
session opens (the SDK queues caller audio meanwhile, so nothing is lost), falls back to the
next model connector if the first cannot be reached, builds the tool set and the per-call
warner, and keeps the live calls addressable for the admin API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Protocol

import structlog

from callbridge.bridge.call import BridgedCall
from callbridge.bridge.config import TenantConfig
from callbridge.bridge.errors import CallGone, ModelUnavailable
from callbridge.bridge.heard import telling
from callbridge.bridge.ports import (
    CallCommand,
    CallPort,
    CommandOutcome,
    ModelConnector,
    ModelSession,
    SessionRequest,
)
from callbridge.bridge.record import CallRecord, RecordListener, mask_number
from callbridge.bridge.speech import CallerActivity
from callbridge.bridge.tools import HumanLeg, Tool, ToolContext, ToolDispatcher, build_tools
from callbridge.bridge.warnings import CallWarner, WarningCode, WarningSink

log = structlog.get_logger("callbridge.runner")


class IncomingCall(CallPort, Protocol):
    async def answer(self) -> CommandOutcome: ...


@dataclass(frozen=True)
class NamedConnector:
    """A model connector with the model name it serves (primary first, then fallbacks)."""

    model: str
    connector: ModelConnector


class CallRunner:
    """Runs calls for one tenant."""

    def __init__(
        self,
        config: TenantConfig,
        connectors: Sequence[NamedConnector],
        *,
        warning_sink: WarningSink,
        record_listeners: Iterable[RecordListener] = (),
        extra_tools: Iterable[Tool] = (),
        on_finished: Callable[[CallRecord, BridgedCall | None], None] | None = None,
    ) -> None:
        if not connectors:
            raise ValueError("at least one model connector is needed")
        self.config = config
        self._connectors = list(connectors)
        self._sink = warning_sink
        self._listeners = list(record_listeners)
        self._tools = build_tools(
            config.tools,
            non_blocking=config.model.tools_non_blocking(),
            extra=extra_tools,
        )
        self._on_finished = on_finished
        self.live: dict[str, BridgedCall] = {}

    async def aclose(self) -> None:
        """Release connectors that hold resources (the ADK runner and its database)."""
        for named in self._connectors:
            close = getattr(named.connector, "aclose", None)
            if close is not None:
                await close()

    @property
    def tool_specs(self) -> list[Tool]:
        return list(self._tools.values())

    def _instruction(self, warner: CallWarner) -> str:
        text = self.config.model.resolved_instruction()
        limit = self.config.limits.max_prompt_chars
        if len(text) > limit:
            warner.warn(
                WarningCode.PROMPT_TOO_LONG,
                f"system instruction has {len(text)} characters; truncated to {limit}",
            )
            text = text[:limit]
        return text

    async def handle(self, call: IncomingCall) -> CallRecord:
        """Bridge one call to the end; never raises for call or model failures."""
        record = CallRecord(
            call_id=call.call_id,
            tenant=self.config.tenant,
            caller=call.caller,
            callee=call.callee,
            listeners=list(self._listeners),
        )
        warner = CallWarner(
            call_id=call.call_id,
            tenant=self.config.tenant,
            sink=self._sink,
            on_record=record.warning,
            min_interval_s=self.config.warnings.min_interval_s,
        )
        bridged: BridgedCall | None = None
        try:
            bridged = await self._bridge(call, record, warner)
        except CallGone:
            record.finish("caller_hangup")
        except asyncio.CancelledError:
            record.finish("shutdown")
            raise
        finally:
            warner.flush_suppressed()
            self.live.pop(call.call_id, None)
            if self._on_finished is not None:
                self._on_finished(record, bridged)
        return record

    async def _bridge(
        self, call: IncomingCall, record: CallRecord, warner: CallWarner
    ) -> BridgedCall | None:
        request = SessionRequest(
            call_id=call.call_id,
            tenant=self.config.tenant,
            system_instruction=self._instruction(warner),
            functions=[tool.spec for tool in self._tools.values()],
            input_rate=self.config.audio.model_rate(),
            caller=mask_number(call.caller, full=self.config.service.log_full_numbers),
            caller_activity=CallerActivity(call.sample_rate),
        )
        async with AsyncExitStack() as stack:
            # Answer while the model session opens: the SDK queues caller audio meanwhile.
            try:
                async with asyncio.TaskGroup() as group:
                    answering = group.create_task(call.answer(), name=f"answer-{call.call_id}")
                    opened = await self._open_model(stack, request, record, warner)
            except* CallGone as gone:  # the caller hung up while we answered
                raise gone.exceptions[0] from None
            answered = answering.result()
            if not answered.ok:
                record.command("answer", False, answered.error_code)
                record.finish("answer_failed")
                return None
            record.mark_answered()
            if opened is None:
                # Nothing to say to the caller without a model: end cleanly, do not leave dead air.
                await _end_call(call, record)
                record.finish("model_unavailable")
                return None
            session, model = opened
            human = HumanLeg()
            bridged = BridgedCall(
                call,
                session,
                human=human,
                audio=self.config.audio,
                thresholds=self.config.warnings,
                record=record,
                warner=warner,
                greeting_prompt=self.config.model.greeting_prompt,
                caller_activity=request.caller_activity,
                opening=self.config.opening.guard(),
                truthful=telling(self.config.model.truthful_barge_in, model),
            )
            ctx = ToolContext(
                call=call,
                control=bridged,
                record=record,
                warner=warner,
                settings=self.config.tools,
                human=human,
            )
            # Back ends that run tools themselves (ADK) reach the call through this context.
            bind = getattr(session, "bind_call", None)
            if bind is not None:
                bind(ctx)
            dispatcher = ToolDispatcher(
                self._tools,
                ctx,
                session.send_tool_result,
                slow_after_s=self.config.warnings.slow_tool_call_s,
            )
            self.live[call.call_id] = bridged
            started = time.monotonic()
            outcome = await bridged.run(dispatcher)
            log.info(
                "call_ended",
                call_id=call.call_id,
                outcome=outcome,
                seconds=round(time.monotonic() - started, 2),
                interrupts=bridged.stats.interrupts,
            )
            return bridged
        return None  # pragma: no cover - the exit stack never swallows

    async def _open_model(
        self,
        stack: AsyncExitStack,
        request: SessionRequest,
        record: CallRecord,
        warner: CallWarner,
    ) -> tuple[ModelSession, str] | None:
        """The first model that connects, and its name."""
        failures: list[str] = []
        for index, named in enumerate(self._connectors):
            try:
                session = await stack.enter_async_context(named.connector.open(request))
            except ModelUnavailable as exc:
                failures.append(f"{named.model}: {exc}")
                record.note("model_connect_failed", model=named.model, error=str(exc))
                continue
            if index > 0:
                warner.warn(
                    WarningCode.FALLBACK_MODEL_USED,
                    f"primary model unavailable ({'; '.join(failures)}); using {named.model}",
                    model=named.model,
                )
            record.note("model_connected", model=named.model)
            return session, named.model
        warner.warn(
            WarningCode.MODEL_REQUEST_FAILED,
            "no model could be connected (" + "; ".join(failures) + "); ending the call",
        )
        return None


async def _end_call(call: IncomingCall, record: CallRecord) -> None:
    try:
        outcome = await call.command(CallCommand.DISCONNECT)
    except CallGone:
        return
    record.command("disconnect", outcome.ok, outcome.error_code)
