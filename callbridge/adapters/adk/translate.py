"""ADK ``Event`` -> bridge events (and nothing else).

What ADK yields and what the call needs differ in a few places, decided here:

- Agent speech: ``inline_data`` audio parts become :class:`ModelAudio`.
- Transcripts: ADK yields every piece (``partial``) and then the whole utterance again
  (``finished``). The agent's text is taken from the pieces, which arrive with the audio; the
  caller's from the finished utterance (on 3.x models it is the only one). Nothing is counted
  twice.
- ``interrupted`` becomes :class:`Interrupted` once per turn; ``turn_complete``
  :class:`TurnComplete`. When the connection saw ``interrupted`` ahead of ADK
  (:meth:`EventTranslator.interrupt_early`), what ADK still delivers before its own
  ``interrupted`` is the cut-off turn's unplayed audio and text: dropped. ADK does not
  pass ``generationComplete`` on, so there is no :class:`GenerationComplete` from this back
  end.
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
        thoughts=meta.thoughts_token_count,
    )


def function_call_ids(event: Event) -> list[tuple[str, str]]:
    """(id, name) of the function calls an event carries."""
    return [(call.id or "", call.name or "") for call in event.get_function_calls()]


class EventTranslator:
    """Stateful only in one respect: ``interrupted`` is reported once per turn."""

    def __init__(self) -> None:
        self._interrupted = False
        self._stale = False  # an early interruption was reported; ADK's backlog is stale

    def interrupt_early(self) -> bool:
        """The connection saw ``interrupted`` before ADK delivered it (:mod:`.model`).

        Returns True if the call should hear :class:`Interrupted` now. Until ADK's own
        ``interrupted`` event arrives, the agent audio and transcript pieces still in its
        backlog belong to the interrupted turn and were never played: they are dropped.
        """
        if self._interrupted:
            return False
        self._interrupted = self._stale = True
        return True

    def reset(self) -> None:
        """A new connection: nothing of the old one's backlog is coming."""
        self._interrupted = self._stale = False

    def translate(self, event: Event) -> list[ModelEvent]:
        out: list[ModelEvent] = []
        heard = event.input_transcription
        if heard is not None and heard.finished and heard.text:
            out.append(Transcript("caller", heard.text, finished=True))
        if event.interrupted:
            if self._stale:
                self._stale = False  # reported early; the backlog before it is drained
            elif not self._interrupted:
                self._interrupted = True
                out.append(Interrupted())
        if self._stale:
            pass  # audio and speech of a turn already reported as interrupted
        elif event.content is not None:
            for part in event.content.parts or ():
                blob = part.inline_data
                if blob is not None and blob.data and (blob.mime_type or "").startswith("audio"):
                    out.append(ModelAudio(blob.data))
        said = event.output_transcription
        if said is not None and not said.finished and said.text and not self._stale:
            out.append(Transcript("agent", said.text))
        if event.usage_metadata is not None:
            out.append(_usage(event.usage_metadata))
        if event.error_code:
            detail = f"{event.error_code}: {event.error_message or ''}".strip()
            out.append(SessionNotice("model_error", detail))
        if event.turn_complete and not self._stale:  # a stale one ended an earlier turn
            self._interrupted = False
            reason = event.turn_complete_reason
            out.append(TurnComplete(reason.value if reason is not None else ""))
        return out
