"""Load the committed speech assets (short espeak-ng phrases as raw s16le mono PCM).

The emulators, the demo and the benchmark all need the same few phrases; reading them through
`importlib.resources` keeps that working from a checkout, an editable install and a wheel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = ["Phrase", "load_phrase", "phrase_names"]

_PACKAGE = "callbridge.emulators"
_FOLDER = "assets"


@dataclass(frozen=True, slots=True)
class Phrase:
    """One phrase: raw signed 16-bit little-endian mono PCM, its sample rate and its words."""

    pcm: bytes
    rate: int
    text: str

    @property
    def duration_s(self) -> float:
        """Length of the audio in seconds."""
        return len(self.pcm) / (2 * self.rate)


@cache
def _manifest() -> dict[str, dict[str, object]]:
    raw = resources.files(_PACKAGE).joinpath(_FOLDER, "manifest.json").read_text("utf-8")
    data: dict[str, dict[str, object]] = json.loads(raw)
    return data


def phrase_names() -> list[str]:
    """Names of every committed phrase, e.g. ``caller_greeting`` or ``agent_farewell``."""
    return sorted(_manifest())


@cache
def load_phrase(name: str) -> Phrase:
    """Return the named phrase; raises KeyError naming the known phrases if it does not exist."""
    entry = _manifest().get(name)
    if entry is None:
        raise KeyError(f"unknown phrase {name!r}; known: {', '.join(phrase_names())}")
    pcm = resources.files(_PACKAGE).joinpath(_FOLDER, f"{name}.pcm").read_bytes()
    return Phrase(pcm=pcm, rate=int(str(entry["rate"])), text=str(entry["text"]))
