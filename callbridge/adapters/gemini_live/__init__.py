"""Gemini Live back end over google-genai: connector, session with resumption and rotation."""

from callbridge.adapters.gemini_live.connector import GeminiLiveConnector
from callbridge.adapters.gemini_live.session import GeminiLiveSession

__all__ = ["GeminiLiveConnector", "GeminiLiveSession"]
