"""Placing a call over telcoflow: ``session.create`` -> ``ready`` -> ``call.in`` -> answer.

telcoflow 1.0.0 has one way to dial, ``SessionManager.create_session(TELCO, number)``: it sends
``session.create`` and then ``session.open``. The call itself then arrives like an inbound one,
as ``call.in`` after ``session.ready()``, and our ``call.answer`` connects our leg.

What the platform documents: the refusals of ``session.create`` (``QUOTA_EXCEEDED``,
``CHANNEL_NOT_CONFIGURED``, ``OUTBOUND_OVERFLOW``, mapped to SDK exceptions). What it does not:
when the callee's phone rings and how busy / rejected / unanswered come back. The bridge is
correct under each variant the emulator offers (``emulators/telcoflow/outbound.py``):

- an error response to ``session.create`` (``[BUSY] Server returned error``): the code is
  read from the SDK's message;
- a failed ``call.answer`` with the code; ``TIMEOUT`` while the phone still rings is asked
  again until ``outbound.ring_timeout_s``;
- ``call.error {error_code}`` then ``call.terminated`` before the answer succeeds;
- no ``call.in`` within the ring timeout: ``no_answer``.

:class:`DialledCall.answer` is that ring loop, so the bridge's runner treats an outbound call
exactly like an inbound one whose ``answer()`` takes a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass

import structlog
import telcoflow

from callbridge.adapters.telcoflow import errors, sdk_fixes
from callbridge.adapters.telcoflow.port import TelcoflowCall
from callbridge.bridge.config import CallFlowSettings, OutboundSettings
from callbridge.bridge.errors import CallGone
from callbridge.bridge.outbound import DialOutcome, outcome_for_code
from callbridge.bridge.ports import CallCommand, CommandOutcome

log = structlog.get_logger("callbridge.dialer")

_CODE = re.compile(r"^\[([A-Z0-9_]+)\]")
CALL_IN_SLACK_S = 5.0
"""``call.in`` follows ``session.ready`` at once on every variant; this is only a safety net."""


def sdk_error_code(exc: BaseException) -> str:
    """The platform's code from an SDK exception (``[CODE] Server returned error``)."""
    match = _CODE.match(str(exc))
    if match:
        return match.group(1)
    if isinstance(exc, telcoflow.WSSConnectionError):
        return "NOT_CONNECTED"
    return type(exc).__name__


def call_flow_frame(flow: CallFlowSettings, outbound: OutboundSettings) -> telcoflow.CallFlowConfig:
    """What ``call_flow.setup`` declares for this tenant."""
    builder = telcoflow.CallFlowBuilder()  # type: ignore[no-untyped-call]  # SDK: unannotated
    mode = telcoflow.InboundCallMode(flow.inbound or "ALL")
    return builder.inbound_call(mode).outbound_call(outbound.enabled).build()


def wants_call_flow(flow: CallFlowSettings, outbound: OutboundSettings) -> bool:
    return flow.inbound is not None or outbound.enabled


@dataclass
class DialFailure:
    """``session.create`` did not give us a call."""

    outcome: DialOutcome
    error_code: str
    refused: bool
    """The platform refused to place the call (quota, channel, overflow), as opposed to the
    callee's side (busy, no answer)."""


class DialledCall(TelcoflowCall):
    """An outbound call's leg; :meth:`answer` rings the callee until they decide."""

    def __init__(
        self, call: telcoflow.Call, sample_rate: int, ring_timeout_s: float, to: str
    ) -> None:
        super().__init__(call, sample_rate)
        self._ring_timeout_s = ring_timeout_s
        self._to = to
        self.error_code: str | None = None
        """The code the platform gave for a call that was not picked up."""
        self.rang_s = 0.0

        def remember(data: dict[str, object] | None = None) -> None:
            if self.error_code is None and data:
                self.error_code = str(data.get("error_code") or "") or None

        call.on_call_event(telcoflow.CallEvent.CALL_ERROR)(remember)

    @property
    def callee(self) -> str:
        return self._to

    @property
    def outcome_if_unanswered(self) -> DialOutcome:
        return outcome_for_code(self.error_code)

    async def answer(self) -> CommandOutcome:
        """Connect our leg; returns when the callee picked up or definitely did not."""
        started = time.monotonic()
        try:
            while True:
                # No ``ended`` check: a refusal's code must survive the call.terminated that
                # the platform sends right after it.
                outcome = await errors.run_command(CallCommand.ANSWER, self._answer_command())
                self.rang_s = time.monotonic() - started
                if outcome.ok:
                    return outcome
                if outcome.error_code == "TIMEOUT" and self.rang_s < self._ring_timeout_s:
                    continue  # still ringing, past the SDK's 10 s command deadline
                self.error_code = self.error_code or outcome.error_code
                await self._give_up()
                return outcome
        except CallGone:
            self.rang_s = time.monotonic() - started
            if self.error_code is None:
                self.error_code = "CALL_TERMINATED"
            raise

    async def _give_up(self) -> None:
        """End our leg of a call that was not picked up (harmless if already over)."""
        if self._ended():
            return
        with contextlib.suppress(CallGone):
            await self.command(CallCommand.DISCONNECT)


class TelcoflowDialer:
    """Creates outbound sessions on a connected SessionManager."""

    def __init__(
        self, settings: OutboundSettings, flow: CallFlowSettings, sample_rate: int
    ) -> None:
        self._settings = settings
        self._flow = flow
        self._rate = sample_rate
        self._declared_on: str | None = None

    async def declare(self, manager: telcoflow.SessionManager) -> None:
        """Send ``call_flow.setup`` (again after a reconnect: the SDK does not replay it)."""
        if not wants_call_flow(self._flow, self._settings):
            return
        await manager.setup_call_flow(call_flow_frame(self._flow, self._settings))
        self._declared_on = manager.id
        log.info(
            "call_flow_declared",
            inbound=self._flow.inbound or "ALL",
            outbound=self._settings.enabled,
        )

    async def create(self, manager: telcoflow.SessionManager, to: str) -> DialledCall | DialFailure:
        """Ask the platform for a call to ``to``; the callee rings from here on at the latest."""
        try:
            if self._declared_on != manager.id:
                await self.declare(manager)
            session = await manager.create_session(telcoflow.ChannelType.TELCO, to)
        except telcoflow.WSSError as exc:
            code = sdk_error_code(exc)
            outcome = outcome_for_code(code)
            log.info("session_create_failed", error_code=code)
            return DialFailure(outcome, code, refused=outcome is DialOutcome.FAILED)
        delivered: asyncio.Future[telcoflow.Call] = asyncio.get_running_loop().create_future()

        async def on_call(call: telcoflow.Call) -> None:
            if not delivered.done():
                delivered.set_result(call)

        def on_closed(reason: object) -> None:
            sdk_fixes.release_session(manager, session.id)
            if not delivered.done():
                delivered.set_exception(CallGone(f"session closed before call.in: {reason}"))

        session.on_incoming_call(on_call)
        session.on_closed(on_closed)
        await session.ready()
        try:
            async with asyncio.timeout(self._settings.ring_timeout_s + CALL_IN_SLACK_S):
                call = await delivered
        except TimeoutError:
            return DialFailure(DialOutcome.NO_ANSWER, "NO_CALL_IN", refused=False)
        except CallGone:
            return DialFailure(DialOutcome.FAILED, "SESSION_CLOSED", refused=False)
        return DialledCall(call, self._rate, self._settings.ring_timeout_s, to)
