"""callbridge: Telcoflow phone calls bridged to Gemini Live or a Google ADK agent.

``callbridge.bridge`` is the call's logic and its ports (no vendor SDK, no sockets);
``callbridge.adapters`` implement those ports over telcoflow, google-genai and google-adk;
``callbridge.service`` runs them as a service (HTTP, store, metrics, the command line);
``callbridge.emulators`` and ``callbridge.bench`` are the local servers and the benchmark;
``callbridge.examples`` are example ADK agents.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("callbridge")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"
