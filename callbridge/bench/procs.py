"""Child processes for the benchmark and the soak: spawn, pin to a core, talk, measure.

Why processes: the bridge's CPU must be measured alone. Both emulators do real work per frame
(TLS, JSON, pacing); in the bridge's process their cost would be counted as the bridge's, and on
the bridge's core they would steal its time. So every party runs in its own process, pinned with
``os.sched_setaffinity``: the emulators (and this orchestrator) on one core, the bridge on another.

The parent and a child talk JSON lines over the child's stdin/stdout (stderr goes to a log file):

- the child's first line is ``{"ready": {...}}`` (ports, URLs, whatever the parent needs);
- each line the parent writes, ``{"cmd": name, ...params}``, gets exactly one reply line,
  ``{"ok": {...}}`` or ``{"error": "..."}``; ``{"cmd": "stop"}`` makes the child finish;
- EOF on stdin (the parent died) also makes the child finish, so nothing is left running.

CPU and memory come from ``/proc/<pid>/task/*/schedstat`` and ``/proc/<pid>/statm``: time on
the CPU of all the child's threads (precise, unlike tick-sampled ``utime``), and its resident
set, without any dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

JsonDict = dict[str, Any]
Handler = Callable[[JsonDict], Awaitable[JsonDict]]

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
RT_PRIORITY = 10
"""SCHED_RR priority with ``realtime``: above every normal task, far below kernel threads.
The kernel's RT throttling (95 % of each second by default) still leaves other work a slice."""
READ_LIMIT = 1 << 20
"""Longest reply line accepted (large results travel as files, not lines)."""


# ── Cores ───────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class CorePlan:
    """Which cores the emulators (and this orchestrator) and the bridge may run on."""

    emulators: frozenset[int]
    bridge: frozenset[int]
    spill: bool = False
    """The emulators may also run on the bridge's core while the bridge leaves it idle (the
    bridge then runs at a strictly higher real-time priority, so it never waits for them). On a
    2-core machine the load generator for 100 calls needs about a core of its own, and the
    bridge leaves a quarter of its core idle at that load."""

    @property
    def shared(self) -> bool:
        """True when the machine has one usable core: the bridge's CPU then competes."""
        return bool(self.emulators & self.bridge)

    @property
    def emulator_affinity(self) -> frozenset[int]:
        """Where the emulator processes may run: their core, and the bridge's with ``spill``."""
        return self.emulators | self.bridge if self.spill else self.emulators

    def describe(self) -> str:
        if self.shared:
            return f"one shared core set {sorted(self.bridge)} (bridge CPU competes with load)"
        text = f"emulators on cores {sorted(self.emulators)}, bridge on {sorted(self.bridge)}"
        if self.spill:
            text += " (emulators also on the bridge's core when it is idle, at lower priority)"
        return text


def plan_cores(*, spill: bool = False) -> CorePlan:
    """Emulators on the first usable core, the bridge on the second (or all share one)."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) >= 2:
        return CorePlan(frozenset(available[:1]), frozenset(available[1:2]), spill=spill)
    return CorePlan(frozenset(available), frozenset(available))


def pin_self(cores: frozenset[int]) -> None:
    """Pin this process (threads started later inherit it)."""
    os.sched_setaffinity(0, cores)


# ── Measuring a process ─────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class ProcSample:
    """CPU time used so far and resident memory of one process, at monotonic time ``t``."""

    t: float
    cpu_s: float
    rss_bytes: int


def _on_cpu_s(pid: int) -> float:
    """Time ``pid``'s threads spent running, from the scheduler's own nanosecond count.

    Not ``utime``/``stime`` from ``/proc/<pid>/stat``: with tick-based CPU accounting (the
    usual kernel configuration, ``CONFIG_TICK_CPU_ACCOUNTING``) those are sampled at each timer
    tick, and a process that runs in short bursts locked to a 20 ms cadence can be charged
    several times too little or too much. ``schedstat`` is updated at every context switch.
    """
    total_ns, counted = 0, False
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            total_ns += int((task / "schedstat").read_text().split()[0])
            counted = True
    return total_ns / 1e9 if counted else _ticked_cpu_s(pid)


def _ticked_cpu_s(pid: int) -> float:
    """``utime + stime`` from ``/proc/<pid>/stat``: for kernels without ``schedstat``."""
    # The command name (field 2) may hold spaces; the fields after its ")" are fixed.
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def sample_process(pid: int) -> ProcSample:
    """CPU seconds on the CPU so far (all threads) and RSS of ``pid``, from /proc."""
    t = time.monotonic()
    cpu_s = _on_cpu_s(pid)
    resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return ProcSample(t, cpu_s, resident_pages * PAGE_SIZE)


def cores_busy_s(cores: frozenset[int]) -> float:
    """CPU seconds the given cores have spent busy since boot, whoever ran (/proc/stat).

    Compared with a process's own CPU time over the same interval, this tells how much of its
    core something else took: on a shared machine, other work competes with the benchmark.
    It is tick-sampled, so only an approximation over a window of seconds.
    """
    busy = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cores:
            continue
        values = [int(v) for v in rest.split()]
        # user nice system idle iowait irq softirq steal ...: busy is all but idle and iowait.
        busy += sum(values[:3]) + sum(values[5:8])
    return busy / CLOCK_TICKS


REALTIME_POLICIES = (1, 2)
"""SCHED_FIFO and SCHED_RR: such a task runs before any normal one, whatever its weight."""


def stat_policy(stat_text: str) -> tuple[int, int]:
    """(parent pid, scheduling policy) from a ``/proc/<pid>/stat`` line."""
    # The command name (field 2) may hold spaces; fields after its ")" start at field 3.
    fields = stat_text.rpartition(")")[2].split()
    return int(fields[1]), int(fields[38])


def realtime_tasks(cores: frozenset[int], exclude: frozenset[int]) -> set[int]:
    """User-space SCHED_FIFO/RR processes (not in ``exclude``) allowed on any of ``cores``.

    On a shared machine another benchmark run with ``--realtime`` takes a core from a normal
    process whenever it wants it: a bridge under a CFS quota (which must stay normal) then
    loses real time for reasons that are not its own.
    """
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        pid = int(entry.name)
        try:
            ppid, policy = stat_policy((entry / "stat").read_text())
            if policy in REALTIME_POLICIES and ppid != 2 and os.sched_getaffinity(pid) & cores:
                found.add(pid)
        except (OSError, ValueError, IndexError):
            continue
    return found


def cpu_share(start: ProcSample, end: ProcSample) -> float:
    """Cores used on average between two samples (1.0 = one core fully busy)."""
    elapsed = end.t - start.t
    return (end.cpu_s - start.cpu_s) / elapsed if elapsed > 0 else 0.0


def _raise_priority(pid: int, nice: int) -> None:
    """Give ``pid`` scheduling weight ``nice`` against everything else on the machine.

    With autogroup scheduling (the Linux default on desktops and many VMs) a process's nice
    value only counts inside its session's group; groups share a core equally. So the child is
    started in a session of its own (``start_new_session``) and its group's nice is set too.
    Without permission (not root) both silently stay as they were.
    """
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))


def _priority_of(pid: int) -> str:
    """``nice N`` and, under autogroup scheduling, the group's nice (what actually counts)."""
    try:
        text = f"nice {os.getpriority(os.PRIO_PROCESS, pid)}"
        if os.sched_getscheduler(pid) == os.SCHED_RR:
            text = f"SCHED_RR {os.sched_getparam(pid).sched_priority}, " + text
    except OSError:
        return "unknown"
    with contextlib.suppress(OSError):
        group_nice = autogroup_nice(Path(f"/proc/{pid}/autogroup").read_text())
        if group_nice is not None:
            text += f", autogroup nice {group_nice}"
    return text


def autogroup_nice(text: str) -> str | None:
    """The nice value in a ``/proc/<pid>/autogroup`` reading (``/autogroup-12 nice 0``).

    None when the file is empty, as it is when the task is in no autogroup (autogroup
    scheduling switched off, as on many servers and, by all signs, our CI runner).
    """
    fields = text.split()
    return fields[-1] if len(fields) >= 3 and fields[-2] == "nice" else None


# ── Parent side ─────────────────────────────────────────────────────────────────────────────


class ChildError(RuntimeError):
    """A child failed to start, answered with an error, or died."""


class Child:
    """One pinned child process speaking the JSON-lines protocol; use as ``async with``."""

    def __init__(
        self,
        name: str,
        module: str,
        args: Sequence[str],
        *,
        cores: frozenset[int],
        log_path: Path,
        ready_timeout_s: float = 60.0,
        nice: int | None = None,
        realtime: bool = False,
        rt_priority: int = RT_PRIORITY,
        on_spawn: Callable[[int], None] | None = None,
    ) -> None:
        self.name = name
        self._on_spawn = on_spawn
        self._argv = [sys.executable, "-m", module, *args]
        self._cores = cores
        self._log_path = log_path
        self._ready_timeout_s = ready_timeout_s
        self._nice = nice
        self._realtime = realtime
        self._rt_priority = rt_priority
        self.priority = ""
        self._proc: asyncio.subprocess.Process | None = None
        self._log_file: IO[bytes] | None = None
        self._lock = asyncio.Lock()
        self.ready: JsonDict = {}

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ChildError(f"{self.name} is not running")
        return self._proc.pid

    def sample(self) -> ProcSample:
        return sample_process(self.pid)

    async def start(self) -> JsonDict:
        """Spawn, pin, and wait for the ready line; returns its payload."""
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self._log_path.open("wb")
        self._proc = await asyncio.create_subprocess_exec(
            *self._argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log_file,
            limit=READ_LIMIT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=self._nice is not None,
        )
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(self._proc.pid, self._cores)
        if self._on_spawn is not None:
            self._on_spawn(self._proc.pid)  # e.g. into a CPU-limited cgroup, before any work
        if self._nice is not None:
            _raise_priority(self._proc.pid, self._nice)
        if self._realtime:
            with contextlib.suppress(OSError):
                os.sched_setscheduler(
                    self._proc.pid, os.SCHED_RR, os.sched_param(self._rt_priority)
                )
        self.priority = _priority_of(self._proc.pid)
        try:
            line = await asyncio.wait_for(self._readline(), self._ready_timeout_s)
        except TimeoutError:
            await self.kill()
            raise ChildError(f"{self.name}: not ready in {self._ready_timeout_s:.0f} s") from None
        ready = line.get("ready")
        if not isinstance(ready, dict):
            await self.kill()
            raise ChildError(f"{self.name}: bad ready line {line!r}; see {self._log_path}")
        self.ready = ready
        return ready

    async def request(self, cmd: str, *, timeout_s: float = 60.0, **params: Any) -> JsonDict:
        """Send one command and return its ``ok`` payload (raises ``ChildError`` otherwise)."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise ChildError(f"{self.name} is not running")
        async with self._lock:
            proc.stdin.write((json.dumps({"cmd": cmd, **params}) + "\n").encode())
            await proc.stdin.drain()
            try:
                reply = await asyncio.wait_for(self._readline(), timeout_s)
            except TimeoutError:
                raise ChildError(f"{self.name}: no reply to {cmd!r} in {timeout_s} s") from None
        if "ok" not in reply:
            raise ChildError(f"{self.name}: {cmd!r} failed: {reply.get('error', reply)}")
        result: JsonDict = reply["ok"]
        return result

    async def _readline(self) -> JsonDict:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        raw = await proc.stdout.readline()
        if not raw:
            code = await proc.wait()
            raise ChildError(f"{self.name} exited with {code}; see {self._log_path}")
        data: JsonDict = json.loads(raw)
        return data

    async def stop(self, timeout_s: float = 30.0) -> int | None:
        """Ask the child to finish; SIGTERM, then SIGKILL, if it does not in time."""
        proc = self._proc
        if proc is None:
            return None
        if proc.returncode is None:
            with contextlib.suppress(ChildError, ConnectionError):
                await self.request("stop", timeout_s=timeout_s)
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
            except TimeoutError:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 5)
                except TimeoutError:
                    await self.kill()
        self._close_log()
        return proc.returncode

    async def kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    async def __aenter__(self) -> Child:
        try:
            await self.start()
        except BaseException:
            await self.kill()  # ``__aexit__`` will not run: the process must not outlive this
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.stop()
        else:
            await self.kill()


# ── Child side ──────────────────────────────────────────────────────────────────────────────


def _emit(obj: JsonDict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def serve_parent(ready: JsonDict, handlers: Mapping[str, Handler]) -> None:
    """Announce ``ready``, then answer the parent's commands until ``stop`` or EOF.

    Handlers run one at a time, in order; an exception becomes an ``error`` reply.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=READ_LIMIT)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    try:
        _emit({"ready": ready})
        while True:
            raw = await reader.readline()
            if not raw:
                return
            message: JsonDict = json.loads(raw)
            cmd = str(message.pop("cmd", ""))
            if cmd == "stop":
                _emit({"ok": {}})
                return
            handler = handlers.get(cmd)
            if handler is None:
                _emit({"error": f"unknown command {cmd!r}"})
                continue
            try:
                result = await handler(message)
            except Exception as exc:
                _emit({"error": f"{type(exc).__name__}: {exc}"})
            else:
                _emit({"ok": result})
    finally:
        transport.close()


class LagProbe:
    """Measures how late this process's event loop wakes up (its own loss of real time).

    Every ``period_s`` it sleeps and records how much later than asked it woke. A loop that
    keeps up wakes within a millisecond or two; tens of milliseconds mean the process is
    CPU-bound and its timestamps (and pacing) can no longer be trusted.
    """

    def __init__(self, period_s: float = 0.01, max_samples: int = 200_000) -> None:
        self.period_s = period_s
        self.samples: deque[tuple[float, float]] = deque(maxlen=max_samples)

    async def run(self) -> None:
        while True:
            asked = time.monotonic() + self.period_s
            await asyncio.sleep(self.period_s)
            now = time.monotonic()
            self.samples.append((now, now - asked))

    def export(self) -> list[list[float]]:
        """``[[t, lateness_s], ...]`` for the parent."""
        return [[t, late] for t, late in self.samples]


class GcWatch:
    """Records how long each garbage collection paused this process (child side).

    A full (generation 2) collection walks every tracked object, including everything the
    imports created; while it runs, no audio moves. Reported so that stalls can be told apart
    from steady costs.
    """

    def __init__(self, min_s: float = 0.001, max_samples: int = 100_000) -> None:
        self._min_s = min_s
        self._started = 0.0
        self.pauses: deque[tuple[float, int, float]] = deque(maxlen=max_samples)
        self.collections = [0, 0, 0]

    def install(self) -> None:
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        generation = info.get("generation", 0)
        self.collections[generation] += 1
        if took >= self._min_s:
            self.pauses.append((time.monotonic(), generation, took))

    def export(self) -> JsonDict:
        full = [took for _, gen, took in self.pauses if gen == 2]
        return {
            "collections": list(self.collections),
            "pauses": [[t, gen, took] for t, gen, took in self.pauses],
            "full_max_ms": round(max(full) * 1000, 1) if full else None,
            "frozen": gc.get_freeze_count(),
        }
