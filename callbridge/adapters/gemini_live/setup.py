"""Tenant settings -> the Live API setup (``LiveConnectConfig``) and the genai client."""

from __future__ import annotations

import ssl
from typing import Any

from google import genai
from google.genai import types

from callbridge.bridge.config import ModelSettings
from callbridge.bridge.ports import FunctionSpec, SessionRequest

MAX_FRAME = 16 * 2**20
"""Accept server frames up to 16 MiB (websockets' default is 1 MiB)."""


def keepalive_args(settings: ModelSettings) -> dict[str, Any]:
    """websockets options for the Live socket from the tenant's keepalive settings.

    Gemini's pongs have been seen to take 8-30 s; websockets' default 20 s timeout would
    close healthy sessions with 1011. Defaults: ping every 20 s, allow 60 s for the pong.
    """
    return {
        "ping_interval": settings.keepalive_interval_s,
        "ping_timeout": settings.keepalive_timeout_s,
        "max_size": MAX_FRAME,
    }


KEEPALIVE: dict[str, Any] = {"ping_interval": 20.0, "ping_timeout": 60.0, "max_size": MAX_FRAME}
"""The default :func:`keepalive_args`, for callers without settings at hand."""


def make_client(
    settings: ModelSettings, *, api_key: str | None = None, keepalive: dict[str, Any] | None = None
) -> genai.Client:
    """A genai client for the Gemini Developer API (or a compatible endpoint)."""
    key = api_key or (settings.api_key.get_secret_value() if settings.api_key else None)
    if not key:
        raise ValueError("model.api_key is not set (env GEMINI_API_KEY)")
    client_args: dict[str, Any] = {**keepalive_args(settings), **(keepalive or {})}
    if settings.ca_file is not None:
        client_args["ssl"] = ssl.create_default_context(cafile=str(settings.ca_file))
    options = types.HttpOptions(base_url=settings.base_url, async_client_args=client_args)
    return genai.Client(api_key=key, http_options=options)


def _declaration(spec: FunctionSpec) -> types.FunctionDeclaration:
    return types.FunctionDeclaration(
        name=spec.name,
        description=spec.description,
        parameters_json_schema=spec.parameters or {"type": "object", "properties": {}},
        behavior=types.Behavior.NON_BLOCKING if spec.non_blocking else types.Behavior.BLOCKING,
    )


def activity_config(settings: ModelSettings) -> types.RealtimeInputConfig | None:
    """The server's VAD knobs when the tenant set any (``None`` keeps every server default)."""
    knobs: dict[str, Any] = {}
    if settings.start_of_speech_sensitivity:
        name = f"START_SENSITIVITY_{settings.start_of_speech_sensitivity.upper()}"
        knobs["start_of_speech_sensitivity"] = types.StartSensitivity(name)
    if settings.end_of_speech_sensitivity:
        name = f"END_SENSITIVITY_{settings.end_of_speech_sensitivity.upper()}"
        knobs["end_of_speech_sensitivity"] = types.EndSensitivity(name)
    if settings.prefix_padding_ms is not None:
        knobs["prefix_padding_ms"] = settings.prefix_padding_ms
    if settings.silence_duration_ms is not None:
        knobs["silence_duration_ms"] = settings.silence_duration_ms
    if not knobs:
        return None
    return types.RealtimeInputConfig(
        automatic_activity_detection=types.AutomaticActivityDetection(disabled=False, **knobs),
        activity_handling=types.ActivityHandling.START_OF_ACTIVITY_INTERRUPTS,
    )


def live_config(
    settings: ModelSettings,
    request: SessionRequest,
    *,
    handle: str | None = None,
    extra_instruction: str = "",
) -> types.LiveConnectConfig:
    """The setup for one connection; ``handle`` resumes an earlier one."""
    speech = None
    if settings.voice or settings.language:
        speech = types.SpeechConfig(
            voice_config=types.VoiceConfig(
                prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=settings.voice)
            )
            if settings.voice
            else None,
            language_code=settings.language,
        )
    instruction = request.system_instruction + (
        "\n\n" + extra_instruction if extra_instruction else ""
    )
    tools = (
        [types.Tool(function_declarations=[_declaration(f) for f in request.functions])]
        if request.functions
        else None
    )
    return types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        system_instruction=types.Content(parts=[types.Part(text=instruction)]),
        speech_config=speech,
        input_audio_transcription=types.AudioTranscriptionConfig()
        if settings.input_transcription
        else None,
        output_audio_transcription=types.AudioTranscriptionConfig()
        if settings.output_transcription
        else None,
        tools=tools,
        realtime_input_config=activity_config(settings),
        session_resumption=types.SessionResumptionConfig(handle=handle)
        if settings.session_resumption
        else None,
        context_window_compression=types.ContextWindowCompressionConfig(
            trigger_tokens=settings.compression_trigger_tokens,
            sliding_window=types.SlidingWindow(target_tokens=settings.compression_target_tokens),
        )
        if settings.context_compression
        else None,
    )
