"""Does a recorded channel hold the audio a reference holds, in place? Cross-correlation.

Pure numpy, no I/O: the recording bench (``callbridge.bench.record_hour``) reads the bridge's
recording and the emulator's own view of the call and hands both channels here.

- :func:`best_lag`: the lag (recorded later = positive) with the highest normalised
  cross-correlation within ``±max_lag`` of a guess, computed for every lag by FFT and
  normalised exactly on each lag's overlap (1.0 = the same samples, scaled).
- :func:`match_windows`: :func:`best_lag` per window (e.g. 5 minutes), so a drift or a gap shows
  as a window whose lag moved or whose peak fell, instead of hiding in a whole-hour average.
- :func:`match_bursts`: the same per stretch of speech in the reference. The bridge places
  each agent answer by the caller's clock as it saw it, so each answer may sit a few ms off
  the next one: matched one by one, each must be found near the expected lag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Samples = np.ndarray[Any, np.dtype[Any]]


@dataclass(frozen=True, slots=True)
class Match:
    """Where one stretch of the reference was found in the recording."""

    start: int
    """First reference sample of the stretch."""
    length: int
    lag: int
    """Recording index minus reference index (recorded later = positive)."""
    peak: float
    """Normalised cross-correlation at ``lag``: 1.0 is a perfect (scaled) copy; 0.0 when the
    reference is silent there (nothing to find)."""
    energy_ratio: float
    """Energy of the recording over the stretch (shifted by ``lag``) / the reference's."""


def _energy_prefix(x: Samples) -> Samples:
    return np.concatenate([[0.0], np.cumsum(x * x)])


def best_lag(
    recorded: Samples, reference: Samples, *, max_lag: int, guess: int = 0
) -> tuple[int, float]:
    """The lag in ``guess ± max_lag`` where ``recorded`` best matches ``reference``."""
    ref = reference.astype(np.float64)
    n = len(ref)
    lo = guess - max_lag
    # cand[k + i] = recorded[lo + k + i]: zero outside the recording.
    cand = np.zeros(n + 2 * max_lag, dtype=np.float64)
    src_lo, src_hi = max(lo, 0), min(lo + len(cand), len(recorded))
    if src_hi > src_lo:
        cand[src_lo - lo : src_hi - lo] = recorded[src_lo:src_hi]
    ref_energy = float(np.dot(ref, ref))
    if n == 0 or ref_energy == 0.0:
        return guess, 0.0
    size = 1 << (len(cand) + n - 1).bit_length()
    spectrum = np.fft.rfft(cand, size) * np.conj(np.fft.rfft(ref, size))
    corr = np.fft.irfft(spectrum, size)[: 2 * max_lag + 1]
    prefix = _energy_prefix(cand)
    window_energy = prefix[n : n + 2 * max_lag + 1] - prefix[: 2 * max_lag + 1]
    denom = np.sqrt(np.maximum(window_energy, 0.0) * ref_energy)
    scores = np.divide(corr, denom, out=np.zeros_like(corr), where=denom > 1e-9 * ref_energy)
    k = int(np.argmax(scores))
    return lo + k, float(scores[k])


def _match(
    recorded: Samples, reference: Samples, start: int, length: int, max_lag: int, guess: int
) -> Match:
    ref = reference[start : start + length]
    lag, peak = best_lag(recorded, ref, max_lag=max_lag, guess=start + guess)
    lag -= start
    ref_energy = float(np.dot(ref.astype(np.float64), ref.astype(np.float64)))
    lo = start + lag
    got = recorded[max(lo, 0) : max(lo + len(ref), 0)].astype(np.float64)
    ratio = float(np.dot(got, got)) / ref_energy if ref_energy else 0.0
    return Match(start, len(ref), lag, round(peak, 5), round(ratio, 4))


def match_windows(
    recorded: Samples, reference: Samples, *, window: int, max_lag: int, guess: int = 0
) -> list[Match]:
    """:func:`best_lag` for each ``window`` samples of the reference; a remainder shorter than
    half a window joins the last one (a few seconds alone may hold no speech at all)."""
    starts = list(range(0, len(reference), window))
    if len(starts) > 1 and len(reference) - starts[-1] < window // 2:
        starts.pop()
    ends = [*starts[1:], len(reference)]
    return [
        _match(recorded, reference, start, end - start, max_lag, guess)
        for start, end in zip(starts, ends, strict=True)
    ]


def speech_bursts(
    pcm: Samples, rate: int, *, gap_s: float = 0.3, threshold: float = 200.0
) -> list[tuple[int, int]]:
    """(start, end) sample ranges of sound (20 ms RMS over ``threshold``) separated by more
    than ``gap_s`` of quiet."""
    frame = rate // 50
    n = len(pcm) // frame
    if n == 0:
        return []
    frames = pcm[: n * frame].astype(np.float64).reshape(n, frame)
    loud = np.flatnonzero(np.sqrt((frames * frames).mean(axis=1)) > threshold)
    if len(loud) == 0:
        return []
    max_quiet = int(gap_s * 50)
    breaks = np.flatnonzero(np.diff(loud) > max_quiet + 1)
    starts = np.concatenate([[loud[0]], loud[breaks + 1]])
    ends = np.concatenate([loud[breaks], [loud[-1]]]) + 1
    return [(int(s) * frame, int(e) * frame) for s, e in zip(starts, ends, strict=True)]


def match_bursts(
    recorded: Samples,
    reference: Samples,
    rate: int,
    *,
    max_lag: int,
    guess: int = 0,
    pad_s: float = 0.2,
) -> list[Match]:
    """Each stretch of speech in ``reference`` (padded by ``pad_s``), found in ``recorded``."""
    pad = int(pad_s * rate)
    matches = []
    for start, end in speech_bursts(reference, rate):
        lo = max(start - pad, 0)
        matches.append(_match(recorded, reference, lo, end + pad - lo, max_lag, guess))
    return matches


__all__ = ["Match", "best_lag", "match_bursts", "match_windows", "speech_bursts"]
