"""How caller audio travels to the model: at which rate, through which resampler, in what frames.

This is a latency decision as much as a quality one (``perf-notes.md``). Measured with 20 ms
frames, ``soxr``'s stream resampler holds back about 64 ms at 8 -> 16 kHz at MQ/HQ/VHQ (33 ms
at LQ, 0.3 ms at QQ, which is cubic interpolation with little filtering), and cutting its
uneven output back into fixed frames holds back up to one more frame. The Live API takes any
PCM rate declared as ``audio/pcm;rate=N`` and resamples on its side, so the fastest path for a
call is to send the call's own rate: nothing is held back at all.

libsoxr's minimum/intermediate phase filters are not reachable through ``python-soxr``'s public
API (``quality`` accepts QQ..VHQ only). Forced through its private extension they cut the audio
held back at 8 -> 16 kHz HQ only from 63 to 52 ms, because soxr buffers in blocks whatever the
phase: not a path worth a private API.

Pure functions and one tiny class; table-tested in ``tests/unit/test_input_path.py``.
"""

from __future__ import annotations

from typing import Final, Literal

from callbridge.bridge.audio import Rechunker, frame_bytes

ModelInputRate = Literal["auto", 8000, 16000, 24000]

CALL_FRAME_MS: Final = 20
"""Telcoflow delivers caller audio in 20 ms frames."""
NATIVE_RATES: Final = frozenset({8000, 16000})
"""Call rates sent to the model as they are under ``"auto"``: 16 kHz is the model's own rate,
8 kHz is declared and resampled by the server (no delay here, a third of the bytes)."""
AUTO_FALLBACK_RATE: Final = 16000
"""Under ``"auto"``, other call rates (24 kHz) are resampled to the model's native 16 kHz:
a third fewer bytes to encode and send, for 21 ms of filter delay at HQ."""


def model_input_rate(call_rate: int, setting: ModelInputRate) -> int:
    """The rate caller audio is sent to the model at, for a call at ``call_rate``."""
    if setting != "auto":
        return setting
    return call_rate if call_rate in NATIVE_RATES else AUTO_FALLBACK_RATE


class ChunkPassthrough:
    """Sends every non-empty chunk the resampler releases as it comes: no re-chunking delay.

    Same surface as :class:`~callbridge.bridge.audio.Rechunker`, so the caller pump uses either.
    """

    __slots__ = ()

    @property
    def pending(self) -> int:
        return 0

    def push(self, pcm: bytes) -> list[bytes]:
        return [pcm] if pcm else []

    def drain(self) -> bytes:
        return b""

    def clear(self) -> None:
        return None


def rechunks(frame_ms: int) -> bool:
    """Fixed model frames only when the tenant asks for frames other than the call's own.

    At the call's 20 ms the resampler's output (about 20 ms per frame, unevenly cut) is sent
    as it comes: holding it back to fill fixed frames would add up to a frame of delay. Other
    sizes are a deliberate trade (40 ms: half the messages for up to 20 ms more latency).
    """
    return frame_ms != CALL_FRAME_MS


def caller_framer(model_rate: int, frame_ms: int) -> Rechunker | ChunkPassthrough:
    """What cuts resampled caller audio into the messages sent to the model."""
    if rechunks(frame_ms):
        return Rechunker(frame_bytes(model_rate, frame_ms))
    return ChunkPassthrough()
