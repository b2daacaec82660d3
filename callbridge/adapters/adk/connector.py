"""``AdkConnector``: opens :class:`AdkSession` s for a tenant whose model is an ADK agent.

Built once per tenant process from ``model.adk_agent`` (``module:attribute``, an ``Agent`` /
``LlmAgent`` or an ``App``). It prepares a copy of the agent (:mod:`.agent`), keeps the App's
plugins and adds a :class:`~callbridge.adapters.adk.plugin.CallbridgePlugin` first if the App has
none,
and owns one ``Runner`` over a ``DatabaseSessionService`` (``model.adk_session_db``: SQLite by
default, any SQLAlchemy async URL), so conversations outlive the process. The plugin's live
calls (:attr:`AdkConnector.calls`) are what the connector's sessions register each call in and
what the prepared agent's call-control tools are bound to.

The bridge's own ``SessionRequest.system_instruction`` and ``functions`` are not used: the
agent brings its instruction and tools (call-control tools via
:func:`~callbridge.adapters.adk.tools.call_control_tools`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType

import structlog
from google.adk.agents.base_agent import BaseAgent
from google.adk.agents.llm_agent import LlmAgent
from google.adk.apps.app import App
from google.adk.runners import Runner
from google.adk.sessions.base_session_service import BaseSessionService
from google.adk.sessions.database_session_service import DatabaseSessionService

from callbridge.adapters.adk.agent import app_name_for, load_agent, prepare_agent
from callbridge.adapters.adk.model import ObservedGemini
from callbridge.adapters.adk.plugin import CallbridgePlugin
from callbridge.adapters.adk.session import AdkSession
from callbridge.bridge.config import TenantConfig
from callbridge.bridge.errors import ConfigError
from callbridge.bridge.ports import SessionRequest

log = structlog.get_logger("callbridge.adk")

UNKNOWN_CALLER = "unknown-caller"


def session_service_for(db_url: str) -> DatabaseSessionService:
    try:
        return DatabaseSessionService(db_url=db_url)
    except ValueError as exc:
        raise ConfigError(f"model.adk_session_db: {exc}") from None


class AdkConnector:
    """A :class:`~callbridge.bridge.ports.ModelConnector` running an ADK agent per call.

    ``agent`` (an ``Agent`` or ``App`` object) and ``session_service`` override what the tenant
    configuration names; tests and embedders use them. Call :meth:`aclose` (or use the
    connector as an async context manager) at shutdown to close plugins and the database.
    """

    def __init__(
        self,
        config: TenantConfig,
        *,
        agent: BaseAgent | App | None = None,
        session_service: BaseSessionService | None = None,
        model_override: str | None = None,
    ) -> None:
        settings = config.model
        target = agent if agent is not None else settings.adk_agent
        if target is None:
            raise ConfigError("model.adk_agent is not set ('module:attribute' of an ADK agent)")
        loaded = load_agent(target)
        self._source: BaseAgent | App = loaded.app if loaded.app is not None else loaded.root
        self._owns_runner = True
        plugins = list(loaded.app.plugins) if loaded.app is not None else []
        plugin = next((p for p in plugins if isinstance(p, CallbridgePlugin)), None)
        if plugin is None:
            plugin = CallbridgePlugin()
            plugins.insert(0, plugin)
        self.calls = plugin.calls
        """This agent's live calls: the plugin's, shared with the sessions and the tools."""
        prepared = prepare_agent(
            loaded.root, settings, model_override=model_override, calls=self.calls
        )
        self.config = config
        self.model = prepared.model
        self.non_blocking_tools = prepared.non_blocking_tools
        root = prepared.root
        self.observed = isinstance(root, LlmAgent) and isinstance(root.model, ObservedGemini)
        if loaded.app is not None:
            self.app = loaded.app.model_copy(update={"root_agent": root, "plugins": plugins})
        else:
            self.app = App(name=app_name_for(root), root_agent=root, plugins=plugins)
        self.session_service = session_service or session_service_for(settings.adk_session_db)
        self.runner = Runner(app=self.app, session_service=self.session_service)
        self.sessions_opened = 0
        log.info(
            "adk_agent_loaded",
            source=loaded.source,
            app=self.app.name,
            model=self.model,
            observed=self.observed,
            non_blocking_tools=sorted(self.non_blocking_tools),
        )

    def fallback(self) -> AdkConnector | None:
        """The same agent on ``model.fallback_model`` (None when none is configured).

        It shares this connector's session store, so a call that falls back keeps its ADK
        session (id = call id), and its agent's toolsets and plugins, which this connector
        alone closes. Its model key is ``model.fallback_api_key``, else ``model.api_key``.
        """
        settings = self.config.model
        if not settings.fallback_model:
            return None
        key = settings.fallback_api_key or settings.api_key
        config = self.config.model_copy(
            update={"model": settings.model_copy(update={"api_key": key})}
        )
        sibling = AdkConnector(
            config,
            agent=self._source,
            session_service=self.session_service,
            model_override=settings.fallback_model,
        )
        sibling._owns_runner = False
        return sibling

    @asynccontextmanager
    async def open(self, request: SessionRequest) -> AsyncIterator[AdkSession]:
        caller = str(getattr(request, "caller", "") or UNKNOWN_CALLER)
        session = AdkSession(
            self.runner,
            self.config.model,
            request,
            model=self.model,
            user_id=caller,
            observed=self.observed,
            non_blocking_tools=self.non_blocking_tools,
            slow_tool_after_s=self.config.warnings.slow_tool_call_s,
            max_held_audio_s=self.config.audio.max_gated_caller_audio_s,
            calls=self.calls,
        )
        async with session:
            self.sessions_opened += 1
            yield session

    async def aclose(self) -> None:
        """Close the runner: its plugins, toolsets and the session database.

        A :meth:`fallback` sibling closes nothing: what it uses belongs to its primary.
        """
        if self._owns_runner:
            await self.runner.close()

    async def __aenter__(self) -> AdkConnector:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
