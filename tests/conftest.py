"""Suite-wide guards: a clean environment, and no task left behind by any test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

LEAK_ENV = (
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_USE_ENTERPRISE",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "SSL_CERT_FILE",
    "TELCOFLOW_API_KEY",
    "TELCOFLOW_CONNECTOR_UUID",
    "TELCOFLOW_BASE_URL",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Real credentials or endpoints in the developer's shell must never reach a test."""
    for name in LEAK_ENV:
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running (structured concurrency is a contract here)."""
    before = set(asyncio.all_tasks())
    yield
    current = asyncio.current_task()
    leftovers: set[asyncio.Task[object]] = set()
    for _ in range(50):
        leftovers = {t for t in asyncio.all_tasks() - before if t is not current and not t.done()}
        if not leftovers:
            return
        await asyncio.sleep(0.02)
    names = sorted(t.get_name() + ": " + repr(t.get_coro()) for t in leftovers)
    pytest.fail("tasks leaked by the test:\n  " + "\n  ".join(names[:20]))
