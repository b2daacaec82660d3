"""The caller's side of an emulated call, written as a short script of steps.

A script starts when the bridge answers. The caller pump asks the script for one 20 ms frame
per tick (see ``caller.ScriptCursor``), so a script never blocks anything: pausing and waiting
simply yield silence frames, which is what a real phone line carries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import soxr


@dataclass(frozen=True, slots=True)
class Say:
    """Speak ``pcm`` (s16le mono).

    ``rate`` is the rate of ``pcm``. Leave it ``None`` when the audio is already at the call's
    rate; otherwise the emulator resamples it once, when the step starts (the call's rate is
    only known after a session manager has claimed the call).
    """

    pcm: bytes
    rate: int | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    """Stay silent for ``seconds`` (silence frames keep flowing)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class WaitForAgentAudio:
    """Stay silent until ``min_s`` seconds of non-silent agent audio have been pulled.

    Counting starts when the step starts. Non-silent means a 20 ms slice with RMS above 200 on
    int16 samples. After ``timeout_s`` the script moves on and records ``script_timeout``.
    """

    min_s: float = 0.5
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class HangUp:
    """The caller hangs up (a remote hang-up: ``call.terminated`` then ``session.closed``)."""


Step = Say | Pause | WaitForAgentAudio | HangUp


class CallerScript:
    """An ordered, immutable list of caller steps.

    When the steps run out without a ``HangUp`` the caller keeps sending silence until the
    bridge ends the call.
    """

    __slots__ = ("steps",)

    def __init__(self, steps: Iterable[Step] = ()) -> None:
        self.steps: tuple[Step, ...] = tuple(steps)

    def __repr__(self) -> str:
        return f"CallerScript({list(self.steps)!r})"


def resample_pcm(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """Resample a whole s16le mono clip in one go.

    One-shot ``soxr.resample`` is fine for test assets; it would click at chunk edges if used
    on a stream, which is why the bridge itself uses ``soxr.ResampleStream``.
    """
    if from_rate == to_rate or not pcm:
        return pcm
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
    out = soxr.resample(samples, from_rate, to_rate)
    return np.asarray(out, dtype="<i2").tobytes()
