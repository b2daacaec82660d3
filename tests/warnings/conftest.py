"""Fixtures for the warning tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs
from structlog.typing import EventDict


@pytest.fixture
def logs() -> Iterator[list[EventDict]]:
    """Every structlog event of the test (the bridge's loggers included)."""
    with capture_logs() as captured:
        yield captured
