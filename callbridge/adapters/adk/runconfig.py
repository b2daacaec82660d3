"""Tenant settings -> the ADK ``RunConfig`` of one call (the live setup ADK sends)."""

from __future__ import annotations

from google.adk.agents.run_config import RunConfig
from google.genai import types

from callbridge.adapters.adk.calls import CALL_ID_KEY, TENANT_KEY
from callbridge.adapters.genai_common import (
    activity_config,
    compression_config,
    optional_setup,
    speech_config,
)
from callbridge.bridge.config import ModelSettings
from callbridge.bridge.models import Capabilities
from callbridge.bridge.ports import SessionRequest


def run_config(settings: ModelSettings, request: SessionRequest, caps: Capabilities) -> RunConfig:
    """Audio out, both transcriptions, resumption and compression as configured, server VAD
    with barge-in, and the call id + tenant in ``custom_metadata`` for tools and plugins.

    ADK reconnects on ``goAway`` and on 1000/1006/1011 drops with the latest resumption handle
    when ``session_resumption`` is set; compression lifts the 15-minute audio session cap.
    Affective dialog and proactivity go out only when the tenant asks and the model table
    allows them (:func:`~callbridge.adapters.genai_common.optional_setup`); ADK itself drops both
    for
    3.x names.
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
        # ADK itself adds ``transparent`` on Vertex when it resumes with a handle.
        session_resumption=types.SessionResumptionConfig() if settings.session_resumption else None,
        context_window_compression=compression_config(settings),
        custom_metadata={CALL_ID_KEY: request.call_id, TENANT_KEY: request.tenant},
        **optional_setup(settings, caps),
    )
