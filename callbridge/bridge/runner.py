"""From an incoming call to a finished record: answer, open the model, bridge, account.

One :class:`CallRunner` serves every call of a tenant. It answers the call while the model
session opens (the SDK queues caller audio meanwhile, so nothing is lost), falls back to the
next model connector if the first cannot be reached, builds the tool set and the per-call
warner, and keeps the live calls addressable for the admin API.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Protocol

import structlog

from callbridge.bridge.call import BridgedCall
from callbridge.bridge.config import ModelPrice, TenantConfig
from callbridge.bridge.cost import call_cost
from callbridge.bridge.errors import CallGone, CallNotServed, ModelUnavailable
from callbridge.bridge.heard import telling
from callbridge.bridge.outbound import DialOutcome, outcome_for_code
from callbridge.bridge.outbound_line import LinePolicy, OutboundLine
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


class OutgoingCall(IncomingCall, Protocol):
    """An outbound call: ``answer()`` rings the callee
    (``callbridge.adapters.telcoflow.dialer``)."""

    @property
    def error_code(self) -> str | None:
        """The platform's code for a call that was not picked up."""
        ...


@dataclass(frozen=True)
class OutboundPlan:
    """How to run one outbound call: its filled-in instruction and the line etiquette."""

    instruction: str
    policy: LinePolicy


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
        redactor = config.privacy.redactor()
        self._redact = redactor if redactor.active else None
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

    def _instruction(self, warner: CallWarner, text: str | None = None) -> str:
        text = text if text is not None else self.config.model.resolved_instruction()
        limit = self.config.limits.max_prompt_chars
        if len(text) > limit:
            warner.warn(
                WarningCode.PROMPT_TOO_LONG,
                f"system instruction has {len(text)} characters; truncated to {limit}",
            )
            text = text[:limit]
        return text

    async def handle(self, call: IncomingCall, plan: OutboundPlan | None = None) -> CallRecord:
        """Bridge one call to the end; never raises for call or model failures.

        With ``plan`` the call is outbound: ``call.answer()`` rings the callee first, and the
        model session opens only once they picked up (an unanswered dial costs no model).
        """
        record = CallRecord(
            call_id=call.call_id,
            tenant=self.config.tenant,
            caller=call.caller,
            callee=call.callee,
            direction="inbound" if plan is None else "outbound",
            listeners=list(self._listeners),
            redact=self._redact,
        )
        warner = CallWarner(
            call_id=call.call_id,
            tenant=self.config.tenant,
            sink=self._sink,
            on_record=record.warning,
            min_interval_s=self.config.warnings.min_interval_s,
        )
        bridged: BridgedCall | None = None
        log.info(
            "call_started",
            call_id=call.call_id,
            caller=mask_number(call.caller, full=self.config.service.log_full_numbers),
        )
        try:
            bridged = await self._bridge(call, record, warner, plan)
        except CallNotServed as exc:
            # Our failure, not the caller's: the source releases the call for another taker.
            record.note("call_not_served", error=str(exc))
            record.finish("bridge_error")
            log.error("call_not_served", call_id=call.call_id, error=str(exc))
        except CallGone:
            if plan is None:
                record.finish("caller_hangup")
            else:  # gone before the callee picked up: the platform said why (call.error)
                code = getattr(call, "error_code", None)
                record.note("dial_failed", error_code=code)
                record.finish(outcome_for_code(code).value)
        except asyncio.CancelledError:
            record.finish("shutdown")
            raise
        except Exception as exc:
            record.finish("bridge_error")
            log.exception("call_bridge_error", call_id=call.call_id, error=repr(exc))
        finally:
            if record.ended_at is None:
                record.finish("bridge_error")  # no path may leave a call in_progress
            if bridged is None:
                log.info("call_ended", call_id=call.call_id, outcome=record.outcome)
            warner.flush_suppressed()
            self.live.pop(call.call_id, None)
            if self._on_finished is not None:
                self._on_finished(record, bridged)
        return record

    def record_failed_dial(
        self, call_id: str, to: str, outcome: DialOutcome, error_code: str, *, refused: bool
    ) -> CallRecord:
        """A record for a dial that never became a call (refused, busy at create...)."""
        record = CallRecord(
            call_id=call_id,
            tenant=self.config.tenant,
            caller="",
            callee=to,
            direction="outbound",
            listeners=list(self._listeners),
        )
        record.note("dial_failed", error_code=error_code)
        if refused:
            warner = CallWarner(
                call_id=call_id,
                tenant=self.config.tenant,
                sink=self._sink,
                on_record=record.warning,
            )
            warner.warn(
                WarningCode.OUTBOUND_CALL_REFUSED,
                f"the platform refused the outbound call: {error_code}",
                error_code=error_code,
            )
        record.finish(outcome.value)
        if self._on_finished is not None:
            self._on_finished(record, None)
        return record

    async def _bridge(
        self,
        call: IncomingCall,
        record: CallRecord,
        warner: CallWarner,
        plan: OutboundPlan | None = None,
    ) -> BridgedCall | None:
        request = SessionRequest(
            call_id=call.call_id,
            tenant=self.config.tenant,
            system_instruction=self._instruction(
                warner, None if plan is None else plan.instruction
            ),
            functions=[tool.spec for tool in self._tools.values()],
            input_rate=self.config.audio.model_rate(),
            caller=mask_number(call.caller, full=self.config.service.log_full_numbers),
            caller_activity=CallerActivity(call.sample_rate),
        )
        async with AsyncExitStack() as stack:
            if plan is not None:
                answered = await call.answer()
                if not answered.ok:
                    record.command("answer", False, answered.error_code)
                    code = getattr(call, "error_code", None) or answered.error_code
                    record.finish(outcome_for_code(code).value)
                    return None
                opened = await self._open_model(stack, request, record, warner)
            else:
                # Answer while the model session opens: the SDK queues caller audio meanwhile.
                try:
                    async with asyncio.TaskGroup() as group:
                        answering = group.create_task(call.answer(), name=f"answer-{call.call_id}")
                        opened = await self._open_model(stack, request, record, warner)
                except* CallNotServed as failed:  # our voice socket would not open
                    raise failed.exceptions[0] from None
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
                record.finish("model_unavailable" if plan is None else DialOutcome.FAILED.value)
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
                line=None if plan is None else OutboundLine(call.sample_rate, plan.policy, record),
                opening=self.config.opening.guard(),
                truthful=telling(
                    self.config.model.truthful_barge_in,
                    self.config.model.caps(model).role_content_mid_session,
                ),
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
            session.bind_call(ctx)
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
                log.warning("model_connect_failed", model=named.model, error=str(exc))
                continue
            if index > 0:
                warner.warn(
                    WarningCode.FALLBACK_MODEL_USED,
                    f"primary model unavailable ({'; '.join(failures)}); using {named.model}",
                    model=named.model,
                )
            record.model = named.model
            price = self.config.cost.price_for(named.model)
            if price is not None:
                record.pricer = functools.partial(_priced, price=price)
            else:
                log.info("no_price_for_model", model=named.model, call_id=request.call_id)
            record.note("model_connected", model=named.model)
            return session, named.model
        warner.warn(
            WarningCode.MODEL_REQUEST_FAILED,
            "no model could be connected (" + "; ".join(failures) + "); ending the call",
        )
        return None


def _priced(usage: dict[str, int], *, price: ModelPrice) -> float:
    return call_cost(usage, price).usd


async def _end_call(call: IncomingCall, record: CallRecord) -> None:
    try:
        outcome = await call.command(CallCommand.DISCONNECT)
    except CallGone:
        return
    record.command("disconnect", outcome.ok, outcome.error_code)
