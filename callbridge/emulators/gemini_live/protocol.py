"""Gemini Live wire format: tolerant parsing of client frames, strict building of server frames.

The real service parses proto-JSON, so it accepts `mime_type` and `mimeType` alike at every depth
and base64 in either alphabet; google-genai really does send a mix (snake_case top-level keys,
URL-safe base64). Server frames, on the other hand, must only ever use the camelCase top-level
keys the client knows: an unknown top-level key crashes `AsyncSession.receive()`.
"""

from __future__ import annotations

import binascii
import contextlib
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import orjson
import pybase64

__all__ = [
    "SERVER_KEYS",
    "ProtocolError",
    "close_reason",
    "decode_b64",
    "encode_frame",
    "normalize",
    "parse_pcm_mime",
    "snake",
    "snake_keys",
]

SERVER_KEYS = frozenset(
    {
        "setupComplete",
        "serverContent",
        "toolCall",
        "toolCallCancellation",
        "goAway",
        "sessionResumptionUpdate",
        "usageMetadata",
    }
)
"""Top-level keys this emulator may send (all are known to google-genai 2.34.0)."""

# Subtrees that hold caller-defined names (function args, JSON schemas, labels): never renamed.
_OPAQUE = frozenset(
    {
        "args",
        "response",
        "parameters",
        "parameters_json_schema",
        "response_json_schema",
        "response_schema",
        "labels",
    }
)

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])([A-Z])")
_URLSAFE_TO_STD = bytes.maketrans(b"-_", b"+/")


MAX_CLOSE_REASON_BYTES = 123  # RFC 6455: a close frame's payload is at most 125 bytes


def close_reason(text: str) -> str:
    """Cut a reason to what fits in a close frame (the real service truncates long ones too)."""
    raw = text.encode("utf-8")
    if len(raw) <= MAX_CLOSE_REASON_BYTES:
        return text
    return raw[:MAX_CLOSE_REASON_BYTES].decode("utf-8", errors="ignore")


class ProtocolError(Exception):
    """A client frame the real server would reject; carries the WebSocket close code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = close_reason(reason)


@lru_cache(maxsize=1024)
def snake(key: str) -> str:
    """`mimeType`, `MimeType`, `mime_type` and `MIME_TYPE` all become `mime_type`."""
    return _CAMEL_BOUNDARY.sub(r"_\1", key).lower()


def normalize(value: Any) -> Any:
    """Return a copy with every key in snake_case, except inside caller-defined subtrees."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = snake(str(key))
            out[name] = item if name in _OPAQUE else normalize(item)
        return out
    if isinstance(value, list):
        return [normalize(item) for item in value]
    return value


def snake_keys(obj: Mapping[str, Any]) -> dict[str, Any]:
    """One level of ``obj`` keyed in snake_case, values untouched.

    For the hot path (one audio frame every 20 ms per call), where normalizing the whole
    frame would be wasted work: the realtime-input handler looks up six fields, five of them
    usually absent, in a dict of one or two keys.
    """
    return {snake(key): value for key, value in obj.items()}


def decode_b64(data: str | bytes) -> bytes:
    """Decode standard or URL-safe base64, with or without padding.

    A plain `base64.b64decode` silently drops `-`/`_` and returns garbage for the URL-safe
    alphabet that google-genai uses for audio.
    """
    if isinstance(data, str) and not ("-" in data and "+" in data):
        # One alphabet, as every real client sends: the C decoder validates it at once.
        with contextlib.suppress(binascii.Error, ValueError):
            urlsafe = "-" in data or "_" in data
            return pybase64.b64decode(data, altchars=b"-_" if urlsafe else None, validate=True)
    raw = data.encode("ascii") if isinstance(data, str) else bytes(data)
    raw = raw.translate(_URLSAFE_TO_STD, b" \t\r\n")
    missing = -len(raw) % 4
    if missing == 3:
        raise ProtocolError(1007, "Invalid value: base64 data has an impossible length.")
    if missing:
        raw += b"=" * missing
    try:
        return binascii.a2b_base64(raw, strict_mode=True)
    except binascii.Error as exc:
        raise ProtocolError(1007, f"Invalid value: invalid base64 data ({exc}).") from None


def parse_pcm_mime(mime: object, default_rate: int = 16000) -> int | None:
    """Return the sample rate for `audio/pcm[;rate=N]`, None for image/video blobs.

    Raises ProtocolError 1007 for any other audio format (the Live API takes raw PCM only).
    """
    if not isinstance(mime, str) or not mime:
        raise ProtocolError(1007, "Request contains an invalid argument. (missing mime_type)")
    return _parse_mime_text(mime, default_rate)


@lru_cache(maxsize=64)
def _parse_mime_text(mime: str, default_rate: int) -> int | None:
    """:func:`parse_pcm_mime` for a string; cached, as every audio frame repeats the same one."""
    kind, _, params = mime.partition(";")
    kind = kind.strip().lower()
    if kind.startswith(("image/", "video/")):
        return None
    if kind != "audio/pcm":
        raise ProtocolError(1007, f"Request contains an invalid argument. (unsupported {mime!r})")
    rate = default_rate
    for param in params.split(";"):
        name, _, val = param.partition("=")
        if name.strip().lower() == "rate":
            try:
                rate = int(val.strip())
            except ValueError:
                raise ProtocolError(1007, f"Invalid audio sample rate in {mime!r}.") from None
    if not 8000 <= rate <= 48000:
        raise ProtocolError(1007, f"Unsupported audio sample rate {rate}.")
    return rate


def encode_frame(message: Mapping[str, Any], binary: bool) -> str | bytes:
    """Serialize one server message (compact JSON), as a binary or a text WebSocket frame."""
    if len(message) != 1 or next(iter(message)) not in SERVER_KEYS:
        raise ValueError(f"refusing to send unknown server message keys {list(message)}")
    raw = orjson.dumps(message)  # compact UTF-8 JSON, as json.dumps(ensure_ascii=False) but C
    return raw if binary else raw.decode("utf-8")
