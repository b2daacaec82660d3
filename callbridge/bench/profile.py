"""Sampling profile of the bridge process with py-spy, summarised into its top costs.

py-spy samples from outside the process (no instrumentation inside the bridge, so the profile
does not distort what it measures). It runs pinned to the emulators' core and in
``--nonblocking`` mode, so the bridge is never paused. The raw output is py-spy's collapsed
stacks (``frame;frame;... count``); :func:`summarise` turns it into the shares that matter.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callbridge.bench.procs import plan_cores

RATE_HZ = 200


def py_spy() -> str | None:
    """The py-spy executable beside this interpreter, or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


async def record(pid: int, seconds: float, out: Path) -> Path | None:
    """Profile ``pid`` for ``seconds``; returns the collapsed-stack file (None if unavailable)."""
    exe = py_spy()
    if exe is None:
        return None
    proc = await asyncio.create_subprocess_exec(
        exe,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        str(RATE_HZ),
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    os.sched_setaffinity(proc.pid, plan_cores().emulators)
    _, err = await proc.communicate()
    if proc.returncode != 0 or not await asyncio.to_thread(out.exists):
        sys.stderr.write(f"py-spy failed ({proc.returncode}): {err.decode()[-500:]}\n")
        return None
    return out


@dataclass(frozen=True)
class Cost:
    name: str
    share: float


ROOT_FRAMES = (
    "runpy",
    "asyncio/runners.py",
    "asyncio/base_events.py",
    "asyncio/events.py",
    "bench/bridge_proc.py",
)
"""Frames every sample passes through (the loop itself): left out of the inclusive list."""

PACKAGES = (
    ("genai/", "google-genai"),
    ("pydantic", "pydantic"),
    ("websockets/", "websockets"),
    ("telcoflow/", "telcoflow SDK"),
    ("abxbus", "telcoflow SDK"),
    ("numpy/", "numpy"),
    ("soxr/", "soxr"),
    ("bridge/", "bridge (ours)"),
    ("adapters/", "adapters (ours)"),
    ("ssl.py", "ssl"),
    ("sslproto.py", "asyncio ssl"),
    ("asyncio/", "asyncio"),
    ("selectors.py", "asyncio"),
    ("json", "json"),
    ("base64.py", "base64"),
    ("structlog", "structlog"),
)


def _where(frame: str) -> str:
    return frame.partition(" (")[2].rstrip(")").rsplit(":", 1)[0]


def _function(frame: str) -> str:
    """``name (path/to/module.py:line)`` -> ``name (module.py)`` (lines would split a function)."""
    name = frame.partition(" (")[0]
    short = "/".join(_where(frame).split("/")[-2:])
    return f"{name} ({short})"


def package_of(frame: str) -> str:
    where = _where(frame)
    for needle, package in PACKAGES:
        if needle in where:
            return package
    return "other (stdlib, interpreter)"


def summarise(path: Path, top: int = 15) -> dict[str, Any]:
    """Shares of all samples: self time by package and by function, inclusive by function.

    py-spy samples the running thread only (idle waits are not sampled), so every share is of
    the bridge's busy time. Coroutine stacks resumed by the loop can lack their root frames;
    they still count towards every frame they show.
    """
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and " (" in f]
        if not frames:
            continue
        total += count
        names = {_function(f) for f in frames if not any(r in _where(f) for r in ROOT_FRAMES)}
        for name in names:
            inclusive[name] += count
        self_time[_function(frames[-1])] += count
        packages[package_of(frames[-1])] += count
    scale = 1.0 / total if total else 0.0
    return {
        "samples": total,
        "by_package": [Cost(n, c * scale) for n, c in packages.most_common()],
        "self": [Cost(n, c * scale) for n, c in self_time.most_common(top)],
        "inclusive": [Cost(n, c * scale) for n, c in inclusive.most_common(top * 2)],
    }
