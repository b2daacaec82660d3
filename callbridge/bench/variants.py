"""Prototype optimisations of our bridge, selectable with ``callbridge bench --variant``.

The default variant is the bridge exactly as shipped. A prototype here changes the bridge only
inside the benchmark's bridge process, so its effect can be measured under the same load before
anyone changes ``bridge/`` or ``adapters/`` (owned by the lead). Variants combine with ``+``,
e.g. ``--variant direct-send+cheap-rms``. Each names the profile finding it answers:

The first profile's three findings are now in the shipped bridge (so they are no longer
variants): the Live API JSON written and read directly (``adapters/gemini_live/wire.py``), the
one-dot-product RMS (``bridge/audio.rms``) and ``gc.freeze()`` after start-up
(``bridge/housekeeping.py``). What remains to try:

- ``frames-40ms``: 40 ms caller frames to the model instead of 20 ms (half the messages, 20 ms
  more latency at most).

The 8 kHz paths (``--call-rate 8000``; the shipped default sends the call's own 8 kHz, declared
as ``audio/pcm;rate=8000``, and the server resamples):

- ``input-16k``: resample to 16 kHz in the bridge (soxr at ``audio.resample_quality``, HQ).
- ``input-16k-qq``: the same with soxr QQ (cubic interpolation: almost no delay, little
  filtering; QQ applies to both directions).
- ``rechunked``: cut the resampled caller audio back into fixed 20 ms frames, as the bridge did
  before ``callbridge.bridge.input_path``; ``input-16k+rechunked`` is the bridge's earlier 8 kHz
  default.

Not an optimisation but a cost to measure the same way:

- ``console-5``: the operator console served by the bridge process with five console streams
  open (one live-calls table, four single calls; ``callbridge.bench.console_watch`` reads them from
  the emulators' core). Its figures beside ``default`` are the console's cost to the audio path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Variant:
    """What a variant changes: tenant config sections, then code, then after start-up."""

    describe: str
    config: Callable[[dict[str, Any]], None] = lambda _sections: None
    patch: Callable[[], None] = lambda: None
    after_start: Callable[[], None] = lambda: None
    console_streams: int = 0
    """Console streams kept open during the run (0: no console at all)."""


def _frames_40ms(sections: dict[str, Any]) -> None:
    sections.setdefault("audio", {})["frame_ms"] = 40


def _input_16k(sections: dict[str, Any]) -> None:
    sections.setdefault("audio", {})["model_input_rate"] = 16000


def _input_16k_qq(sections: dict[str, Any]) -> None:
    _input_16k(sections)
    sections["audio"]["resample_quality"] = "QQ"


def _rechunked() -> None:
    from callbridge.bridge import call
    from callbridge.bridge.audio import Rechunker, frame_bytes

    def fixed_frames(model_rate: int, frame_ms: int) -> Rechunker:
        return Rechunker(frame_bytes(model_rate, frame_ms))

    setattr(call, "caller_framer", fixed_frames)  # noqa: B010 (a prototype's patch)


VARIANTS: dict[str, Variant] = {
    "default": Variant("the bridge as shipped"),
    "frames-40ms": Variant("40 ms caller frames", config=_frames_40ms),
    "console-5": Variant("operator console with 5 open streams", console_streams=5),
    "input-16k": Variant("caller audio resampled to 16 kHz (HQ) in the bridge", config=_input_16k),
    "input-16k-qq": Variant("caller audio resampled to 16 kHz with soxr QQ", config=_input_16k_qq),
    "rechunked": Variant("resampled caller audio cut into fixed 20 ms frames", patch=_rechunked),
}


def parse(name: str) -> list[Variant]:
    """``a+b`` -> the variants named; raises ``ValueError`` naming the known ones."""
    parts = [p for p in name.split("+") if p]
    unknown = [p for p in parts if p not in VARIANTS]
    if unknown or not parts:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(sorted(VARIANTS))}")
    return [VARIANTS[p] for p in parts]
