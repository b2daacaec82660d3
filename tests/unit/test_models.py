"""The model-capability table, the result-scheduling policy and the settings they refuse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from callbridge.bridge.config import ConfigInvalid, ModelSettings, load_config
from callbridge.bridge.models import (
    CONSERVATIVE,
    DEFAULT_MODEL,
    EXAMPLE_MODELS,
    PROVIDERS,
    base_name,
    capabilities,
)
from callbridge.bridge.scheduling import result_scheduling
from callbridge.service.config_cli import main as check_config

# (model, provider) -> (family, offered, async tools, async by default, scheduling honoured,
#                       proactive audio, affective dialog, thinking config, role content,
#                       transparent resumption, turnComplete after toolCall)
TABLE: list[tuple[str, str, tuple[Any, ...]]] = [
    (
        "gemini-2.5-flash-native-audio-preview-12-2025",
        "gemini_api",
        ("2.5", True, True, False, True, "optional", True, True, False, False, True),
    ),
    (
        "gemini-2.5-flash-native-audio-preview-12-2025",
        "vertex",
        ("2.5", False, True, False, False, "optional", True, True, False, True, True),
    ),
    (
        "gemini-live-2.5-flash-native-audio",
        "vertex",
        ("2.5-vertex-ga", True, True, False, False, "optional", True, True, False, True, True),
    ),
    (
        "gemini-live-2.5-flash-native-audio",
        "gemini_api",
        ("2.5-vertex-ga", False, True, False, True, "optional", True, True, False, False, True),
    ),
    (
        "gemini-3.1-flash-live-preview",
        "gemini_api",
        ("3.1", True, False, False, False, "unsupported", False, True, False, False, False),
    ),
    (
        "gemini-3.1-flash-live-preview",
        "vertex",
        ("3.1", False, False, False, False, "unsupported", False, True, False, True, False),
    ),
    (
        "gemini-3.8-live",
        "gemini_api",
        ("3.8", True, True, True, True, "always_on", False, False, True, False, False),
    ),
    (
        "gemini-3.8-live",
        "vertex",
        ("3.8", True, True, True, False, "always_on", False, False, True, True, False),
    ),
    (
        "gemini-3.8-live-extended-thinking",
        "gemini_api",
        (
            "3.8-extended-thinking",
            True,
            True,
            True,
            True,
            "always_on",
            False,
            False,
            True,
            False,
            False,
        ),
    ),
    (
        "gemini-4.0-live-preview",
        "gemini_api",
        ("unknown", True, False, False, False, "unsupported", False, False, False, False, False),
    ),
]


@pytest.mark.parametrize(("model", "provider", "expected"), TABLE, ids=lambda v: str(v)[:40])
def test_capability_table(model: str, provider: Any, expected: tuple[Any, ...]) -> None:
    caps = capabilities(model, provider)
    got = (
        caps.family,
        caps.offered,
        caps.async_tools,
        caps.async_tools_default,
        caps.response_scheduling,
        caps.proactive_audio,
        caps.affective_dialog,
        caps.thinking_config,
        caps.role_content_mid_session,
        caps.transparent_resumption,
        caps.turn_complete_after_tool_call,
    )
    assert got == expected


def test_38_limits_and_resource_names() -> None:
    caps = capabilities(
        "projects/p/locations/us-central1/publishers/google/models/gemini-3.8-live", "vertex"
    )
    assert caps.family == "3.8" and (caps.input_tokens, caps.output_tokens) == (131_072, 65_536)
    assert base_name("models/gemini-3.8-live") == "gemini-3.8-live"
    assert capabilities("models/gemini-3.8-live-001").family == "3.8"


def test_unknown_names_are_conservative_and_overridable() -> None:
    assert capabilities("my-tuned-live-model") == CONSERVATIVE
    assert not CONSERVATIVE.known and not CONSERVATIVE.tools_non_blocking()
    caps = capabilities("my-tuned-live-model", overrides={"async_tools": True})
    assert caps.tools_non_blocking() and caps.family == "unknown"


def test_the_default_is_38_and_every_example_name_is_known() -> None:
    assert DEFAULT_MODEL == "gemini-3.8-live" == ModelSettings().model
    assert ModelSettings().tools_non_blocking()
    for per_provider in EXAMPLE_MODELS.values():
        for provider in PROVIDERS:
            assert capabilities(per_provider[provider], provider).known


def test_tools_follow_the_table_not_the_name() -> None:
    """The old guess (`"gemini-3" not in model`) made 3.8's tools BLOCKING."""
    assert ModelSettings(model="gemini-3.8-live").tools_non_blocking()
    assert not ModelSettings(model="gemini-3.1-flash-live-preview").tools_non_blocking()
    assert ModelSettings(model="gemini-2.5-flash-native-audio-preview-12-2025").tools_non_blocking()
    forced = ModelSettings(model="gemini-3.8-live", non_blocking_tools=False)
    assert not forced.tools_non_blocking()


# ── Result scheduling ───────────────────────────────────────────────────────────────────────

SCHEDULING = [
    ("transfer_to_human", {"status": "connected", "agent": "leaving"}, "SILENT"),
    ("transfer_to_human", {"status": "connected", "mode": "whisper"}, "WHEN_IDLE"),
    ("transfer_to_human", {"status": "connected", "mode": "spy"}, "WHEN_IDLE"),
    ("transfer_to_human", {"status": "unanswered", "error_code": "CALL_UNANSWERED"}, "INTERRUPT"),
    ("transfer_to_human", {"status": "failed", "error_code": "X"}, "INTERRUPT"),
    ("transfer_to_human", {"error": "timed out after 32 s"}, "INTERRUPT"),
    ("transfer_to_human", {"status": "already_connected"}, "WHEN_IDLE"),
    ("end_call", {"status": "ending_call"}, "SILENT"),
    ("end_call", {"status": "leaving_call"}, "SILENT"),
    ("end_call", {"error": "boom"}, "WHEN_IDLE"),
    ("set_agent_mode", {"status": "ok", "mode": "whisper"}, "SILENT"),
    ("set_agent_mode", {"status": "refused", "reason": "no human"}, "WHEN_IDLE"),
    ("set_agent_mode", {"status": "failed", "error_code": "X"}, "WHEN_IDLE"),
    ("end_call", {"status": "caller_gone"}, "SILENT"),
    ("transfer_to_human", {"status": "unavailable"}, "SILENT"),
    ("lookup_order", {"status": "shipped"}, "WHEN_IDLE"),
    ("lookup_order", {"error": "db down"}, "WHEN_IDLE"),
]


@pytest.mark.parametrize(("tool", "response", "expected"), SCHEDULING)
def test_result_scheduling_per_tool_and_outcome(
    tool: str, response: dict[str, Any], expected: str
) -> None:
    assert result_scheduling(tool, response) == expected


# ── Settings the model rejects ──────────────────────────────────────────────────────────────

BASE = {"tenant": "t", "telcoflow": {"api_key": "k", "connector_uuid": "c"}}


def _problems(model: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigInvalid) as refused:
        load_config(overrides={**BASE, "model": model}, env={})
    return refused.value.problems


@pytest.mark.parametrize(
    ("model", "field"),
    [
        ({"proactive_audio": False}, "model.proactive_audio"),
        ({"affective_dialog": True}, "model.affective_dialog"),
        (
            {"model": "gemini-3.1-flash-live-preview", "proactive_audio": True},
            "model.proactive_audio",
        ),
        ({"provider": "vertex"}, "model.project"),
        (
            {"provider": "vertex", "project": "p", "model": "gemini-3.1-flash-live-preview"},
            "model.model",
        ),
        ({"model": "gemini-live-2.5-flash-native-audio"}, "model.model"),
        ({"credentials_file": "/k.json"}, "model.credentials_file"),
        ({"capabilities": {"telepathy": True}}, "model.capabilities"),
    ],
    ids=[
        "3.8-proactive-off",
        "3.8-affective",
        "3.1-proactivity",
        "vertex-no-project",
        "3.1-not-on-vertex",
        "vertex-name-on-dev-api",
        "key-file-without-vertex",
        "unknown-capability",
    ],
)
def test_settings_the_model_rejects_are_refused_naming_the_field(
    model: dict[str, Any], field: str
) -> None:
    problems = _problems(model)
    assert [p.split(":", 1)[0] for p in problems] == [field], problems


def test_settings_the_model_accepts_pass() -> None:
    ok = [
        {"model": "gemini-2.5-flash-native-audio-preview-12-2025", "affective_dialog": True},
        {"model": "gemini-2.5-flash-native-audio-preview-12-2025", "proactive_audio": False},
        {"proactive_audio": True},
        {"provider": "vertex", "project": "p", "model": "gemini-live-2.5-flash-native-audio"},
    ]
    for model in ok:
        load_config(overrides={**BASE, "model": model}, env={})


def test_check_config_refuses_and_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('tenant = "t"\n[model]\nprovider = "vertex"\nproactive_audio = false\n')
    assert check_config(["--without-secrets", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "model.project: Vertex AI needs the Google Cloud project" in err
    assert "model.proactive_audio: gemini-3.8-live keeps proactive audio always on" in err

    odd = tmp_path / "odd.toml"
    odd.write_text('tenant = "t"\n[model]\nmodel = "gemini-9-live-lab"\n')
    assert check_config(["--without-secrets", str(odd)]) == 0
    out = capsys.readouterr()
    assert "warning: model.model: 'gemini-9-live-lab' is not in callbridge's model table" in out.err
    assert "[model.capabilities]" in out.err
    assert "OK: tenant t, gemini model gemini-9-live-lab on Gemini Developer API" in out.out
