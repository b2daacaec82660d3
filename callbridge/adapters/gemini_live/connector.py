"""Opens :class:`GeminiLiveSession` s for a tenant: one genai client, many calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from google import genai

from callbridge.adapters.gemini_live.session import GeminiLiveSession
from callbridge.adapters.gemini_live.setup import make_client
from callbridge.bridge.config import ModelSettings
from callbridge.bridge.ports import SessionRequest


class GeminiLiveConnector:
    """A :class:`~callbridge.bridge.ports.ModelConnector` for one model name and key."""

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
        self._client = client or make_client(settings, api_key=api_key, keepalive=keepalive)
        self.sessions_opened = 0

    @asynccontextmanager
    async def open(self, request: SessionRequest) -> AsyncIterator[GeminiLiveSession]:
        session = GeminiLiveSession(self._client, self._settings, request, model=self.model)
        await session.open()
        self.sessions_opened += 1
        try:
            yield session
        finally:
            await session.aclose()
