"""ADK ``Event`` -> bridge events (and nothing else).

What ADK yields and what the call needs differ in a few places, decided here:

- Agent speech: ``inline_data`` audio parts become :class:`ModelAudio`.
- Transcripts: ADK yields every piece (``partial``) and then the whole utterance again
  (``finished``). The agent's text is taken from the pieces, which arrive with the audio; the
  caller's from the finished utterance (on 3.x models it is the only one). Nothing is counted
  twice.
- ``interrupted`` becomes :class:`Interrupted` once per turn; ``turn_complete``
  :class:`TurnComplete`. ADK does not pass ``generationComplete`` on, so there is no
  :class:`GenerationComplete` from this back end.
- Function calls and responses: ADK runs the tools itself, so they are *not* turned into
  :class:`ToolCall` (the bridge would run them a second time). The plugin records them.
- ``usage_metadata`` becomes :class:`Usage`; an ``error_code`` a :class:`SessionNotice`.
"""

from __future__ import annotations

from google.adk.events.event import Event
from google.genai import types

from callbridge.adapters.gemini_live.translate import usage_event
from callbridge.bridge.events import (
    Interrupted,
    ModelAudio,
    ModelEvent,
    SessionNotice,
    Transcript,
    TurnComplete,
    Usage,
)


def _usage(meta: types.GenerateContentResponseUsageMetadata) -> Usage:
    details = [
        (direction, item.modality.value if item.modality else "", item.token_count or 0)
        for direction, items in (
            ("prompt", meta.prompt_tokens_details),
            ("response", meta.candidates_tokens_details),
        )
        for item in items or ()
    ]
    return usage_event(
        prompt=meta.prompt_token_count,
        response=meta.candidates_token_count,
        total=meta.total_token_count,
        details=details,
    )


def function_call_ids(event: Event) -> list[tuple[str, str]]:
    """(id, name) of the function calls an event carries."""
    return [(call.id or "", call.name or "") for call in event.get_function_calls()]


class EventTranslator:
    """Stateful only in one respect: ``interrupted`` is reported once per turn."""

    def __init__(self) -> None:
        self._interrupted = False

    def translate(self, event: Event) -> list[ModelEvent]:
        out: list[ModelEvent] = []
        heard = event.input_transcription
        if heard is not None and heard.finished and heard.text:
            out.append(Transcript("caller", heard.text, finished=True))
        if event.interrupted and not self._interrupted:
            self._interrupted = True
            out.append(Interrupted())
        if event.content is not None:
            for part in event.content.parts or ():
                blob = part.inline_data
                if blob is not None and blob.data and (blob.mime_type or "").startswith("audio"):
                    out.append(ModelAudio(blob.data))
        said = event.output_transcription
        if said is not None and not said.finished and said.text:
            out.append(Transcript("agent", said.text))
        if event.usage_metadata is not None:
            out.append(_usage(event.usage_metadata))
        if event.error_code:
            detail = f"{event.error_code}: {event.error_message or ''}".strip()
            out.append(SessionNotice("model_error", detail))
        if event.turn_complete:
            self._interrupted = False
            reason = event.turn_complete_reason
            out.append(TurnComplete(reason.value if reason is not None else ""))
        return out
