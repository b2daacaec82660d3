"""PCM helpers for the audio path: stateful resampling and rechunking.

Everything here is synchronous, allocation-light and free of I/O so the pumps in
``callbridge.bridge.call`` can run it inline. Audio is always signed 16-bit little-endian mono.

Why a *stream* resampler: resampling each chunk on its own (``soxr.resample``) restarts the
filter at every chunk edge and clicks; one ``soxr.ResampleStream`` per call per direction keeps
the filter state across chunks. Its filter holds back a few tens of milliseconds of audio
(see ``perf-notes.md``), which :meth:`StreamResampler.flush` releases at a turn boundary.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np
import soxr

SAMPLE_WIDTH: Final = 2
"""Bytes per sample of s16le mono PCM."""

SUPPORTED_CALL_RATES: Final = (8000, 16000, 24000)
Quality = Literal["QQ", "LQ", "MQ", "HQ", "VHQ"]


def bytes_per_ms(rate: int) -> float:
    """How many PCM bytes one millisecond of audio takes at ``rate``."""
    return rate * SAMPLE_WIDTH / 1000


def frame_bytes(rate: int, frame_ms: int) -> int:
    """Size of one ``frame_ms`` frame at ``rate``, always a whole number of samples."""
    samples = rate * frame_ms // 1000
    if samples <= 0:
        raise ValueError(f"frame of {frame_ms} ms at {rate} Hz holds no sample")
    return samples * SAMPLE_WIDTH


def duration_s(pcm_len: int, rate: int) -> float:
    """Seconds of audio in ``pcm_len`` bytes at ``rate``."""
    return pcm_len / (rate * SAMPLE_WIDTH)


def rms(pcm: bytes) -> float:
    """Root-mean-square level of s16le PCM (0 for empty input)."""
    if len(pcm) < SAMPLE_WIDTH:
        return 0.0
    # One float32 cast and one dot product: 3x cheaper than mean-of-squares, and it runs on
    # every caller frame. (float32 is ample for a level; int32 would overflow on loud audio.)
    samples = np.frombuffer(pcm, dtype="<i2", count=len(pcm) // SAMPLE_WIDTH).astype(np.float32)
    return float(np.sqrt(np.dot(samples, samples) / samples.size))


class StreamResampler:
    """Resamples a continuous s16le stream from ``in_rate`` to ``out_rate``.

    Input may arrive in chunks of any byte length, even odd ones: a dangling byte is kept
    for the next chunk so a sample is never split. When the rates match, audio passes
    through untouched (no copy, no delay).
    """

    __slots__ = ("_carry", "_in_rate", "_out_rate", "_quality", "_stream")

    def __init__(self, in_rate: int, out_rate: int, quality: Quality = "HQ") -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self._in_rate = in_rate
        self._out_rate = out_rate
        self._quality = quality
        self._carry = b""
        self._stream: soxr.ResampleStream | None = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality)
        )

    @property
    def in_rate(self) -> int:
        return self._in_rate

    @property
    def out_rate(self) -> int:
        return self._out_rate

    @property
    def passthrough(self) -> bool:
        return self._stream is None

    def process(self, pcm: bytes) -> bytes:
        """Resample the next chunk; returns what the filter releases (possibly empty)."""
        if self._carry:
            pcm = self._carry + pcm
            self._carry = b""
        if len(pcm) % SAMPLE_WIDTH:
            self._carry = pcm[-1:]
            pcm = pcm[:-1]
        if self._stream is None or not pcm:
            return pcm
        samples = np.frombuffer(pcm, dtype="<i2")
        out: np.ndarray = self._stream.resample_chunk(samples, last=False)
        return out.tobytes()

    def flush(self) -> bytes:
        """Release the audio the filter still holds and start a fresh stream.

        Call at a natural boundary (end of a model turn) so the turn's last few tens of
        milliseconds are played now instead of being glued to the start of the next turn.
        """
        self._carry = b""
        if self._stream is None:
            return b""
        out: np.ndarray = self._stream.resample_chunk(np.zeros(0, dtype="<i2"), last=True)
        self._stream.clear()
        return out.tobytes()

    def reset(self) -> None:
        """Discard held audio (after a barge-in: that audio must never be played)."""
        self._carry = b""
        if self._stream is not None:
            self._stream.clear()


class Rechunker:
    """Cuts a byte stream into fixed-size frames.

    The Telcoflow server pulls whole 20 ms frames and the model is fed fixed frames, so
    both directions normalise chunk sizes here. Leftover bytes wait for the next push.
    """

    __slots__ = ("_buf", "_frame")

    def __init__(self, frame_size: int) -> None:
        if frame_size <= 0 or frame_size % SAMPLE_WIDTH:
            raise ValueError(f"frame size must be a positive whole number of samples: {frame_size}")
        self._frame = frame_size
        self._buf = bytearray()

    @property
    def frame_size(self) -> int:
        return self._frame

    @property
    def pending(self) -> int:
        """Bytes held back waiting for a full frame."""
        return len(self._buf)

    def push(self, pcm: bytes) -> list[bytes]:
        """Add audio; return every complete frame now available, oldest first."""
        if not self._buf and len(pcm) == self._frame:
            return [pcm]
        self._buf += pcm
        n_full = len(self._buf) // self._frame
        if n_full == 0:
            return []
        cut = n_full * self._frame
        data = bytes(self._buf[:cut])
        del self._buf[:cut]
        return [data[i : i + self._frame] for i in range(0, cut, self._frame)]

    def drain(self) -> bytes:
        """Return the partial frame held back (at a turn end) and empty the buffer."""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def clear(self) -> None:
        self._buf.clear()
