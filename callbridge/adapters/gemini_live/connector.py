"""Opens :class:`GeminiLiveSession` s for a tenant: one genai client, many calls.

On Vertex AI the connector builds the credentials once (:mod:`callbridge.adapters.genai_common`)
and every
session reuses them: one token serves every call until it nears expiry, and the refresh then
runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from google import genai

from callbridge.adapters.gemini_live.session import GeminiLiveSession
from callbridge.adapters.genai_common import make_client, vertex_credentials
from callbridge.bridge.config import ModelSettings
from callbridge.bridge.ports import SessionRequest


class GeminiLiveConnector:
    """A :class:`~callbridge.bridge.ports.ModelConnector` for one model name and key (or
    credentials)."""

    def __init__(
        self,
        settings: ModelSettings,
        *,
        model: str | None = None,
        api_key: str | None = None,
        client: genai.Client | None = None,
        keepalive: dict[str, Any] | None = None,
    ) -> None:
        self._settings = settings
        self.model = model or settings.model
        self._credentials = (
            vertex_credentials(settings)
            if settings.provider == "vertex" and client is None
            else None
        )
        self._client = client or make_client(
            settings, api_key=api_key, credentials=self._credentials, keepalive=keepalive
        )
        self.sessions_opened = 0

    @asynccontextmanager
    async def open(self, request: SessionRequest) -> AsyncIterator[GeminiLiveSession]:
        session = GeminiLiveSession(
            self._client,
            self._settings,
            request,
            model=self.model,
            credentials=self._credentials,
        )
        await session.open()
        self.sessions_opened += 1
        try:
            yield session
        finally:
            await session.aclose()
