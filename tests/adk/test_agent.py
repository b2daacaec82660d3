"""Loading ``module:attribute`` and preparing a copy of the user's agent for calls."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest
from google.adk.agents import Agent, LlmAgent
from google.adk.agents.base_agent import BaseAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.google_llm import Gemini
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.tools.function_tool import FunctionTool
from google.genai import types

from callbridge.adapters.adk import AdkConnector, CallbridgePlugin
from callbridge.adapters.adk.agent import app_name_for, load_agent, prepare_agent
from callbridge.adapters.adk.model import ObservedGemini
from callbridge.bridge.config import ModelSettings, TelcoflowSettings, TenantConfig
from callbridge.bridge.errors import ConfigError
from tests.adk.helpers import MODEL_3X, MODEL_25

CERT = Path(__file__).with_name("missing.pem")


def _settings(**extra: Any) -> ModelSettings:
    return ModelSettings(**{"backend": "adk", "adk_agent": "x:y", "model": MODEL_25, **extra})


def _llm(agent: BaseAgent) -> LlmAgent:
    assert isinstance(agent, LlmAgent)
    return agent


def test_load_agent_forms() -> None:
    plain = load_agent("callbridge.examples.human_escalation:root_agent")
    assert plain.app is None and plain.root.name == "front_desk"
    default = load_agent("callbridge.examples.after_hours_voicemail")  # module only: ``app`` first
    assert default.app is not None and default.root.name == "after_hours"
    assert load_agent("callbridge.examples.after_hours_voicemail:root_agent").app is None


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module_xyz:agent", "cannot import 'no_such_module_xyz'"),
        ("callbridge.examples.human_escalation:nope", "has no nope"),
        ("callbridge.examples._data:DATA_ENV", "is a str, not an ADK Agent or App"),
        (":root_agent", "is not 'module:attribute'"),
    ],
)
def test_load_agent_errors_name_the_setting(target: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"model\.adk_agent") as info:
        load_agent(target)
    assert message in str(info.value)


def test_prepare_clones_and_points_the_model_at_the_endpoint(tmp_path: Path) -> None:
    child = Agent(name="billing", model=MODEL_3X, instruction="Bills.")
    quiet = Agent(name="notes", instruction="Notes.")
    root = Agent(name="desk", instruction="Help.", sub_agents=[child, quiet])
    settings = _settings(base_url="https://127.0.0.1:9", api_key="k")

    prepared = prepare_agent(root, settings)

    clone = _llm(prepared.root)
    assert isinstance(clone.model, ObservedGemini)
    assert clone.model.model == MODEL_25 and clone.model.base_url == "https://127.0.0.1:9"
    assert clone.model.client_kwargs is not None and clone.model.client_kwargs["api_key"] == "k"
    billing, notes = (_llm(a) for a in clone.sub_agents)
    assert isinstance(billing.model, ObservedGemini) and billing.model.model == MODEL_3X
    assert notes.model == ""  # inherits the root's model, as before
    assert billing.parent_agent is clone and notes.parent_agent is clone
    # The user's tree is untouched.
    assert root.model == "" and child.model == MODEL_3X and child.parent_agent is root
    assert prepared.model == MODEL_25


def test_prepare_keeps_a_gemini_object_settings_without_an_endpoint() -> None:
    mine = Gemini(model=MODEL_3X, base_url="https://example.invalid", retry_options=None)
    prepared = prepare_agent(Agent(name="desk", model=mine), _settings())
    model = _llm(prepared.root).model
    assert isinstance(model, ObservedGemini) and model is not mine
    assert model.model == MODEL_3X and model.base_url == "https://example.invalid"
    assert prepared.model == MODEL_3X


def test_prepare_trusts_the_configured_ca(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model\.ca_file"):
        prepare_agent(Agent(name="desk"), _settings(ca_file=CERT))
    cert = tmp_path / "ca.pem"
    cert.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"model\.ca_file"):
        prepare_agent(Agent(name="desk"), _settings(ca_file=cert))


def test_non_blocking_tools_are_known_to_the_session() -> None:
    async def stream_prices(symbol: str) -> Any:
        """Streams prices."""
        yield {"price": 1}

    async def lookup(item: str) -> dict[str, str]:
        """Looks up."""
        return {}

    background = FunctionTool(lookup)
    background.behavior = types.Behavior.NON_BLOCKING
    plain = FunctionTool(lookup)
    plain.name = "plain_lookup"
    agent = Agent(name="desk", tools=[stream_prices, background, plain])
    # On a 2.5-family model every plain function tool is made NON_BLOCKING for the phone.
    assert prepare_agent(agent, _settings()).non_blocking_tools == {
        "stream_prices",
        "lookup",
        "plain_lookup",
    }
    # On 3.x (no async tools) only what the agent itself declared stays non-blocking.
    three = _settings(model="gemini-3.1-flash-live-preview")
    assert prepare_agent(agent, three).non_blocking_tools == {"stream_prices", "lookup"}


def test_app_names() -> None:
    assert app_name_for(Agent(name="desk")) == "desk"
    assert app_name_for(Agent(name="_hidden")) == "app_hidden"


def _tenant(tmp_path: Path, **model: Any) -> TenantConfig:
    return TenantConfig(
        tenant="acme",
        telcoflow=TelcoflowSettings(api_key="x", connector_uuid="c"),
        model=_settings(**{"adk_session_db": f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", **model}),
    )


async def test_connector_from_configuration(tmp_path: Path) -> None:
    config = _tenant(tmp_path, adk_agent="callbridge.examples.after_hours_voicemail:app")
    async with AdkConnector(config) as connector:
        assert connector.app.name == "after_hours"
        (plugin,) = connector.app.plugins
        assert isinstance(plugin, CallbridgePlugin)
        original = load_agent("callbridge.examples.after_hours_voicemail:app")
        assert original.app is not None and connector.app is not original.app
        assert connector.observed and connector.model == MODEL_25
    with pytest.raises(ConfigError, match=r"model\.adk_session_db"):
        AdkConnector(_tenant(tmp_path, adk_session_db="not a url"), agent=Agent(name="x"))


def test_fallback_override_renames_every_gemini_agent_and_leaves_the_user_tree_alone() -> None:
    child = Agent(name="billing", model=MODEL_3X, instruction="Bills.")
    inherits = Agent(name="notes", instruction="Notes.")
    configured = Agent(name="vip", model=Gemini(model=MODEL_3X), instruction="VIPs.")
    root = Agent(name="desk", instruction="Help.", sub_agents=[child, inherits, configured])

    prepared = prepare_agent(root, _settings(), model_override="spare-model")

    assert prepared.model == "spare-model"
    desk = _llm(prepared.root)
    billing, notes, vip = (_llm(a) for a in desk.sub_agents)
    assert isinstance(desk.model, ObservedGemini) and desk.model.model == "spare-model"
    assert isinstance(billing.model, ObservedGemini) and billing.model.model == "spare-model"
    assert notes.model == "", "an agent without a model still inherits (the renamed root's)"
    assert notes.canonical_model.model == "spare-model"
    assert isinstance(vip.model, ObservedGemini) and vip.model.model == "spare-model"
    # The user's objects are untouched.
    assert child.model == MODEL_3X and root.model == ""
    assert isinstance(configured.model, Gemini) and configured.model.model == MODEL_3X


def test_fallback_override_needs_an_agent_on_gemini() -> None:
    class OtherLlm(BaseLlm):
        """Another vendor's model: the fallback (a Gemini name) cannot replace it."""

        async def generate_content_async(
            self, llm_request: LlmRequest, stream: bool = False
        ) -> AsyncGenerator[LlmResponse, None]:
            raise NotImplementedError
            yield  # an async generator, as ADK expects

    root = Agent(name="desk", model=OtherLlm(model="someone-elses"), instruction="Help.")
    with pytest.raises(ConfigError, match=r"model\.fallback_model: 'spare' cannot serve"):
        prepare_agent(root, _settings(), model_override="spare")


async def test_fallback_connector_shares_the_session_store_and_app_name(
    tmp_path: Path,
) -> None:
    config = _tenant(
        tmp_path,
        adk_agent="callbridge.examples.after_hours_voicemail:app",
        fallback_model="spare-model",
        api_key="primary-key",
        fallback_api_key="spare-key",
    )
    async with AdkConnector(config) as primary:
        spare = primary.fallback()
        assert spare is not None
        assert spare.model == "spare-model" and primary.model == MODEL_25
        assert spare.session_service is primary.session_service
        assert spare.app.name == primary.app.name, "a call that falls back keeps its session"
        assert spare.config.model.api_key is not None
        assert spare.config.model.api_key.get_secret_value() == "spare-key"
        root = _llm(spare.app.root_agent)
        assert isinstance(root.model, ObservedGemini) and root.model.model == "spare-model"
        await spare.aclose()  # a no-op: the primary owns the runner's resources
    assert (
        AdkConnector(
            _tenant(tmp_path, adk_agent="callbridge.examples.after_hours_voicemail:app")
        ).fallback()
        is None
    )
