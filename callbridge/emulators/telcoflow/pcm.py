"""PCM arithmetic shared by the caller pump and the playout loop (s16le mono only)."""

from __future__ import annotations

import numpy as np

from callbridge.emulators.energy import slice_mean_squares

FRAME_S = 0.02
"""Every audio frame the emulator sends or plays is 20 ms long."""

SILENCE_RMS = 200.0
"""A 20 ms slice whose int16 RMS is at or below this counts as silence."""

SUPPORTED_RATES = (8000, 16000, 24000)


def frame_bytes(sample_rate: int) -> int:
    """Bytes in one 20 ms s16le mono frame: 320 at 8 kHz, 640 at 16 kHz, 960 at 24 kHz."""
    return sample_rate // 50 * 2


def nonsilent_seconds(pcm: bytes, sample_rate: int) -> float:
    """Seconds of ``pcm`` that are not silence, judged per 20 ms slice.

    The trailing partial slice is judged on its own and counted by its real length.
    """
    usable = len(pcm) // 2 * 2
    if usable == 0:
        return 0.0
    samples = np.frombuffer(pcm, dtype="<i2", count=usable // 2)
    per_slice = sample_rate // 50
    threshold = SILENCE_RMS * SILENCE_RMS
    energies = slice_mean_squares(samples, per_slice)
    voiced = sum(1 for energy in energies if energy > threshold) * FRAME_S
    whole = len(samples) // per_slice * per_slice
    tail = samples[whole:]
    if len(tail) and slice_mean_squares(tail, len(tail))[0] > threshold:
        voiced += len(tail) / sample_rate
    return voiced
