"""ADK events -> bridge events: transcripts counted once, one Interrupted per turn, tools not
passed on, usage and errors mapped."""

from __future__ import annotations

from google.adk.events.event import Event
from google.genai import types

from callbridge.adapters.adk.translate import EventTranslator, function_call_ids
from callbridge.bridge.events import (
    Interrupted,
    ModelAudio,
    SessionNotice,
    Transcript,
    TurnComplete,
    Usage,
)


def _event(**fields: object) -> Event:
    return Event(author="desk", invocation_id="inv", **fields)


def test_transcripts_are_counted_once() -> None:
    tr = EventTranslator()
    out = [
        *tr.translate(_event(output_transcription=types.Transcription(text="Hello"), partial=True)),
        *tr.translate(_event(output_transcription=types.Transcription(text=" there"))),
        *tr.translate(
            _event(output_transcription=types.Transcription(text="Hello there", finished=True))
        ),
        *tr.translate(_event(input_transcription=types.Transcription(text="Hi"), partial=True)),
        *tr.translate(_event(input_transcription=types.Transcription(text="Hi", finished=True))),
    ]
    assert out == [
        Transcript("agent", "Hello"),
        Transcript("agent", " there"),
        Transcript("caller", "Hi", finished=True),
    ]


def test_audio_interruption_turns_usage_and_errors() -> None:
    tr = EventTranslator()
    audio = types.Content(
        role="model",
        parts=[types.Part(inline_data=types.Blob(data=b"\x01\x02", mime_type="audio/pcm"))],
    )
    usage = types.GenerateContentResponseUsageMetadata(
        prompt_token_count=10,
        candidates_token_count=5,
        total_token_count=15,
        prompt_tokens_details=[types.ModalityTokenCount(modality="AUDIO", token_count=8)],
        thoughts_token_count=7,
    )
    out = [
        *tr.translate(_event(content=audio)),
        *tr.translate(_event(interrupted=True)),
        *tr.translate(_event(interrupted=True, turn_complete=True)),
        *tr.translate(_event(interrupted=True)),
        *tr.translate(_event(usage_metadata=usage)),
        *tr.translate(_event(error_code="SAFETY", error_message="blocked")),
    ]
    assert out == [
        ModelAudio(b"\x01\x02"),
        Interrupted(),
        TurnComplete(),
        Interrupted(),
        Usage(10, 5, 15, {"prompt_AUDIO": 8, "response_THOUGHTS": 7}),
        SessionNotice("model_error", "SAFETY: blocked"),
    ]


def test_function_calls_are_not_passed_on() -> None:
    call = types.FunctionCall(id="c1", name="lookup", args={"x": 1})
    event = _event(content=types.Content(role="model", parts=[types.Part(function_call=call)]))
    assert EventTranslator().translate(event) == []
    assert function_call_ids(event) == [("c1", "lookup")]
