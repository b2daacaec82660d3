"""Both emulators in a child process, the bridge in this one: the soak's and the recorded hour's.

``callbridge soak`` and ``callbridge bench-record-hour`` each run one real bridge in their own
process (so its memory, descriptors and tasks are measured alone) and both emulators in a child
(``soak_load``, ``record_hour_load``) that speaks JSON lines on stdout, ``{"ready": {...}}``
first. On a machine with two or more cores the child gets the first and this process the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import Any


async def spawn(
    module: str, args: Sequence[str], *, stdin: bool = False, new_session: bool = False
) -> asyncio.subprocess.Process:
    """Start ``python -m module args`` pinned to the first core, this process on the others."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pin = ["--cpu", str(cpus[0])] if len(cpus) > 1 else []
    if len(cpus) > 1:
        os.sched_setaffinity(0, set(cpus[1:]))
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        *pin,
        stdin=asyncio.subprocess.PIPE if stdin else None,
        stdout=asyncio.subprocess.PIPE,
        start_new_session=new_session,
    )


async def read_message(stream: asyncio.StreamReader) -> dict[str, Any]:
    """The child's next JSON line (other output, such as warnings, is skipped)."""
    while True:
        line = await stream.readline()
        if not line:
            raise RuntimeError("the emulators' process exited early")
        text = line.decode().strip()
        if text.startswith("{"):
            data: dict[str, Any] = json.loads(text)
            return data


def emulator_sections(ready: dict[str, Any], *, api_key: str, connector: str) -> dict[str, Any]:
    """The tenant config's ``telcoflow`` and ``model`` sections for the child's ``ready``."""
    return {
        "telcoflow": {"base_url": ready["telco"], "api_key": api_key, "connector_uuid": connector},
        "model": {"api_key": "emulator-key", "base_url": ready["gemini"], "ca_file": ready["ca"]},
    }


def add_cpu_option(parser: argparse.ArgumentParser) -> None:
    """The child's side of :func:`spawn`: ``--cpu N``."""
    parser.add_argument("--cpu", type=int, default=None, help="pin to this core")


def pin_to(cpu: int | None) -> None:
    """Pin this (child) process to ``cpu`` when one was given."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
