"""What each Gemini Live model accepts, per provider: the one table every decision reads.

The raw Live back end, the ADK back end, ``check-config`` and the emulator's per-model
profile all ask :func:`capabilities` instead of guessing from the model string. A model name
the table does not know gets :data:`CONSERVATIVE` (nothing that any family might reject is
sent, tools are declared BLOCKING) and the service warns at start-up (:func:`unknown_model_hint`);
``model.capabilities`` in the tenant file overrides single fields for such a model.

Sources: Google's model pages (Gemini 3.8 Live migration notes; the Live API tools page for
2.5 and 3.1), Vertex's Live API pages, and behaviour observed with the unmodified clients
(``shared/design/gemini-3.8-vertex.md``). Fields marked *assumption* in :data:`FAMILIES`'
comments are not documented anywhere we could read; they are set to what is safe.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

Provider = Literal["gemini_api", "vertex"]
PROVIDERS: tuple[Provider, ...] = ("gemini_api", "vertex")
Scheduling = Literal["INTERRUPT", "WHEN_IDLE", "SILENT"]
ProactiveAudio = Literal["optional", "always_on", "unsupported"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """One model family on one provider."""

    family: str
    """Short family id (``"3.8"``), or ``"unknown"``."""
    offered: bool = True
    """False when this provider does not serve the family (the name would be refused)."""
    async_tools: bool = False
    """``behavior: NON_BLOCKING`` declarations are honoured (caller audio flows during a tool)."""
    async_tools_default: bool = False
    """A declaration without ``behavior`` is NON_BLOCKING (3.8); otherwise BLOCKING."""
    response_scheduling: bool = False
    """``FunctionResponse.scheduling`` (SILENT / WHEN_IDLE / INTERRUPT) is honoured."""
    proactive_audio: ProactiveAudio = "unsupported"
    """``optional``: may be set; ``always_on``: ``false`` is an error; ``unsupported``: the
    setup must not carry ``proactivity`` at all."""
    affective_dialog: bool = False
    """``enableAffectiveDialog`` may be sent."""
    thinking_config: bool = False
    """``thinkingConfig`` may be sent."""
    role_content_mid_session: bool = False
    """``clientContent`` with roles user/model is accepted at any point of the session."""
    transparent_resumption: bool = False
    """``sessionResumption.transparent`` is accepted (Vertex only)."""
    turn_complete_after_tool_call: bool = False
    """The server ends the turn (``turnComplete``) right after a ``toolCall`` (2.5 framing);
    3.x holds the turn open until the tool response. ADK and the emulator depend on it."""
    input_tokens: int = 32_768
    output_tokens: int = 8_192

    @property
    def known(self) -> bool:
        return self.family != "unknown"

    def tools_non_blocking(self) -> bool:
        """Declare tools NON_BLOCKING: where honoured, so caller audio never stops for a tool."""
        return self.async_tools


CONSERVATIVE = Capabilities(family="unknown")
"""For names the table does not know: BLOCKING tools, no optional setup fields."""

_25 = Capabilities(
    family="2.5",
    async_tools=True,
    response_scheduling=True,
    proactive_audio="optional",
    affective_dialog=True,
    thinking_config=True,
    turn_complete_after_tool_call=True,
    input_tokens=131_072,
    output_tokens=8_192,
)
_31 = Capabilities(
    family="3.1",
    # Live tools page: "3.1 Flash Live: synchronous function calling only".
    async_tools=False,
    # Reports (PatterAI/Patter #210): a setup with affective dialog or proactivity never
    # gets setupComplete; ADK 2.13 drops both for 3.x names.
    proactive_audio="unsupported",
    affective_dialog=False,
    thinking_config=True,
    input_tokens=131_072,
    output_tokens=65_536,
)
_38 = Capabilities(
    family="3.8",
    async_tools=True,
    async_tools_default=True,
    response_scheduling=True,
    proactive_audio="always_on",
    affective_dialog=False,
    thinking_config=False,
    role_content_mid_session=True,
    turn_complete_after_tool_call=False,  # assumption: 3.x framing, as 3.1
    input_tokens=131_072,
    output_tokens=65_536,
)


@dataclass(frozen=True, slots=True)
class Family:
    """A model family: which names belong to it and what each provider offers."""

    pattern: re.Pattern[str]
    per_provider: Mapping[Provider, Capabilities]


def _vertex(caps: Capabilities) -> Capabilities:
    """Vertex's variant: transparent resumption offered, function-response scheduling ignored."""
    return replace(caps, transparent_resumption=True, response_scheduling=False)


FAMILIES: tuple[Family, ...] = (
    # gemini-3.8-live-extended-thinking: same Live surface as 3.8 (thinking is built in and
    # still not configurable; assumption: its other rules are 3.8's).
    Family(
        re.compile(r"^gemini-3\.8-live-extended-thinking(?:-[\w.-]+)?$"),
        {
            "gemini_api": replace(_38, family="3.8-extended-thinking"),
            "vertex": _vertex(replace(_38, family="3.8-extended-thinking")),
        },
    ),
    Family(
        re.compile(r"^gemini-3\.8-live(?:-[\w.-]+)?$"), {"gemini_api": _38, "vertex": _vertex(_38)}
    ),
    # A preview on the Developer API; Vertex serves GA Live names only (assumption for 3.1).
    Family(
        re.compile(r"^gemini-3\.1-flash-live-preview(?:-[\w.-]+)?$"),
        {"gemini_api": _31, "vertex": replace(_vertex(_31), offered=False)},
    ),
    # The Developer API's 2.5 native-audio preview; not a Vertex name.
    Family(
        re.compile(r"^gemini-2\.5-flash-native-audio-preview(?:-[\w.-]+)?$"),
        {"gemini_api": _25, "vertex": replace(_vertex(_25), offered=False)},
    ),
    # Vertex's GA 2.5 native-audio Live model; not a Developer API name.
    Family(
        re.compile(r"^gemini-live-2\.5-flash-native-audio(?:-[\w.-]+)?$"),
        {
            "gemini_api": replace(_25, family="2.5-vertex-ga", offered=False),
            "vertex": _vertex(replace(_25, family="2.5-vertex-ga")),
        },
    ),
)

DEFAULT_MODEL = "gemini-3.8-live"
"""Google's stable Live model and recommended default for voice agents (September 2026)."""

EXAMPLE_MODELS: Mapping[str, Mapping[Provider, str]] = {
    "2.5": {
        "gemini_api": "gemini-2.5-flash-native-audio-preview-12-2025",
        "vertex": "gemini-live-2.5-flash-native-audio",
    },
    "3.1": {
        "gemini_api": "gemini-3.1-flash-live-preview",
        "vertex": "gemini-3.1-flash-live-preview",
    },
    "3.8": {"gemini_api": "gemini-3.8-live", "vertex": "gemini-3.8-live"},
}
"""The name each provider uses for a family, for the end-to-end matrix and the README."""

_RESOURCE = re.compile(r"^(?:projects/[^/]+/locations/[^/]+/)?(?:publishers/[^/]+/)?models/")


def base_name(model: str) -> str:
    """``models/X`` and ``projects/P/locations/L/publishers/google/models/X`` -> ``X``."""
    return _RESOURCE.sub("", model.strip())


def capabilities(
    model: str, provider: Provider = "gemini_api", overrides: Mapping[str, Any] | None = None
) -> Capabilities:
    """The capabilities of ``model`` on ``provider``, with ``overrides`` applied on top."""
    name = base_name(model)
    caps = next((f.per_provider[provider] for f in FAMILIES if f.pattern.match(name)), CONSERVATIVE)
    if overrides:
        caps = replace(caps, **dict(overrides))
    return caps


OVERRIDABLE = frozenset(f.name for f in fields(Capabilities)) - {"family", "offered"}
"""Fields ``model.capabilities`` may set."""


def unknown_model_hint(model: str) -> str:
    """The start-up warning for a model name the table does not know."""
    return (
        f"model.model: {model!r} is not in callbridge's model table; using conservative "
        "capabilities (BLOCKING tools, so caller audio is held during tool calls; no "
        "proactive audio, affective dialog or thinking config). If the model supports more, "
        "say so under [model.capabilities], e.g. async_tools = true, response_scheduling = true"
    )


def setup_problems(
    caps: Capabilities,
    *,
    model: str,
    provider: Provider,
    proactive_audio: bool | None,
    affective_dialog: bool,
) -> list[str]:
    """Settings the chosen model would reject, each naming the field to fix."""
    problems = []
    if caps.known and not caps.offered:
        other = "vertex" if provider == "gemini_api" else "gemini_api"
        problems.append(
            f"model.model: {model!r} is not offered on provider {provider!r} "
            f"(set model.provider = {other!r}, or pick a {provider} model name)"
        )
    if proactive_audio is False and caps.proactive_audio == "always_on":
        problems.append(
            f"model.proactive_audio: {model} keeps proactive audio always on and rejects "
            "false; remove the setting"
        )
    if proactive_audio is not None and caps.proactive_audio == "unsupported":
        problems.append(
            f"model.proactive_audio: {model} does not accept a proactivity setting; remove it"
        )
    if affective_dialog and not caps.affective_dialog:
        problems.append(
            f"model.affective_dialog: {model} does not support affective dialog; remove it "
            "or set it to false"
        )
    return problems
