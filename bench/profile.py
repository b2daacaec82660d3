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

from bench.procs import plan_cores

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


IDLE_LEAVES = ("select (selectors.py", "epoll", "_run_once (asyncio/base_events.py")
"""Leaf frames that mean the loop was waiting, not working."""


def _function(frame: str) -> str:
    """``name (path/to/module.py:line)`` -> ``name (module.py)`` (lines would split a function)."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    short = "/".join(path.split("/")[-2:])
    return f"{name} ({short})"


def summarise(path: Path, top: int = 15) -> dict[str, list[Cost] | float]:
    """Inclusive and self shares of busy samples, by function; plus the idle share."""
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    total = busy = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        total += count
        if not frames or any(frames[-1].startswith(idle) for idle in IDLE_LEAVES):
            continue
        busy += count
        names = [_function(f) for f in frames]
        for name in set(names):
            inclusive[name] += count
        self_time[names[-1]] += count
    scale = 1.0 / busy if busy else 0.0
    return {
        "idle_share": (total - busy) / total if total else 0.0,
        "inclusive": [Cost(n, c * scale) for n, c in inclusive.most_common(top * 3)],
        "self": [Cost(n, c * scale) for n, c in self_time.most_common(top)],
    }
