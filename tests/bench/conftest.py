"""Every benchmark test starts with the cores the test process was given.

``callbridge.bench.run.bench`` pins the calling process (the orchestrator) to the emulators'
core, as the CLI wants; inside a test worker that pin would outlive the test and make every
later benchmark test in the same worker see a one-core machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

CORES = frozenset(os.sched_getaffinity(0))


@pytest.fixture(autouse=True)
def _the_process_cores() -> Iterator[None]:
    os.sched_setaffinity(0, CORES)
    yield
    os.sched_setaffinity(0, CORES)
