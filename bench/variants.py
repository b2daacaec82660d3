"""Prototype optimisations of our bridge, selectable with ``callbridge bench --variant``.

The default variant is the bridge exactly as shipped. A prototype here changes the bridge only
inside the benchmark's bridge process, so its effect can be measured under the same load before
anyone changes ``bridge/`` or ``adapters/`` (owned by the lead). Variants combine with ``+``,
e.g. ``--variant direct-send+cheap-rms``. Each names the profile finding it answers:

- ``direct-send``: google-genai's ``send_realtime_input`` validates a pydantic model, runs the
  request converter and re-walks the dict for every 20 ms frame (about a quarter of the CPU in
  perf-notes). The Live API message is documented JSON; this writes it on the session's
  websocket directly (same lock, same error handling, same frames on the wire).
- ``cheap-rms``: the caller-speech gate (``bridge.speech.CallerActivity``) computes an RMS per
  frame with four numpy passes and a float64 copy; one int32 dot product gives the same value.
- ``gc-freeze``: a full garbage collection walks every object the imports created (~110k, about
  65-100 ms here) and stalls every call's audio meanwhile; ``gc.freeze()`` after start-up moves
  them out of the collector's reach. The shipped bridge now does this itself
  (``bridge.housekeeping``, wired in ``adapters.app``), so on a current tree it changes nothing.
- ``frames-40ms``: 40 ms caller frames to the model instead of 20 ms (half the messages, 20 ms
  more latency at most).
"""

from __future__ import annotations

import base64
import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Variant:
    """What a variant changes: tenant config sections, then code, then after start-up."""

    describe: str
    config: Callable[[dict[str, Any]], None] = lambda _sections: None
    patch: Callable[[], None] = lambda: None
    after_start: Callable[[], None] = lambda: None


def _patch_direct_send() -> None:
    import websockets

    from adapters.gemini_live.session import GeminiLiveSession

    async def send_audio(self: GeminiLiveSession, pcm: bytes) -> None:
        prefix = f'{{"realtimeInput":{{"audio":{{"mimeType":"{self._mime}","data":"'
        async with self._send_lock:
            live_session = self._live
            if live_session is None:
                self._unsent.append(pcm)
                return
            try:
                await live_session._ws.send(prefix + base64.b64encode(pcm).decode() + '"}}}')
            except (websockets.ConnectionClosed, OSError):
                self._unsent.append(pcm)

    GeminiLiveSession.send_audio = send_audio  # type: ignore[method-assign]


def fast_rms(pcm: bytes) -> float:
    """RMS of s16le PCM with one dot product (int32 holds a 20 ms frame's sum of squares)."""
    if len(pcm) < 2:
        return 0.0
    samples = np.frombuffer(pcm, dtype="<i2", count=len(pcm) // 2).astype(np.int32)
    return float(np.sqrt(int(np.dot(samples, samples)) / samples.size))


def _patch_cheap_rms() -> None:
    import bridge.speech

    bridge.speech.rms = fast_rms  # type: ignore[attr-defined]


def _freeze() -> None:
    gc.collect()
    gc.freeze()


def _frames_40ms(sections: dict[str, Any]) -> None:
    sections.setdefault("audio", {})["frame_ms"] = 40


VARIANTS: dict[str, Variant] = {
    "default": Variant("the bridge as shipped"),
    "direct-send": Variant("Live API JSON written directly", patch=_patch_direct_send),
    "cheap-rms": Variant("one dot product per caller frame", patch=_patch_cheap_rms),
    "gc-freeze": Variant("gc.freeze() after start-up", after_start=_freeze),
    "frames-40ms": Variant("40 ms caller frames", config=_frames_40ms),
}


def parse(name: str) -> list[Variant]:
    """``a+b`` -> the variants named; raises ``ValueError`` naming the known ones."""
    parts = [p for p in name.split("+") if p]
    unknown = [p for p in parts if p not in VARIANTS]
    if unknown or not parts:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(sorted(VARIANTS))}")
    return [VARIANTS[p] for p in parts]
