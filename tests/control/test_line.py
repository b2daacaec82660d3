"""The call's send path under pressure: a tiny SDK ring buffer, sends after hang-up, a failing
``agent.interrupt``.

The buffer test drives :class:`~bridge.call.BridgedCall` directly on a real telcoflow SDK call
(``CallAudioConfig(buffer_size=...)``: the call source has no setting for the SDK's buffer
size) and a real google-genai session on the Gemini emulator, so every byte crosses the
unmodified clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import telcoflow
from pydantic import SecretStr

from adapters.gemini_live import GeminiLiveConnector
from adapters.telcoflow.port import TelcoflowCall
from bridge.audio import StreamResampler
from bridge.call import BridgedCall
from bridge.config import AudioSettings, ModelSettings, WarningSettings
from bridge.ports import SessionRequest
from bridge.record import CallRecord
from bridge.warnings import BridgeWarning, CallWarner, WarningCode
from emulators.gemini_live import GeminiLiveEmulator, Script, Speak, Turn
from emulators.gemini_live.messages import AUDIO_CHUNK_BYTES
from emulators.telcoflow import CallerScript, HangUp, Pause, TelcoflowEmulator
from tests.control.kit import agent_says

API_KEY, CONNECTOR = "line-key", "line-conn"


@dataclass
class Claimed:
    """The thinnest SDK consumer: claims each notified call and hands over the Call."""

    manager: telcoflow.SessionManager
    calls: asyncio.Queue[telcoflow.Call] = field(default_factory=asyncio.Queue)

    async def on_notify(self, note: telcoflow.SessionNotification) -> None:
        session = await self.manager.open_session(note.session_id)

        async def incoming(call: telcoflow.Call) -> None:
            await self.calls.put(call)

        session.on_incoming_call(incoming)
        await session.ready()


@asynccontextmanager
async def sdk_manager(
    emu: TelcoflowEmulator, *, rate: int, buffer_size: int
) -> AsyncIterator[Claimed]:
    config = telcoflow.SessionManagerConfig.create(
        api_key=API_KEY,
        connector_uuid=CONNECTOR,
        base_url=emu.base_url,
        call_audio=telcoflow.CallAudioConfig(sample_rate=rate, buffer_size=buffer_size),
    )
    manager = telcoflow.SessionManager(config)
    claimed = Claimed(manager)
    manager.on_session_notification(claimed.on_notify)
    async with manager:
        yield claimed


class Sink(list[BridgeWarning]):
    def submit(self, warning: BridgeWarning) -> None:
        self.append(warning)


def expected_line_audio(speech: Speak, call_rate: int) -> bytes:
    """The model's speech as the bridge must write it: resampled in the emulator's 40 ms
    chunks by one stream resampler, its tail flushed and padded to a whole 20 ms frame."""
    resampler = StreamResampler(24000, call_rate, "HQ")
    pcm = b"".join(
        resampler.process(speech.pcm[i : i + AUDIO_CHUNK_BYTES])
        for i in range(0, len(speech.pcm), AUDIO_CHUNK_BYTES)
    )
    pcm += resampler.flush()
    frame = call_rate // 50 * 2
    return pcm + bytes(-len(pcm) % frame)


async def test_a_tiny_send_buffer_loses_no_model_audio_under_a_burst() -> None:
    rate, buffer_size, high_water_s = 16000, 16384, 2.0  # the buffer holds 0.5 s, not 2 s
    speech = agent_says(3.0, "A long burst of model speech.")
    sink = Sink()
    async with (
        TelcoflowEmulator(API_KEY, CONNECTOR) as telco_emu,
        GeminiLiveEmulator(script=Script(greeting=Turn([speech])), burst_speed=20.0) as gemini,
        sdk_manager(telco_emu, rate=rate, buffer_size=buffer_size) as claimed,
    ):
        emulated = telco_emu.place_call(CallerScript([Pause(4.5), HangUp()]))
        async with asyncio.timeout(10):
            sdk_call = await claimed.calls.get()
        port = TelcoflowCall(sdk_call, rate)
        assert (await port.answer()).ok
        settings = ModelSettings(
            api_key=SecretStr("emulator-key"),
            base_url=gemini.base_url,
            ca_file=Path(gemini.ca_file),
        )
        request = SessionRequest(port.call_id, "line", "Be brief.", input_rate=16000)
        async with GeminiLiveConnector(settings).open(request) as session:
            record = CallRecord(port.call_id, "line", "", "")
            warner = CallWarner(call_id=port.call_id, tenant="line", sink=sink, min_interval_s=0)
            bridged = BridgedCall(
                port,
                session,
                audio=AudioSettings(call_rate=rate, playout_high_water_s=high_water_s),
                thresholds=WarningSettings(),
                record=record,
                warner=warner,
                greeting_prompt="Greet the caller.",
            )
            async with asyncio.timeout(30):
                outcome = await bridged.run()
        telco = await emulated.ended(timeout=10)

    expected = expected_line_audio(speech, rate)
    pulled = telco.agent_pcm()
    full = [w for w in sink if w.code == WarningCode.SEND_BUFFER_FULL]
    print(
        f"\ntiny buffer: {len(pulled)} of {len(expected)} B pulled, {len(full)} SEND_BUFFER_FULL, "
        f"{telco.underruns} underruns, written {bridged.stats.agent_bytes_written} B"
    )
    assert outcome == "caller_hangup"
    assert bridged.stats.overflow_dropped_bytes == 0
    assert len(pulled) == len(expected) and pulled == expected, "model audio lost or altered"
    assert telco.underruns == 0, "the line ran dry mid-burst"
    assert full, "the full buffer must be reported"
