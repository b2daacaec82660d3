"""The Live API's hot messages, read and written as the documented JSON.

google-genai opens the session (setup, TLS, auth); after that the two messages that repeat
50 times a second per call bypass its pydantic models: the caller's audio frames and the
model's audio chunks. Measured by ``callbridge bench``, the SDK's request conversion and
response parsing cost about a quarter of the bridge's CPU (see perf-notes.md); this module
writes ``realtimeInput`` and reads ``BidiGenerateContentServerMessage`` with ``orjson`` and
``pybase64`` alone. Everything else about the session still goes through the SDK.

Why those two and not the standard library (measured on the benchmark machine): a model audio
message (40 ms at 24 kHz, 2.7 KB) costs ~8 us in ``json.loads`` of the socket's bytes and
~10 us in ``base64.b64decode``; ``orjson`` and ``pybase64`` take ~2 us and ~3 us. It runs 25
times per second of agent speech per call; encoding a 20 ms caller frame drops from ~2.3 to
~0.5 us, 50 times a second.

Server messages are proto-JSON: camelCase keys (snake_case accepted too); unknown fields are
ignored, as the protocol intends, rather than crashing the receive loop as the SDK does.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import pybase64

from callbridge.adapters import ws_send
from callbridge.adapters.gemini_live.translate import parse_duration_s, usage_event
from callbridge.bridge.errors import BridgeError
from callbridge.bridge.events import (
    GenerationComplete,
    Interrupted,
    ModelAudio,
    ModelEvent,
    ToolCall,
    ToolCallCancelled,
    Transcript,
    TurnComplete,
    Usage,
)


class RawSocket(Protocol):
    """The part of a websockets client connection the hot path uses."""

    async def send(self, message: str) -> None: ...

    async def recv(self, decode: bool | None = None) -> str | bytes: ...


class SdkIncompatible(BridgeError):
    """google-genai no longer exposes the session's websocket where this module expects it."""


def raw_socket(session: object) -> RawSocket:
    """The websocket under a google-genai ``AsyncSession`` (checked: fails loudly if moved).

    Checked against google-genai 2.34.0, where ``AsyncSession._ws`` is the websockets client
    connection the SDK itself sends on.
    """
    ws = getattr(session, "_ws", None)
    if (
        ws is None
        or not callable(getattr(ws, "send", None))
        or not callable(getattr(ws, "recv", None))
    ):
        raise SdkIncompatible(
            "google-genai's AsyncSession has no usable `_ws`; re-check "
            "adapters/gemini_live/wire.py against the installed SDK version"
        )
    # Caller audio is written with ws_send.send_now (the hot path): fail here, not mid-call.
    ws_send.check_connection(ws, "google-genai's AsyncSession._ws")
    return ws  # type: ignore[no-any-return]


def audio_frame(pcm: bytes, mime_type: str) -> str:
    """A ``realtimeInput`` message carrying one chunk of caller audio."""
    return (
        '{"realtimeInput":{"audio":{"mimeType":"'
        + mime_type
        + '","data":"'
        + pybase64.b64encode_as_string(pcm)
        + '"}}}'
    )


@dataclass(slots=True)
class ServerMessage:
    """One server message, reduced to what the session and the call need."""

    events: list[ModelEvent] = field(default_factory=list)
    go_away_s: float | None = None
    resumption: tuple[str, bool] | None = None  # (new handle, resumable)
    setup_complete: bool = False


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _b64(data: str) -> bytes:
    if "-" in data or "_" in data:
        return pybase64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    try:
        return pybase64.b64decode(data)
    except binascii.Error:  # missing padding
        return pybase64.b64decode(data + "=" * (-len(data) % 4))


def _transcript(speaker: str, value: Any) -> Transcript | None:
    if isinstance(value, dict) and value.get("text"):
        return Transcript(speaker, str(value["text"]), bool(value.get("finished")))  # type: ignore[arg-type]
    return None


def _content(content: dict[str, Any], out: list[ModelEvent]) -> None:
    heard = _transcript("caller", _get(content, "inputTranscription", "input_transcription"))
    if heard is not None:
        out.append(heard)
    if content.get("interrupted"):
        out.append(Interrupted())
    turn = _get(content, "modelTurn", "model_turn")
    if isinstance(turn, dict):
        for part in turn.get("parts") or ():
            blob = _get(part, "inlineData", "inline_data") if isinstance(part, dict) else None
            if isinstance(blob, dict) and blob.get("data"):
                mime = str(_get(blob, "mimeType", "mime_type") or "")
                if mime.startswith("audio"):
                    out.append(ModelAudio(_b64(str(blob["data"]))))
    said = _transcript("agent", _get(content, "outputTranscription", "output_transcription"))
    if said is not None:
        out.append(said)
    if _get(content, "generationComplete", "generation_complete"):
        out.append(GenerationComplete())
    if _get(content, "turnComplete", "turn_complete"):
        reason = _get(content, "turnCompleteReason", "turn_complete_reason")
        out.append(TurnComplete(str(reason or "")))


def _usage(meta: dict[str, Any]) -> Usage:
    details = [
        (
            direction,
            str(item.get("modality", "")),
            int(_get(item, "tokenCount", "token_count") or 0),
        )
        for direction, camel, snake in (
            ("prompt", "promptTokensDetails", "prompt_tokens_details"),
            ("response", "responseTokensDetails", "response_tokens_details"),
            ("response", "candidatesTokensDetails", "candidates_tokens_details"),  # Vertex
        )
        for item in _get(meta, camel, snake) or ()
    ]
    # Vertex names the output count ``candidatesTokenCount`` (the SDK maps it the same way).
    response = _get(meta, "responseTokenCount", "response_token_count")
    if response is None:
        response = _get(meta, "candidatesTokenCount", "candidates_token_count")
    return usage_event(
        prompt=int(_get(meta, "promptTokenCount", "prompt_token_count") or 0),
        response=int(response or 0),
        total=int(_get(meta, "totalTokenCount", "total_token_count") or 0),
        details=details,
        thoughts=int(_get(meta, "thoughtsTokenCount", "thoughts_token_count") or 0),
    )


def parse(raw: str | bytes) -> ServerMessage:
    """Decode one frame; raises ``ValueError`` for anything that is not a JSON object."""
    data = orjson.loads(raw)
    if not isinstance(data, dict):
        raise ValueError(f"server message is not a JSON object: {str(raw)[:80]!r}")
    message = ServerMessage()
    out = message.events
    content = _get(data, "serverContent", "server_content")
    if isinstance(content, dict):
        _content(content, out)
    tool_call = _get(data, "toolCall", "tool_call")
    if isinstance(tool_call, dict):
        for call in _get(tool_call, "functionCalls", "function_calls") or ():
            out.append(
                ToolCall(str(call.get("id", "")), str(call.get("name", "")), call.get("args") or {})
            )
    cancelled = _get(data, "toolCallCancellation", "tool_call_cancellation")
    if isinstance(cancelled, dict):
        out.append(ToolCallCancelled(tuple(str(i) for i in cancelled.get("ids") or ())))
    meta = _get(data, "usageMetadata", "usage_metadata")
    if isinstance(meta, dict):
        out.append(_usage(meta))
    go_away = _get(data, "goAway", "go_away")
    if isinstance(go_away, dict):
        message.go_away_s = parse_duration_s(_get(go_away, "timeLeft", "time_left"), 10.0)
    update = _get(data, "sessionResumptionUpdate", "session_resumption_update")
    if isinstance(update, dict):
        handle = str(_get(update, "newHandle", "new_handle") or "")
        message.resumption = (handle, bool(update.get("resumable")))
    message.setup_complete = "setupComplete" in data or "setup_complete" in data
    return message
