"""Small pieces of Live API translation shared by the raw and the ADK back ends."""

from __future__ import annotations

import re
from collections.abc import Iterable

from google.genai import types

from callbridge.bridge.events import ToolResult, Usage

THOUGHTS = "response_THOUGHTS"
"""The usage key of thinking tokens (see :func:`usage_event`)."""


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
    details: Iterable[tuple[str, str, int]],
    thoughts: int | None = None,
) -> Usage:
    """Token counts; ``details`` are (direction, modality, tokens), e.g. ("prompt", "AUDIO", 9).

    ``thoughts`` (``thoughtsTokenCount``) are the model's thinking tokens. Gemini 3.8 Live
    reports them beside, not inside, the response count (a public wire capture shows
    ``responseTokenCount`` 42 with ``thoughtsTokenCount`` 136 for one short reply), and they
    are billed as output, so they are kept as their own key, ``response_THOUGHTS``.
    """
    by_modality: dict[str, int] = {}
    for direction, modality, count in details:
        key = f"{direction}_{modality or 'UNKNOWN'}"
        by_modality[key] = by_modality.get(key, 0) + count
    if thoughts:
        by_modality[THOUGHTS] = thoughts
    return Usage(prompt or 0, response or 0, total or 0, by_modality)


def function_response(result: ToolResult) -> types.FunctionResponse:
    """A tool's result as the Live API's ``FunctionResponse`` (with its scheduling, if any)."""
    return types.FunctionResponse(
        id=result.call_id,
        name=result.name,
        response=dict(result.response),
        scheduling=types.FunctionResponseScheduling(result.scheduling)
        if result.scheduling
        else None,
    )
