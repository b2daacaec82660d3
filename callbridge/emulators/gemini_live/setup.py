"""Validate the first client frame (`setup`) the way the real service does, and digest it.

Rejections use the real close codes: 1007 (invalid argument) for malformed setups, 1008 (policy)
for an unknown model. What each model family accepts comes from the bridge's capability table
(`callbridge.bridge.models`), per provider: the Developer API path (`GenerativeService`) or Vertex
AI's
(`LlmBidiService`).

Gemini 3.8's setup rules (docs: affective dialog removed, no thinking config, proactive audio
always on, audio responses only) are enforced with close 1007. **Assumptions** (the close code
for these is not documented, 1007 is the invalid-argument code the service uses elsewhere):
the reasons' wording; a removed field is reported like any unknown proto field; Vertex rejects a
model name that is not a `projects/P/locations/L/publishers/google/models/M` resource with the
same 1008 as an unknown model; the Developer API rejects `transparent` resumption with 1007.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from callbridge.bridge.models import Capabilities, Provider, base_name, capabilities

from .protocol import ProtocolError, normalize, snake

__all__ = ["INVALID_ARGUMENT", "Profile", "SetupInfo", "parse_setup", "profile_for"]

INVALID_ARGUMENT = "Request contains an invalid argument."

_MODEL = re.compile(r"(?:^|/)models/gemini-[A-Za-z0-9._-]+$")
_VERTEX_MODEL = re.compile(
    r"^projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/publishers/google/models/"
    r"gemini-[A-Za-z0-9._-]+$"
)
_API_VERSION = re.compile(r"\.(v\d+(?:alpha|beta)?\d*)\.")


def provider_for(path: str) -> Provider:
    """Vertex AI's Live method is `google.cloud.aiplatform.*.LlmBidiService/...`."""
    return "vertex" if "LlmBidiService" in path or "aiplatform" in path else "gemini_api"


@dataclass(frozen=True, slots=True)
class Profile:
    """Per-model-family wire behaviour (ADK deadlocks if the emulator picks the wrong one)."""

    name: str
    provider: Provider
    caps: Capabilities

    @property
    def turn_complete_after_tool_call(self) -> bool:
        """2.5: toolCall then turnComplete; 3.x: no turnComplete until the tool response."""
        return self.caps.turn_complete_after_tool_call

    @property
    def stalls_on_affective_dialog(self) -> bool:
        """3.1 never answers a setup with affective dialog/proactivity (PatterAI/Patter #210)."""
        return self.name == "3.1"


def profile_for(model: str, provider: Provider = "gemini_api") -> Profile:
    """The profile for a model name; names the table does not know behave like 2.5.

    The bridge treats unknown names conservatively; the emulator, which plays the server,
    serves them with the most permissive known behaviour instead (as it always did).
    """
    caps = capabilities(base_name(model), provider)
    if not caps.known:
        permissive = capabilities("gemini-2.5-flash-native-audio-preview", provider)
        caps = replace(permissive, offered=True)
    return Profile(caps.family, provider, caps)


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
    transparent: bool = False  # Vertex: updates carry lastConsumedClientMessageIndex
    project: str | None = None  # Vertex: the project in the model's resource name


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


def _invalid(detail: str) -> ProtocolError:
    return ProtocolError(1007, f"{INVALID_ARGUMENT} {detail}")


def _not_found(model: object, path: str) -> ProtocolError:
    return ProtocolError(
        1008,
        f"{model} is not found for API version {_api_version(path)}, or is not supported "
        "for bidiGenerateContent. Call ListModels to see the list of available models "
        "and their supported methods.",
    )


def _check_model_rules(
    setup: Mapping[str, Any], config: Mapping[str, Any], caps: Capabilities
) -> None:
    """Reject what the model family does not accept (3.8's rules; see the module docstring)."""
    if "enable_affective_dialog" in config and not caps.affective_dialog and caps.family != "3.1":
        raise ProtocolError(
            1007,
            'Invalid JSON payload received. Unknown name "enableAffectiveDialog" at '
            "'setup.generation_config': Cannot find field.",
        )
    if "thinking_config" in config and not caps.thinking_config:
        raise _invalid("thinking_config is not supported by this model.")
    proactivity = setup.get("proactivity")
    disabled = isinstance(proactivity, Mapping) and proactivity.get("proactive_audio") is False
    if disabled and caps.proactive_audio == "always_on":
        raise _invalid("proactive_audio cannot be disabled for this model.")
    modalities = [str(m).upper() for m in config.get("response_modalities") or []]
    if caps.family.startswith("3.8") and modalities != ["AUDIO"]:
        raise _invalid("response_modalities must be [AUDIO] for this model.")


def parse_setup(frame: str | bytes, path: str) -> SetupInfo:
    """Parse and validate the first frame; raises ProtocolError with the close to send."""
    message = _load(frame)
    raw = next((v for k, v in message.items() if snake(k) == "setup"), None)
    if not isinstance(raw, Mapping):
        raise ProtocolError(1007, f"{INVALID_ARGUMENT} The first message must be setup.")
    setup: dict[str, Any] = normalize(raw)
    provider = provider_for(path)

    model = setup.get("model")
    if not isinstance(model, str) or not _MODEL.search(model):
        raise _not_found(model, path)
    vertex = _VERTEX_MODEL.match(model)
    if provider == "vertex" and vertex is None:
        raise _not_found(model, path)
    profile = profile_for(model, provider)
    if not profile.caps.offered:
        raise _not_found(model, path)

    config = setup.get("generation_config")
    if not isinstance(config, Mapping):
        raise ProtocolError(1007, INVALID_ARGUMENT)
    modalities = config.get("response_modalities") or []
    if not isinstance(modalities, list) or "AUDIO" not in [str(m).upper() for m in modalities]:
        raise ProtocolError(1007, INVALID_ARGUMENT)
    _check_model_rules(setup, config, profile.caps)

    # A declaration without `behavior` is NON_BLOCKING on 3.8, BLOCKING on earlier families.
    default = "NON_BLOCKING" if profile.caps.async_tools_default else "BLOCKING"
    tools: dict[str, bool] = {}
    for tool in setup.get("tools") or []:
        for decl in (tool or {}).get("function_declarations") or []:
            name = decl.get("name")
            if isinstance(name, str) and name:
                tools[name] = str(decl.get("behavior") or default).upper() != "NON_BLOCKING"

    resumption_cfg = setup.get("session_resumption")
    resumption = isinstance(resumption_cfg, Mapping)
    handle = resumption_cfg.get("handle") if isinstance(resumption_cfg, Mapping) else None
    transparent = isinstance(resumption_cfg, Mapping) and bool(resumption_cfg.get("transparent"))
    if transparent and not profile.caps.transparent_resumption:
        raise _invalid("transparent session resumption is only supported on Vertex AI.")

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
        profile=profile,
        tools=tools,
        resumption=resumption,
        resume_handle=handle if isinstance(handle, str) and handle else None,
        manual_activity=bool(detection.get("disabled")),
        barge_in=handling.upper() != "NO_INTERRUPTION",
        affective_or_proactive=affective,
        system_text_tokens=system_chars // 4,
        transparent=transparent,
        project=vertex.group("project") if vertex else None,
    )
