"""The Gemini emulator's silent failures on cue, as the unmodified google-genai client sees them."""

from __future__ import annotations

import numpy as np

from callbridge.emulators.gemini_live import Fault, GeminiLiveEmulator, Script, Turn
from callbridge.emulators.voices import load_phrase
from tests.emulators.test_gemini_live_emulator import is_turn_complete, live, short_speech

LONG = load_phrase("agent_answer_long")


def _script(fault: Fault) -> Script:
    return Script([Turn([short_speech(1.0, LONG.text)])], faults=[fault])


def _audio(inbox: object) -> np.ndarray:
    pcm = b"".join(m.data for m in inbox.messages if m.data)  # type: ignore[attr-defined]
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


async def _turn(fault: Fault) -> tuple[object, object]:
    async with GeminiLiveEmulator(script=_script(fault)) as emu, live(emu) as (session, inbox):
        await session.send_realtime_input(text="hello")
        await inbox.wait_for(is_turn_complete)
    return emu.sessions[0], inbox


async def test_response_rejected() -> None:
    log, inbox = await _turn(Fault.response_rejected(0))
    [end] = [m for m in inbox.messages if is_turn_complete(m)]  # type: ignore[attr-defined]
    assert end.server_content.turn_complete_reason.value == "RESPONSE_REJECTED"
    assert _audio(inbox).size == 0
    assert "generationComplete" not in log.kinds()  # type: ignore[attr-defined]


async def test_quiet_audio() -> None:
    _, inbox = await _turn(Fault.quiet_audio(0))
    audio = _audio(inbox)
    assert audio.size > 0 and np.sqrt(np.mean(audio**2)) < 10
    assert "".join(inbox.said()).strip() == LONG.text  # type: ignore[attr-defined]


async def test_phantom_interrupt() -> None:
    log, inbox = await _turn(Fault.phantom_interrupt(0, after_s=0.5))
    kinds = log.kinds()  # type: ignore[attr-defined]
    assert kinds.index("interrupted") < kinds.index("turnComplete")
    assert log.speech_started_at == []  # type: ignore[attr-defined]  # nobody spoke
    assert abs(_audio(inbox).size / 24000 - 0.5) < 0.05


async def test_cut_mid_sentence() -> None:
    log, inbox = await _turn(Fault.cut_mid_sentence(0, fraction=0.5))
    said = "".join(inbox.said()).strip()  # type: ignore[attr-defined]
    assert said and LONG.text.startswith(said) and not said.endswith(".")
    assert "generationComplete" not in log.kinds()  # type: ignore[attr-defined]
    assert "interrupted" not in log.kinds()  # type: ignore[attr-defined]


async def test_tone() -> None:
    _, inbox = await _turn(Fault.tone(0, seconds=1.0))
    audio = _audio(inbox)
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    peak_hz = np.argmax(spectrum) * 24000 / audio.size
    assert abs(peak_hz - 1000) < 5 and inbox.said() == []  # type: ignore[attr-defined]
