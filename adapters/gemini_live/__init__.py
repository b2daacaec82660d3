"""Gemini Live back end over google-genai: connector, session with resumption and rotation."""

from adapters.gemini_live.connector import GeminiLiveConnector
from adapters.gemini_live.session import GeminiLiveSession

__all__ = ["GeminiLiveConnector", "GeminiLiveSession"]
