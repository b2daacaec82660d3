"""A :class:`~callbridge.bridge.ports.CallPort` over one answered ``telcoflow.Call``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import telcoflow

from callbridge.adapters.telcoflow import errors, voice_wire
from callbridge.bridge.errors import CallGone, CallNotServed
from callbridge.bridge.ports import CallCommand, CommandOutcome


class TelcoflowCall:
    """Adapts ``telcoflow.Call`` to the bridge; every SDK error is translated in ``errors``."""

    def __init__(self, call: telcoflow.Call, sample_rate: int) -> None:
        self._call = call
        self._rate = sample_rate
        self.not_served = False
        """Set when answering failed on our side: the source then releases the session."""

    @property
    def sdk_call(self) -> telcoflow.Call:
        return self._call

    @property
    def call_id(self) -> str:
        return str(self._call.id)

    @property
    def caller(self) -> str:
        return str(self._call.caller_number or "")

    @property
    def callee(self) -> str:
        return str(self._call.callee_number or "")

    @property
    def sample_rate(self) -> int:
        return self._rate

    def _ended(self) -> bool:
        return bool(self._call.state == telcoflow.CallState.TERMINATED)

    async def answer(self) -> CommandOutcome:
        try:
            return await errors.run_command(
                CallCommand.ANSWER, self._answer_command(), ended=self._ended
            )
        except CallGone as gone:
            # A plain WSSCallError while the call is not TERMINATED: the voice socket could not
            # be opened *here* (descriptors, network); nothing says the caller left.
            cause = gone.__cause__
            if type(cause) is telcoflow.WSSCallError and not self._ended():
                self.not_served = True
                raise CallNotServed(f"answer: {cause}") from cause
            raise

    async def _answer_command(self) -> telcoflow.CommandResult:
        """``call.answer()`` on a voice socket opened with the fast path (``voice_wire``)."""
        await voice_wire.open_voice(self._call)
        return await self._call.answer()

    def caller_audio(self) -> AsyncIterator[bytes]:
        # The SDK's iterator itself (no generator around it: one layer less per frame).
        stream: AsyncIterator[bytes] = self._call.audio_stream(0)
        return stream

    @property
    def end_reason(self) -> str:
        # The voice socket can close without `call.terminated` (a network fault): the SDK
        # then leaves the call LIVE forever, and nothing more can reach the caller.
        if self._call.state == telcoflow.CallState.TERMINATED:
            return "caller_hangup"
        return "telephony_lost"

    def on_call_error(self, handler: Callable[[str, str], None]) -> None:
        def relay(data: dict[str, Any] | None = None) -> None:
            data = data or {}
            handler(str(data.get("error_code", "UNKNOWN")), str(data.get("error_message", "")))

        self._call.on_call_event(telcoflow.CallEvent.CALL_ERROR)(relay)

    def _fast_voice(self) -> voice_wire.FastVoiceConnection | None:
        """The call's voice connection when it is ours and the call LIVE (the playout's path:
        the SDK's ``Call`` methods would only add their coroutines and state checks)."""
        voice = self._call.voice_session
        if self._call.state == telcoflow.CallState.LIVE and isinstance(
            voice, voice_wire.FastVoiceConnection
        ):
            return voice
        return None

    async def write_audio(self, pcm: bytes) -> None:
        voice = self._fast_voice()
        if voice is None:
            await errors.write(self._call.send_audio(pcm))
            return
        with errors.write_errors():
            voice.write_now(pcm)

    async def buffered_bytes(self) -> int:
        voice = self._fast_voice()
        if voice is None:
            return await errors.query(self._call.get_send_audio_buffer_size())
        return voice.buffered_now()

    async def clear_audio(self) -> int:
        return await errors.clear_buffer(self._call.clear_send_audio_buffer())

    async def command(
        self, command: CallCommand, *, ring_time_s: int | None = None
    ) -> CommandOutcome:
        call = self._call
        match command:
            case CallCommand.ANSWER:
                pending = call.answer()
            case CallCommand.CONNECT:
                pending = call.connect(ring_time_seconds=ring_time_s or 60)
            case CallCommand.WHISPER:
                pending = call.whisper()
            case CallCommand.BARGE:
                pending = call.barge()
            case CallCommand.SPY:
                pending = call.spy()
            case CallCommand.DISCONNECT:
                pending = call.disconnect()
            case CallCommand.CLOSE:
                pending = call.close()
        return await errors.run_command(command, pending, ended=self._ended)
