"""What a model session can tell a call, as frozen values.

Adapters translate their vendor messages (google-genai ``LiveServerMessage``, ADK ``Event``)
into these; the call logic in ``callbridge.bridge.call`` only ever sees these types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Speaker = Literal["caller", "agent"]


@dataclass(frozen=True, slots=True)
class ModelAudio:
    """A chunk of agent speech, s16le mono at the model session's output rate."""

    pcm: bytes


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The caller barged in: audio of the current turn not yet played must be dropped."""


@dataclass(frozen=True, slots=True)
class GenerationComplete:
    """The model has produced all audio of this turn (playback may still be running)."""


@dataclass(frozen=True, slots=True)
class TurnComplete:
    """The model's turn is over; the next audio belongs to a new turn.

    ``reason`` is the server's ``turnCompleteReason`` when it gave one (``RESPONSE_REJECTED``...).
    """

    reason: str = ""


@dataclass(frozen=True, slots=True)
class Transcript:
    """A piece of transcription of either party (``finished`` marks the end of an utterance)."""

    speaker: Speaker
    text: str
    finished: bool = False


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks for a function to run; answer with the same ``call_id``."""

    call_id: str
    name: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolRunByModelSide:
    """A tool the back end runs itself (ADK) was called: for the record and turn accounting.

    The bridge must not run it again; it only learns that this turn did something other
    than speak (so an audio-less turn is not a stall).
    """

    call_id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallCancelled:
    """The model withdrew earlier tool calls (usually because the caller interrupted)."""

    call_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage reported by the model, cumulative for the connection that sent it."""

    prompt_tokens: int = 0
    response_tokens: int = 0
    total_tokens: int = 0
    by_modality: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SessionNotice:
    """Something the session did on its own that operators should hear about.

    ``kind`` is e.g. ``"go_away"``, ``"reconnected"``, ``"resume_rejected"``; ``detail`` is
    free text for logs and warnings; ``facts`` are the same as numbers for the record and
    traces (``took_ms``, ``handle_age_s``, ``replayed_frames``...).
    """

    kind: str
    detail: str = ""
    close_code: int | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)


ModelEvent = (
    ModelAudio
    | Interrupted
    | GenerationComplete
    | TurnComplete
    | Transcript
    | ToolCall
    | ToolRunByModelSide
    | ToolCallCancelled
    | Usage
    | SessionNotice
)


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What the bridge answers to a :class:`ToolCall`."""

    call_id: str
    name: str
    response: Mapping[str, Any]
    scheduling: Literal["INTERRUPT", "WHEN_IDLE", "SILENT"] | None = None
