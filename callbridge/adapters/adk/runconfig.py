"""Tenant settings -> the ADK ``RunConfig`` of one call (the live setup ADK sends)."""

from __future__ import annotations

from google.adk.agents.run_config import RunConfig
from google.genai import types

from callbridge.adapters.adk.calls import CALL_ID_KEY, TENANT_KEY
from callbridge.adapters.gemini_live.setup import activity_config
from callbridge.bridge.config import ModelSettings
from callbridge.bridge.ports import SessionRequest


def speech_config(settings: ModelSettings) -> types.SpeechConfig | None:
    if not (settings.voice or settings.language):
        return None
    voice = (
        types.VoiceConfig(
            prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=settings.voice)
        )
        if settings.voice
        else None
    )
    return types.SpeechConfig(voice_config=voice, language_code=settings.language)


def run_config(settings: ModelSettings, request: SessionRequest) -> RunConfig:
    """Audio out, both transcriptions, resumption and compression as configured, server VAD
    with barge-in, and the call id + tenant in ``custom_metadata`` for tools and plugins.

    ADK reconnects on ``goAway`` and on 1000/1006/1011 drops with the latest resumption handle
    when ``session_resumption`` is set; compression lifts the 15-minute audio session cap.
    Affective dialog and proactivity are not set: 3.x models never answer such a setup.
    """
    transcription = types.AudioTranscriptionConfig
    return RunConfig(
        response_modalities=[types.Modality.AUDIO],
        speech_config=speech_config(settings),
        input_audio_transcription=transcription() if settings.input_transcription else None,
        output_audio_transcription=transcription() if settings.output_transcription else None,
        realtime_input_config=activity_config(settings)
        or types.RealtimeInputConfig(
            automatic_activity_detection=types.AutomaticActivityDetection(disabled=False),
            activity_handling=types.ActivityHandling.START_OF_ACTIVITY_INTERRUPTS,
        ),
        session_resumption=types.SessionResumptionConfig() if settings.session_resumption else None,
        context_window_compression=types.ContextWindowCompressionConfig(
            trigger_tokens=settings.compression_trigger_tokens,
            sliding_window=types.SlidingWindow(target_tokens=settings.compression_target_tokens),
        )
        if settings.context_compression
        else None,
        custom_metadata={CALL_ID_KEY: request.call_id, TENANT_KEY: request.tenant},
    )
