"""Builders for the server→client messages, shaped exactly as the real service sends them.

Each function returns one top-level message (camelCase keys). Audio frames for a `Speak` step are
identical for every session that speaks it, so they are encoded once and cached: with 100+
concurrent sessions the JSON + base64 work would otherwise dominate the emulator's CPU.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from .protocol import encode_frame

__all__ = [
    "AUDIO_CHUNK_BYTES",
    "AUDIO_CHUNK_S",
    "audio_frames",
    "go_away",
    "padded_transcription",
    "resumption_update",
    "server_content",
    "setup_complete",
    "split_words",
    "tool_call",
    "tool_call_cancellation",
    "usage_metadata",
]

AUDIO_CHUNK_S = 0.04
AUDIO_CHUNK_BYTES = 1920  # 40 ms of 24 kHz s16le mono
_OUTPUT_MIME = "audio/pcm;rate=24000"

Message = dict[str, Any]


def setup_complete() -> Message:
    """The only acceptable first reply to a valid setup."""
    return {"setupComplete": {}}


def server_content(**fields: Any) -> Message:
    """`serverContent` with the given camelCase fields (turnComplete=True, interrupted=True...)."""
    return {"serverContent": dict(fields)}


def tool_call(calls: Sequence[Mapping[str, Any]]) -> Message:
    """`toolCall` with function calls that each carry `id`, `name` and `args`."""
    return {"toolCall": {"functionCalls": [dict(c) for c in calls]}}


def tool_call_cancellation(ids: Sequence[str]) -> Message:
    """Tells the client that these outstanding calls were cancelled by a barge-in."""
    return {"toolCallCancellation": {"ids": list(ids)}}


def go_away(time_left_s: float) -> Message:
    """`goAway` with a protobuf Duration string such as "2s" or "0.5s"."""
    return {"goAway": {"timeLeft": f"{time_left_s:g}s"}}


def padded_transcription(size_bytes: int) -> Message:
    """A valid `outputTranscription` whose JSON is about `size_bytes` long (oversize tests)."""
    overhead = len('{"serverContent":{"outputTranscription":{"text":""}}}')
    return server_content(outputTranscription={"text": "a" * max(size_bytes - overhead, 1)})


def resumption_update(handle: str | None, consumed: int | None = None) -> Message:
    """A fresh resumable handle, or (None) the "not resumable right now" form.

    ``consumed``: with transparent resumption (Vertex) the index of the last client message
    the handle covers, so a client re-sends only what came after it.
    """
    if handle is None:
        return {"sessionResumptionUpdate": {"newHandle": "", "resumable": False}}
    update: dict[str, Any] = {"newHandle": handle, "resumable": True}
    if consumed is not None:
        update["lastConsumedClientMessageIndex"] = str(consumed)
    return {"sessionResumptionUpdate": update}


def usage_metadata(
    prompt_text: int,
    prompt_audio: int,
    response_audio: int,
    *,
    vertex: bool = False,
    thoughts: int = 0,
) -> Message:
    """Token accounting after a turn, split by modality like the real service reports it.

    Vertex names the output count `candidatesTokenCount` (and its details
    `candidatesTokensDetails`); the Developer API says `responseTokenCount`. `thoughts`
    (thinking tokens) go in `thoughtsTokenCount`, beside the response count and inside the
    total, as a public wire capture of `gemini-3.8-live` shows.
    """
    prompt = prompt_text + prompt_audio
    out = "candidates" if vertex else "response"
    meta: Message = {
        "promptTokenCount": prompt,
        f"{out}TokenCount": response_audio,
        "totalTokenCount": prompt + response_audio + thoughts,
        "promptTokensDetails": [
            {"modality": "TEXT", "tokenCount": prompt_text},
            {"modality": "AUDIO", "tokenCount": prompt_audio},
        ],
        f"{out}TokensDetails": [{"modality": "AUDIO", "tokenCount": response_audio}],
    }
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    return {"usageMetadata": meta}


@lru_cache(maxsize=64)
def audio_frames(pcm: bytes, binary: bool) -> tuple[str | bytes, ...]:
    """Encoded `serverContent.modelTurn` frames, one per 40 ms chunk of `pcm` (cached)."""
    frames: list[str | bytes] = []
    for start in range(0, len(pcm), AUDIO_CHUNK_BYTES):
        chunk = pcm[start : start + AUDIO_CHUNK_BYTES]
        data = base64.b64encode(chunk).decode("ascii")
        part = {"inlineData": {"mimeType": _OUTPUT_MIME, "data": data}}
        frames.append(encode_frame(server_content(modelTurn={"parts": [part]}), binary))
    return tuple(frames)


def split_words(text: str, chunks: int) -> list[list[str]]:
    """Spread transcription pieces over `chunks` audio chunks, the way live transcripts trickle.

    Piece i goes with chunk floor(i * chunks / n). Pieces keep their leading space, so the
    concatenation of every piece is exactly the original (whitespace-normalized) text.
    """
    words = text.split()
    slots: list[list[str]] = [[] for _ in range(max(chunks, 1))]
    for i, word in enumerate(words):
        piece = word if i == 0 else " " + word
        slots[i * len(slots) // len(words)].append(piece)
    return slots
