"""google-genai ``LiveServerMessage`` -> bridge events (and nothing else)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from google.genai import types

from bridge.events import (
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


def parse_duration_s(value: str | None, default: float = 0.0) -> float:
    """Protobuf Duration JSON (``"50s"``, ``"1.5s"``) to seconds."""
    if not value:
        return default
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*s?\s*", value)
    return float(match.group(1)) if match else default


def usage_event(
    *,
    prompt: int | None,
    response: int | None,
    total: int | None,
    prompt_details: Iterable[types.ModalityTokenCount] | None,
    response_details: Iterable[types.ModalityTokenCount] | None,
) -> Usage:
    """Token counts by direction and modality (shared by the raw and the ADK back ends)."""
    by_modality: dict[str, int] = {}
    for prefix, details in (("prompt", prompt_details), ("response", response_details)):
        for item in details or ():
            modality = item.modality.value if item.modality else "UNKNOWN"
            key = f"{prefix}_{modality}"
            by_modality[key] = by_modality.get(key, 0) + (item.token_count or 0)
    return Usage(prompt or 0, response or 0, total or 0, by_modality)


def _usage(meta: types.UsageMetadata) -> Usage:
    return usage_event(
        prompt=meta.prompt_token_count,
        response=meta.response_token_count,
        total=meta.total_token_count,
        prompt_details=meta.prompt_tokens_details,
        response_details=meta.response_tokens_details,
    )


def translate(message: types.LiveServerMessage) -> Iterator[ModelEvent]:
    """Events in the order a listener must see them: audio before the turn ends."""
    content = message.server_content
    if content is not None:
        if content.input_transcription and content.input_transcription.text:
            yield Transcript(
                "caller",
                content.input_transcription.text,
                bool(content.input_transcription.finished),
            )
        if content.interrupted:
            yield Interrupted()
        if content.model_turn and content.model_turn.parts:
            for part in content.model_turn.parts:
                blob = part.inline_data
                if blob is not None and blob.data and (blob.mime_type or "").startswith("audio"):
                    yield ModelAudio(blob.data)
        if content.output_transcription and content.output_transcription.text:
            yield Transcript(
                "agent",
                content.output_transcription.text,
                bool(content.output_transcription.finished),
            )
        if content.generation_complete:
            yield GenerationComplete()
        if content.turn_complete:
            yield TurnComplete()
    if message.tool_call is not None:
        for call in message.tool_call.function_calls or ():
            yield ToolCall(call.id or "", call.name or "", dict(call.args or {}))
    if message.tool_call_cancellation is not None:
        yield ToolCallCancelled(tuple(message.tool_call_cancellation.ids or ()))
    if message.usage_metadata is not None:
        yield _usage(message.usage_metadata)
