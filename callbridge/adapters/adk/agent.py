"""Load the tenant's ADK agent (``module:attribute``) and prepare a copy of it for calls.

The user's objects are never changed: every agent in the tree is cloned with
``model_copy(update=...)`` and only the clones get

- the model: a string model name (or an unset one at the root, which takes the tenant's
  ``model.model``) becomes an :class:`~callbridge.adapters.adk.model.ObservedGemini`; with
  ``model.base_url`` / ``ca_file`` / ``api_key`` set it points at that endpoint with that trust
  and key. A plain ``Gemini`` object keeps its settings unless the tenant names an endpoint.
  Agents with another ``BaseLlm`` are left alone (callbridge then cannot see their connects).
- the call-control tools, declared NON_BLOCKING or BLOCKING for the model family that serves
  each agent and bound to the connector's live calls
  (:meth:`~callbridge.adapters.adk.tools.CallControlTool.for_call`).

The agent's own model name wins over ``model.model``, which is only the default for an agent
that names none.
"""

from __future__ import annotations

import copy
import inspect
import pkgutil
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from google.adk.agents.base_agent import BaseAgent
from google.adk.agents.llm_agent import LlmAgent
from google.adk.apps.app import App
from google.adk.models.base_llm import BaseLlm
from google.adk.models.google_llm import Gemini
from google.adk.tools.base_tool import BaseTool
from google.adk.tools.function_tool import FunctionTool
from google.genai import types

from callbridge.adapters.adk.calls import CallRegistry
from callbridge.adapters.adk.model import ObservedGemini
from callbridge.adapters.adk.tools import CallControlTool
from callbridge.adapters.genai_common import client_kwargs, socket_args, vertex_credentials
from callbridge.bridge.config import ModelSettings
from callbridge.bridge.errors import ConfigError

DEFAULT_ATTRIBUTES = ("app", "root_agent")
_APP_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]*$")


@dataclass(frozen=True)
class LoadedAgent:
    """What ``module:attribute`` named: a root agent, and the App around it if it was one."""

    root: BaseAgent
    app: App | None
    source: str


def load_agent(target: str | BaseAgent | App) -> LoadedAgent:
    """Import ``module:attribute`` (or ``module``, then ``app`` or ``root_agent`` is used)."""
    if isinstance(target, App | BaseAgent):
        return _loaded(target, repr(type(target).__name__))
    module_name, _, attribute = target.partition(":")
    if not module_name:
        raise ConfigError(f"model.adk_agent: {target!r} is not 'module:attribute'")
    candidates = [attribute] if attribute else list(DEFAULT_ATTRIBUTES)
    for name in candidates:
        try:
            obj: Any = pkgutil.resolve_name(f"{module_name}:{name}")
        except AttributeError:
            continue
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"model.adk_agent: cannot import {module_name!r}: {exc}") from None
        return _loaded(obj, target)
    wanted = attribute or " or ".join(DEFAULT_ATTRIBUTES)
    raise ConfigError(f"model.adk_agent: module {module_name!r} has no {wanted}")


def _loaded(obj: object, source: str) -> LoadedAgent:
    if isinstance(obj, App):
        if not isinstance(obj.root_agent, BaseAgent):
            raise ConfigError(
                f"model.adk_agent: {source} is an App whose root is a workflow node, not an "
                "agent; live calls need an ADK agent (Agent/LlmAgent) at the root"
            )
        return LoadedAgent(obj.root_agent, obj, source)
    if isinstance(obj, BaseAgent):
        return LoadedAgent(obj, None, source)
    raise ConfigError(
        f"model.adk_agent: {source} is a {type(obj).__name__}, not an ADK Agent or App"
    )


def app_name_for(agent: BaseAgent) -> str:
    """An App name ADK accepts, derived from the agent's name."""
    name = agent.name
    if not _APP_NAME.match(name) or name == "user":
        name = f"app_{name.strip('_') or 'agent'}"
    return name


# ── The model ───────────────────────────────────────────────────────────────────────────────


def has_endpoint(settings: ModelSettings) -> bool:
    return bool(
        settings.base_url or settings.ca_file or settings.api_key or settings.provider == "vertex"
    )


def model_factory(settings: ModelSettings) -> Callable[[str], ObservedGemini]:
    """Builds the model for a name, pointed at the tenant's endpoint and provider (if any).

    The same client arguments as the raw back end
    (:func:`callbridge.adapters.genai_common.client_kwargs`):
    relaxed keepalive, 16 MiB frames, the endpoint's trust, and either the API key or Vertex's
    project, location and one credentials object shared by every call (built here, once).
    """
    if settings.provider == "vertex":
        kwargs = client_kwargs(settings, credentials=vertex_credentials(settings))
    elif settings.api_key is not None:
        kwargs = client_kwargs(settings)
    else:  # no key in the settings: genai reads the environment, as ADK does by default
        kwargs = {"http_options": {"async_client_args": socket_args(settings)}}
    base_url = kwargs["http_options"].pop("base_url", None)

    def make(name: str) -> ObservedGemini:
        return ObservedGemini(model=name, base_url=base_url, client_kwargs=kwargs)

    return make


def _retarget_model(
    model: str | BaseLlm, settings: ModelSettings, make: Callable[[str], ObservedGemini]
) -> BaseLlm | None:
    """The clone's model, or None to leave the field as it is."""
    if isinstance(model, str):
        return make(model) if model else None
    if isinstance(model, ObservedGemini) and not has_endpoint(settings):
        return None
    if type(model) is Gemini or isinstance(model, ObservedGemini):
        if has_endpoint(settings):
            return make(model.model)
        return ObservedGemini.from_gemini(model)
    return None


def model_name(model: str | BaseLlm) -> str:
    return model if isinstance(model, str) else model.model


# ── The tree ────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class PreparedAgent:
    """The clone the calls run, and what the session must know about it."""

    root: BaseAgent
    model: str
    non_blocking_tools: frozenset[str]


def prepare_agent(
    root: BaseAgent,
    settings: ModelSettings,
    *,
    model_override: str | None = None,
    calls: CallRegistry | None = None,
) -> PreparedAgent:
    """Clone the tree with the tenant's model settings and per-family call-control tools.

    ``model_override`` (the tenant's fallback model) replaces the model name of every agent
    served by Gemini, whatever it named; agents on another ``BaseLlm`` keep theirs. ``calls``:
    the live calls the call-control tools act on (the connector's; ``None``: they answer
    "unavailable").
    """
    make = model_factory(settings)
    root_model = settings.model
    if isinstance(root, LlmAgent) and model_name(root.model):
        root_model = model_name(root.model)
    if model_override is not None:
        root_model = model_override
    clone = _clone(
        root, settings, make, inherited=root_model, rename=model_override, is_root=True, calls=calls
    )
    if model_override is not None and not any(
        isinstance(a, LlmAgent) and model_name(a.model) == model_override for a in walk(clone)
    ):
        raise ConfigError(
            f"model.fallback_model: {model_override!r} cannot serve this ADK agent: none of its "
            "agents runs on a Gemini model (remove fallback_model or use a Gemini agent)"
        )
    return PreparedAgent(clone, root_model, frozenset(_non_blocking_names(clone)))


def _renamed(model: str | BaseLlm, name: str) -> str | BaseLlm:
    """``model`` serving ``name`` instead; an unset name (inherit) or a non-Gemini stays."""
    if isinstance(model, str):
        return name if model else model
    if isinstance(model, Gemini):
        return model.model_copy(update={"model": name})
    return model


def _clone(
    agent: BaseAgent,
    settings: ModelSettings,
    make: Callable[[str], ObservedGemini],
    *,
    inherited: str,
    rename: str | None,
    is_root: bool,
    calls: CallRegistry | None,
) -> BaseAgent:
    updates: dict[str, Any] = {}
    family = inherited
    if isinstance(agent, LlmAgent):
        target: str | BaseLlm = agent.model if model_name(agent.model) or not is_root else inherited
        if rename is not None:
            target = _renamed(target, rename)
        family = model_name(target) or inherited
        new_model: str | BaseLlm | None = _retarget_model(target, settings, make)
        if new_model is None and target is not agent.model:
            new_model = target  # renamed, but otherwise kept as the user configured it
        if new_model is not None:
            updates["model"] = new_model
        if agent.tools:
            updates["tools"] = [_for_phone(t, family, settings, calls) for t in agent.tools]
    children = [
        _clone(sub, settings, make, inherited=family, rename=rename, is_root=False, calls=calls)
        for sub in agent.sub_agents
    ]
    if children:
        updates["sub_agents"] = children
    clone = agent.model_copy(update=updates)
    for child in children:
        child.parent_agent = clone
    return clone


def _for_phone(tool: Any, family: str, settings: ModelSettings, calls: CallRegistry | None) -> Any:
    """Declare the agent's plain function tools NON_BLOCKING where the model family allows.

    On a phone line a BLOCKING call freezes ADK's event stream (no barge-in while a tool
    runs) and Gemini closes the session (1008) if caller audio arrives while it is pending,
    which on a live line it always does. Tools that already chose a behaviour keep it;
    call-control tools pick theirs per family and act on ``calls``; other tool kinds are left
    as they are.
    """
    async_ok = settings.tools_non_blocking(family)
    if isinstance(tool, CallControlTool):
        return tool.for_call(async_ok, calls)
    if not async_ok:
        return tool
    if callable(tool) and not isinstance(tool, BaseTool):
        if inspect.isasyncgenfunction(tool):
            return tool  # a streaming tool: ADK already runs it in the background
        tool = FunctionTool(tool)
    elif isinstance(tool, FunctionTool) and tool.behavior is None:
        tool = copy.copy(tool)
    else:
        return tool
    tool.behavior = types.Behavior.NON_BLOCKING
    tool.response_scheduling = types.FunctionResponseScheduling.WHEN_IDLE
    return tool


def walk(agent: BaseAgent) -> Iterator[BaseAgent]:
    yield agent
    for sub in agent.sub_agents:
        yield from walk(sub)


def _non_blocking_names(root: BaseAgent) -> Iterator[str]:
    """Tools whose calls never block the model (ADK declares them NON_BLOCKING)."""
    for agent in walk(root):
        if not isinstance(agent, LlmAgent):
            continue
        for tool in agent.tools:
            if isinstance(tool, BaseTool):
                func = getattr(tool, "func", None)
                streaming = func is not None and inspect.isasyncgenfunction(func)
                declared = (
                    tool.behavior is types.Behavior.NON_BLOCKING
                    if tool.behavior is not None
                    else tool.response_scheduling is not None
                )
                if streaming or declared:
                    yield tool.name
            elif callable(tool) and inspect.isasyncgenfunction(tool):
                yield tool.__name__
