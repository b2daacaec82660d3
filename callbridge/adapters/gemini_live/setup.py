"""Tenant settings -> the Live API setup (``LiveConnectConfig``) of one raw connection.

The client itself, the websocket options and the setup pieces the ADK back end sends too
live in :mod:`callbridge.adapters.genai_common`; what the model accepts comes from
:mod:`callbridge.bridge.models`.
"""

from __future__ import annotations

from google.genai import types

from callbridge.adapters.genai_common import (
    activity_config,
    compression_config,
    optional_setup,
    resumption_config,
    speech_config,
)
from callbridge.bridge.config import ModelSettings
from callbridge.bridge.models import Capabilities
from callbridge.bridge.ports import FunctionSpec, SessionRequest


def _declaration(spec: FunctionSpec) -> types.FunctionDeclaration:
    return types.FunctionDeclaration(
        name=spec.name,
        description=spec.description,
        parameters_json_schema=spec.parameters or {"type": "object", "properties": {}},
        behavior=types.Behavior.NON_BLOCKING if spec.non_blocking else types.Behavior.BLOCKING,
    )


def live_config(
    settings: ModelSettings,
    request: SessionRequest,
    *,
    caps: Capabilities,
    handle: str | None = None,
    extra_instruction: str = "",
) -> types.LiveConnectConfig:
    """The setup for one connection; ``handle`` resumes an earlier one.

    Every tool is declared with an explicit ``behavior`` (3.8 would make an undeclared one
    NON_BLOCKING, earlier models BLOCKING), and only the optional fields ``caps`` allows go out.
    """
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
        speech_config=speech_config(settings),
        input_audio_transcription=types.AudioTranscriptionConfig()
        if settings.input_transcription
        else None,
        output_audio_transcription=types.AudioTranscriptionConfig()
        if settings.output_transcription
        else None,
        tools=tools,
        realtime_input_config=activity_config(settings),
        session_resumption=resumption_config(settings, caps, handle),
        context_window_compression=compression_config(settings),
        **optional_setup(settings, caps),
    )
