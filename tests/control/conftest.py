"""Fixtures for the call-control tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.control import toolbox


@pytest.fixture(autouse=True)
def toolbox_log() -> Iterator[toolbox.ToolLog]:
    """A fresh tool log per test (the tools are module functions, so the log is global)."""
    toolbox.LOG.reset()
    yield toolbox.LOG
    toolbox.LOG.reset()
