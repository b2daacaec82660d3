"""One emulated inbound call: its session state, its voice leg and the test-facing handle.

The session-manager hub decides *who* gets offered and claims the session; the voice leg
runs the media. This class ties them together and owns the one decision both need: how a
call ends, and in which order the SDK hears about it (wire notes 3.3, 5 and 8):

- ``caller_hangup`` / ``emulator_shutdown``: answer pending commands (``CALL_TERMINATED``),
  ``call_event call.terminated``, ``session.closed CALL_TERMINATED``, close 1000;
- ``agent_disconnect`` (after the command's reply): the same sequence;
- ``agent_close`` (after the reply): ``session.closed SDK_REQUEST``, close 1000;
- ``voice_dropped``: the socket goes away with no ``call.terminated`` and no answers (a fault);
  the session is then closed with ``FORCE_CLOSE`` unless the test asked otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from . import wire
from .faults import FaultPlan
from .outbound import CalleePhone
from .outcomes import DEFAULT_CONNECT_OUTCOME, ConnectOutcome
from .record import CallRecord, EndReason
from .script import CallerScript
from .voice import VoiceLeg

if TYPE_CHECKING:
    from .session_manager import SmConnection

logger = logging.getLogger(__name__)

_TERMINATED = ("caller_hangup", "agent_disconnect", "emulator_shutdown")


class CallEndedError(RuntimeError):
    """The call ended before the awaited milestone (e.g. it was never answered)."""


class EmulatedCall:
    """A call placed with ``TelcoflowEmulator.place_call``; the handle tests drive and inspect."""

    def __init__(
        self,
        *,
        call_id: str,
        session_id: str,
        token: str,
        voice_url: str,
        caller: str,
        callee: str,
        script: CallerScript,
        connect_outcomes: Iterable[ConnectOutcome],
        record_audio: bool,
        on_change: Callable[[], None],
        phone: CalleePhone | None = None,
        missed: bool = True,
    ) -> None:
        self.call_id = call_id
        self.session_id = session_id
        self.token = token
        self.voice_url = voice_url
        self.caller = caller
        self.callee = callee
        self.script = script
        self.faults = FaultPlan()
        self.phone = phone
        """Set for an outbound call (``session.create``): the called phone and its ring."""
        self.missed = missed
        """An inbound call a human did not take (offered to ``MISSED_ONLY`` connectors)."""
        self.caller_send_times: list[float] | None = None
        """Set to a list (by a benchmark) to have the caller pump append the monotonic time at
        which it wrote each caller frame; ``None`` (the default) keeps no per-frame log."""
        self.created_at = int(time.time())
        self.placed_at = time.monotonic()
        self._outcomes: deque[ConnectOutcome] = deque(connect_outcomes)
        self._record_audio = record_audio
        self._on_change = on_change
        self._record = CallRecord(call_id=call_id, session_id=session_id)
        # Session binding, managed by the session-manager hub.
        self.owner: SmConnection | None = None
        self.ever_delivered = False
        self.call_in_sent = False
        self.notified: dict[str, float] = {}
        self.notifies_sent = 0
        # Voice leg.
        self._voice_reserved = False
        self._leg: VoiceLeg | None = None
        self._answered_or_ending = asyncio.Event()
        self._done = asyncio.Event()
        self._ending = False
        self._end_sequence_sent = False

    # -- public API --------------------------------------------------------------------------

    @property
    def record(self) -> CallRecord:
        """The call's record, brought up to date (safe to read while the call runs)."""
        if self._leg is not None:
            self._leg.sync_record()
        return self._record

    @property
    def raw_record(self) -> CallRecord:
        """The record without refreshing its audio copies (for the emulator's own hot paths)."""
        return self._record

    @property
    def is_ended(self) -> bool:
        return self._ending

    @property
    def claimed_by(self) -> str | None:
        """``smWsId`` of the session manager currently holding the session, if any."""
        return self.owner.sm_ws_id if self.owner is not None else None

    async def answered(self, timeout: float = 10.0) -> float:
        """Wait until the bridge's ``call.answer`` arrived; returns its monotonic time.

        Raises ``CallEndedError`` if the call ends first and ``TimeoutError`` on timeout.
        """
        async with asyncio.timeout(timeout):
            await self._answered_or_ending.wait()
        answered_at = self._record.answered_at
        if answered_at is None:
            raise CallEndedError(f"call ended ({self._record.end_reason}) before it was answered")
        return answered_at

    async def ended(self, timeout: float = 30.0) -> CallRecord:
        """Wait until the call is over and its voice socket is closed; returns the record."""
        async with asyncio.timeout(timeout):
            await self._done.wait()
        return self.record

    async def hang_up(self) -> None:
        """The caller hangs up now (remote hang-up); returns once the call is fully over."""
        await self.end_call("caller_hangup")
        await self._done.wait()

    async def drop_voice(self, code: int = 1011, *, close_session: bool = True) -> None:
        """Close the voice WS abruptly: no ``call.terminated``, pending commands unanswered.

        This is a fault, the case where the unmodified SDK leaves the call stuck LIVE. With
        ``close_session`` the platform then closes the session (``FORCE_CLOSE``) on the SM-WS.
        """
        await self.end_call("voice_dropped", close_code=code, close_session=close_session)
        await self._done.wait()

    def fail_next(
        self,
        command: str,
        error_code: str = "INTERNAL_ERROR",
        error_message: str = "injected failure",
    ) -> None:
        """Make the next ``command`` (e.g. ``"agent.interrupt"``) fail without taking effect.

        ``"session.open"`` fails the next claim of this call with ``error_code`` (e.g.
        ``"SESSION_BUSY"``), leaving it unclaimed and re-offered.
        """
        self.faults.fail_next(command, error_code, error_message)

    def delay_next(self, command: str, seconds: float) -> None:
        """Answer the next ``command`` ``seconds`` late.

        Effects that need no answer happen on receipt (an interrupt drops queued audio at once,
        a mode change is recorded at once); only the response waits. ``call.answer`` starts the
        audio after its late response, and ``call.disconnect``/``call.close`` are delayed as a
        whole, because the socket closes right after their response.
        """
        self.faults.delay_next(command, seconds)

    async def inject_call_error(
        self, error_code: str = "TTS_SESSION_ERROR", error_message: str = "injected"
    ) -> bool:
        """Send ``call_event call.error`` on the voice WS; ``False`` if there is none."""
        leg = self._leg
        if leg is None:
            return False
        return await leg.send(
            wire.call_event("call.error", error_code=error_code, error_message=error_message)
        )

    async def send_raw_text(self, text: str) -> bool:
        """Send ``text`` verbatim on the voice WS (e.g. malformed JSON); ``False`` if none.

        The SDK logs and skips text it cannot parse; a test can prove the call goes on.
        """
        leg = self._leg
        if leg is None:
            return False
        return await leg.send_text(text)

    def __repr__(self) -> str:
        return f"<EmulatedCall {self.call_id} session={self.session_id} ended={self._ending}>"

    # -- used by the session-manager hub ------------------------------------------------------

    @property
    def offerable(self) -> bool:
        """Still open and not bound to a live session manager, so it should be (re)offered."""
        # An outbound call belongs to the connector that created it: never offered around.
        return not self._ending and self.owner is None and self.phone is None

    def bind(self, conn: SmConnection) -> None:
        self.owner = conn
        self.call_in_sent = False
        if self._record.sample_rate == 0:
            self._record.sample_rate = conn.sample_rate

    def unbind(self, conn: SmConnection) -> None:
        if self.owner is conn:
            self.owner = None
            self.call_in_sent = False

    def next_connect_outcome(self) -> ConnectOutcome:
        return self._outcomes.popleft() if self._outcomes else DEFAULT_CONNECT_OUTCOME

    # -- used by the emulator's HTTP layer and the voice leg ----------------------------------

    def reserve_voice(self) -> tuple[int, str] | None:
        """Admit one voice connection per call; an HTTP (status, text) to reject, else None."""
        if self._ending:
            return 410, "call has ended"
        if self._voice_reserved:
            return 409, "call already has a voice connection"
        self._voice_reserved = True
        return None

    async def run_voice(self, ws: ServerConnection) -> None:
        """Serve the call's voice WebSocket until it closes, then settle the call's end."""
        if self._ending:
            # Admitted just before the call ended: tell the SDK, then hang up on it.
            with contextlib.suppress(ConnectionClosed):
                await ws.send(json.dumps(wire.call_event("call.terminated")))
                await ws.close(1000)
            return
        leg = VoiceLeg(self, ws, record_audio=self._record_audio)
        self._leg = leg
        try:
            await leg.run()
        finally:
            if not self._ending:
                # The bridge's side went away without disconnect or close.
                await self.end_call("voice_dropped", close_session=True)
            leg.sync_record()
            self._leg = None
            self._maybe_done()

    def mark_answered(self, t: float) -> None:
        if self._record.answered_at is None:
            self._record.answered_at = t
        self._answered_or_ending.set()

    async def end_call(
        self,
        reason: EndReason,
        *,
        close_code: int = 1000,
        close_session: bool = True,
    ) -> None:
        """End the call once (later calls are no-ops); does not wait for the socket to finish."""
        if self._ending:
            return
        self._ending = True
        if self.phone is not None:
            self.phone.cancel()
        self._record.ended_at = time.monotonic()
        self._record.end_reason = reason
        self._answered_or_ending.set()
        self._on_change()
        leg = self._leg
        session_reason: str | None = None
        if reason in _TERMINATED:
            session_reason = "CALL_TERMINATED"
        elif reason == "agent_close":
            session_reason = "SDK_REQUEST"
        elif close_session:
            session_reason = "FORCE_CLOSE"
        try:
            if leg is not None and reason == "voice_dropped":
                await leg.close(close_code, "voice dropped")
            elif leg is not None:
                await leg.fail_pending("CALL_TERMINATED", "the call has ended")
                if reason in _TERMINATED:
                    await leg.send(wire.call_event("call.terminated"))
            owner = self.owner
            if session_reason is not None and owner is not None:
                await owner.send(wire.session_closed(self.session_id, session_reason))
            if leg is not None:
                await leg.close(close_code)
        finally:
            self._end_sequence_sent = True
            self._maybe_done()

    def _maybe_done(self) -> None:
        """Over means: the end sequence was sent and no voice leg is still running."""
        if self._end_sequence_sent and self._leg is None:
            self._done.set()
