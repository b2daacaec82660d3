"""Where the examples keep their SQLite files, and how they reach them without blocking.

The tools run on the event loop that also carries the call's audio, so every query goes to a
worker thread (``asyncio.to_thread``); each query opens its own short-lived connection.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

DATA_ENV = "CALLBRIDGE_EXAMPLES_DATA"


def data_dir() -> Path:
    """``$CALLBRIDGE_EXAMPLES_DATA``, or ``<tmp>/callbridge-examples``; created if missing."""
    folder = Path(os.environ.get(DATA_ENV) or Path(tempfile.gettempdir()) / "callbridge-examples")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def run_db(filename: str, schema: str, work: Callable[[sqlite3.Connection], T]) -> T:
    """Open ``filename`` in the data folder, make sure ``schema`` exists, run ``work``, commit."""

    def run() -> T:
        with sqlite3.connect(data_dir() / filename, timeout=5.0) as db:
            db.executescript(schema)
            return work(db)

    return await asyncio.to_thread(run)
