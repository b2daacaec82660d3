"""Validate the first client frame (`setup`) the way the real service does, and digest it.

Rejections use the real close codes: 1007 (invalid argument) for malformed setups, 1008 (policy)
for an unknown model. The digest (`SetupInfo`) holds only what the session logic needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .protocol import ProtocolError, normalize, snake

__all__ = ["INVALID_ARGUMENT", "Profile", "SetupInfo", "parse_setup", "profile_for"]

INVALID_ARGUMENT = "Request contains an invalid argument."

_MODEL = re.compile(r"(?:^|/)models/gemini-[A-Za-z0-9._-]+$")
_API_VERSION = re.compile(r"\.(v\d+(?:alpha|beta)?\d*)\.")


@dataclass(frozen=True, slots=True)
class Profile:
    """Per-model-family wire behaviour (ADK deadlocks if the emulator picks the wrong one)."""

    name: str
    turn_complete_after_tool_call: bool  # 2.5: toolCall then turnComplete; 3.x: no turnComplete
    stalls_on_affective_dialog: bool  # 3.x never answers a setup with affective dialog/proactivity


PROFILE_25 = Profile("2.5", turn_complete_after_tool_call=True, stalls_on_affective_dialog=False)
PROFILE_3X = Profile("3.x", turn_complete_after_tool_call=False, stalls_on_affective_dialog=True)


def profile_for(model: str) -> Profile:
    """`gemini-3*` model names get the 3.x profile, everything else the 2.5 one."""
    return PROFILE_3X if "gemini-3" in model else PROFILE_25


@dataclass(frozen=True, slots=True)
class SetupInfo:
    """The parts of a setup message that drive the emulated session."""

    setup: dict[str, Any]  # normalized (snake_case keys)
    model: str
    profile: Profile
    tools: Mapping[str, bool]  # declared function name -> is BLOCKING
    resumption: bool
    resume_handle: str | None
    manual_activity: bool  # automatic_activity_detection.disabled
    barge_in: bool  # activity_handling is not NO_INTERRUPTION
    affective_or_proactive: bool
    system_text_tokens: int


def _load(frame: str | bytes) -> dict[str, Any]:
    try:
        message = json.loads(frame)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError(1007, "Invalid JSON payload received.") from None
    if not isinstance(message, dict):
        raise ProtocolError(1007, "Invalid JSON payload received.")
    return message


def _api_version(path: str) -> str:
    match = _API_VERSION.search(path)
    return match.group(1) if match else "v1beta"


def parse_setup(frame: str | bytes, path: str) -> SetupInfo:
    """Parse and validate the first frame; raises ProtocolError with the close to send."""
    message = _load(frame)
    raw = next((v for k, v in message.items() if snake(k) == "setup"), None)
    if not isinstance(raw, Mapping):
        raise ProtocolError(1007, f"{INVALID_ARGUMENT} The first message must be setup.")
    setup: dict[str, Any] = normalize(raw)

    model = setup.get("model")
    if not isinstance(model, str) or not _MODEL.search(model):
        raise ProtocolError(
            1008,
            f"{model} is not found for API version {_api_version(path)}, or is not supported "
            "for bidiGenerateContent. Call ListModels to see the list of available models "
            "and their supported methods.",
        )

    config = setup.get("generation_config")
    if not isinstance(config, Mapping):
        raise ProtocolError(1007, INVALID_ARGUMENT)
    modalities = config.get("response_modalities") or []
    if not isinstance(modalities, list) or "AUDIO" not in [str(m).upper() for m in modalities]:
        raise ProtocolError(1007, INVALID_ARGUMENT)

    tools: dict[str, bool] = {}
    for tool in setup.get("tools") or []:
        for decl in (tool or {}).get("function_declarations") or []:
            name = decl.get("name")
            if isinstance(name, str) and name:
                tools[name] = str(decl.get("behavior") or "BLOCKING").upper() != "NON_BLOCKING"

    resumption_cfg = setup.get("session_resumption")
    resumption = isinstance(resumption_cfg, Mapping)
    handle = resumption_cfg.get("handle") if isinstance(resumption_cfg, Mapping) else None

    realtime = setup.get("realtime_input_config") or {}
    detection = realtime.get("automatic_activity_detection") or {}
    handling = str(realtime.get("activity_handling") or "")

    proactivity = setup.get("proactivity") or {}
    affective = bool(config.get("enable_affective_dialog")) or bool(
        proactivity.get("proactive_audio")
    )

    system = setup.get("system_instruction") or {}
    if isinstance(system, str):
        system_chars = len(system)
    else:
        system_chars = sum(len(str(p.get("text") or "")) for p in system.get("parts") or [])

    return SetupInfo(
        setup=setup,
        model=model,
        profile=profile_for(model),
        tools=tools,
        resumption=resumption,
        resume_handle=handle if isinstance(handle, str) and handle else None,
        manual_activity=bool(detection.get("disabled")),
        barge_in=handling.upper() != "NO_INTERRUPTION",
        affective_or_proactive=affective,
        system_text_tokens=system_chars // 4,
    )
