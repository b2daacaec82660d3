"""The caller -> model path: which rate, and whether anything holds audio back."""

from __future__ import annotations

import numpy as np
import pytest

from callbridge.bridge.audio import Rechunker, StreamResampler, frame_bytes
from callbridge.bridge.config import AudioSettings
from callbridge.bridge.input_path import ChunkPassthrough, caller_framer, model_input_rate


@pytest.mark.parametrize(
    ("call_rate", "setting", "expected"),
    [
        (8000, "auto", 8000),  # declared audio/pcm;rate=8000: the server resamples
        (16000, "auto", 16000),
        (24000, "auto", 16000),  # a third fewer bytes, 21 ms of filter at HQ
        (8000, 16000, 16000),
        (8000, 24000, 24000),
        (24000, 24000, 24000),
        (16000, 8000, 8000),
    ],
)
def test_model_input_rate(call_rate: int, setting: str | int, expected: int) -> None:
    assert model_input_rate(call_rate, setting) == expected  # type: ignore[arg-type]
    audio = AudioSettings(call_rate=call_rate, model_input_rate=setting)
    assert audio.model_rate() == expected


def test_model_input_rate_from_the_environment_is_a_number() -> None:
    assert AudioSettings(call_rate=8000, model_input_rate="8000").model_rate() == 8000


def test_model_input_rate_rejects_other_rates() -> None:
    with pytest.raises(ValueError, match="model_input_rate"):
        AudioSettings(model_input_rate=12000)


@pytest.mark.parametrize(
    ("frame_ms", "kind"), [(20, ChunkPassthrough), (40, Rechunker), (10, Rechunker)]
)
def test_framer_rechunks_only_for_other_frame_sizes(frame_ms: int, kind: type) -> None:
    assert isinstance(caller_framer(16000, frame_ms), kind)


def _held_back_ms(framer: Rechunker | ChunkPassthrough, quality: str) -> float:
    """Median caller audio (ms) not yet sent after each 20 ms frame, 8 kHz call -> 16 kHz."""
    resampler = StreamResampler(8000, 16000, quality)  # type: ignore[arg-type]
    rng = np.random.default_rng(3)
    sent_in, sent_out, held = 0, 0, []
    for _ in range(100):
        frame = (rng.standard_normal(160) * 3000).astype("<i2").tobytes()
        sent_in += 160
        for chunk in framer.push(resampler.process(frame)):
            sent_out += len(chunk) // 2
        held.append((sent_in / 8000 - sent_out / 16000) * 1000)
    return float(np.median(held[10:]))


def test_passthrough_adds_no_frame_to_the_resampler_hold() -> None:
    """The re-chunker's extra hold is what ``caller_framer`` removes at 20 ms frames."""
    fixed = _held_back_ms(Rechunker(frame_bytes(16000, 20)), "HQ")
    passed = _held_back_ms(ChunkPassthrough(), "HQ")
    assert passed < fixed - 5, (passed, fixed)
    assert _held_back_ms(ChunkPassthrough(), "QQ") < 1.0
