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

Not an optimisation but a cost to measure the same way:

- ``console-5``: the operator console served by the bridge process with five console streams
  open (one live-calls table, four single calls; ``callbridge.bench.console_watch`` reads them from
  the
  emulators' core). Its figures beside ``default`` are the console's cost to the audio path.
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


VARIANTS: dict[str, Variant] = {
    "default": Variant("the bridge as shipped"),
    "frames-40ms": Variant("40 ms caller frames", config=_frames_40ms),
    "console-5": Variant("operator console with 5 open streams", console_streams=5),
}


def parse(name: str) -> list[Variant]:
    """``a+b`` -> the variants named; raises ``ValueError`` naming the known ones."""
    parts = [p for p in name.split("+") if p]
    unknown = [p for p in parts if p not in VARIANTS]
    if unknown or not parts:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(sorted(VARIANTS))}")
    return [VARIANTS[p] for p in parts]
