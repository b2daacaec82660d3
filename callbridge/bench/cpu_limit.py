"""Run a process under a CFS CPU quota: how a Kubernetes CPU limit is enforced.

A pod's ``resources.limits.cpu`` becomes a CFS quota on its cgroup: per period (100 ms by
default) the group may run for ``quota x period`` of CPU time, then it is throttled (not
scheduled at all) until the next period begins. An audio bridge that hits its quota stalls for
the rest of the period, so "calls held under a limit" is the figure that sizes a pod, and it is
lower than CPU per call alone predicts.

This module has one job: put one process (and its future children) into a child cgroup with a
quota, read how often it was throttled, and remove the group afterwards.

- cgroup v2 (unified): the quota is ``cpu.max`` (``"<quota_us> <period_us>"``); the parent must
  list ``cpu`` in ``cgroup.subtree_control`` (it is added when missing).
- cgroup v1: ``cpu.cfs_period_us`` and ``cpu.cfs_quota_us`` in the hierarchy mounted with the
  ``cpu`` controller (often co-mounted as ``cpu,cpuacct``).

Which one applies is read from ``/proc/self/mounts``: a v2 mount whose ``cgroup.controllers``
offers ``cpu`` wins; a hybrid host (v2 mounted at ``/sys/fs/cgroup/unified`` without
controllers, v1 ``cpu`` beside it) uses v1. Where neither is writable, :class:`CpuLimitError`
says what to do. Parsing is pure (:func:`cgroup_mounts`, :func:`parse_cpu_stat`); the rest is
thin file I/O.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

Hierarchy = Literal["v2", "v1"]

PERIOD_US = 100_000
"""The CFS period Kubernetes uses (the kernel's default too)."""
MIN_QUOTA_US = 1_000
"""The kernel refuses a quota below 1 ms per period."""
GROUP_PREFIX = "callbridge-bench"
REMOVE_TRIES = 50
REMOVE_PAUSE_S = 0.02
WHAT_TO_DO = (
    "run as root, give the container a writable cgroup with the cpu controller (e.g. docker "
    "run --privileged), or pass --no-cpu-quota to search on an unthrottled core instead"
)

_serial = itertools.count(1)


class CpuLimitError(RuntimeError):
    """No CPU quota can be set here; the message says why and what to do."""


@dataclass(frozen=True)
class Mount:
    """One cgroup filesystem from ``/proc/self/mounts``."""

    hierarchy: Hierarchy
    path: Path
    options: frozenset[str]


@dataclass(frozen=True)
class CpuController:
    """Where child groups with a CPU quota are made: the hierarchy and its root directory."""

    hierarchy: Hierarchy
    root: Path


@dataclass(frozen=True)
class Throttling:
    """A group's cumulative CFS counters (``cpu.stat``)."""

    periods: int
    """Enforcement periods in which the group ran."""
    throttled: int
    """Periods that ended with the group throttled (its quota used up)."""
    throttled_s: float
    """Total time the group's tasks spent throttled."""

    def since(self, earlier: Throttling) -> Throttling:
        return Throttling(
            self.periods - earlier.periods,
            self.throttled - earlier.throttled,
            self.throttled_s - earlier.throttled_s,
        )

    @property
    def throttled_share(self) -> float:
        """Share of periods that ran out of quota."""
        return self.throttled / self.periods if self.periods else 0.0


# ── Pure parts ──────────────────────────────────────────────────────────────────────────────


def cgroup_mounts(mounts_text: str) -> list[Mount]:
    """The cgroup v1 and v2 filesystems in a ``/proc/self/mounts`` text, in order."""
    found: list[Mount] = []
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        fstype, path, options = fields[2], fields[1], frozenset(fields[3].split(","))
        # Mount points escape spaces and the like as octal (\040).
        path = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)
        if fstype == "cgroup2":
            found.append(Mount("v2", Path(path), options))
        elif fstype == "cgroup":
            found.append(Mount("v1", Path(path), options))
    return found


def parse_cpu_stat(text: str, hierarchy: Hierarchy) -> Throttling:
    """Throttling counters from ``cpu.stat`` (v1: ``throttled_time`` ns; v2: ``throttled_usec``)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            values[key] = int(value)
    if "nr_periods" not in values or "nr_throttled" not in values:
        raise ValueError(f"cpu.stat has no nr_periods/nr_throttled: {text!r}")
    if hierarchy == "v2":
        throttled_s = values.get("throttled_usec", 0) / 1e6
    else:
        throttled_s = values.get("throttled_time", 0) / 1e9
    return Throttling(values["nr_periods"], values["nr_throttled"], throttled_s)


def quota_us(quota: float, period_us: int = PERIOD_US) -> int:
    """CPU microseconds per period for ``quota`` cores; raises ``ValueError`` when unusable."""
    if not 0 < quota <= 1:
        raise ValueError(
            f"--cpu-quota must be in (0, 1] cores (the bridge has one core), not {quota}"
        )
    us = round(quota * period_us)
    if us < MIN_QUOTA_US:
        raise ValueError(f"--cpu-quota {quota} is {us} us per {period_us} us period: below 1 ms")
    return us


def shares_for_nice(nice: int) -> int:
    """cgroup v1 ``cpu.shares`` of a task at ``nice`` (1024 at 0, about 1.25x per step)."""
    return max(2, min(262_144, round(1024 * 1.25 ** (-nice))))


# ── Detection ───────────────────────────────────────────────────────────────────────────────


def _v2_offers_cpu(mount: Mount) -> bool:
    try:
        return "cpu" in (mount.path / "cgroup.controllers").read_text().split()
    except OSError:
        return False


def detect(mounts_text: str | None = None) -> CpuController:
    """The hierarchy to limit CPU in, from the mounts (``/proc/self/mounts`` by default)."""
    if mounts_text is None:
        try:
            mounts_text = Path("/proc/self/mounts").read_text()
        except OSError as exc:
            raise CpuLimitError(f"cannot read /proc/self/mounts ({exc}): {WHAT_TO_DO}") from exc
    mounts = cgroup_mounts(mounts_text)
    for mount in mounts:
        if mount.hierarchy == "v2" and _v2_offers_cpu(mount):
            return CpuController("v2", mount.path)
    for mount in mounts:
        quota_file = mount.path / "cpu.cfs_quota_us"
        if mount.hierarchy == "v1" and "cpu" in mount.options and quota_file.exists():
            return CpuController("v1", mount.path)
    seen = ", ".join(f"{m.hierarchy} at {m.path}" for m in mounts) or "no cgroup mounts"
    raise CpuLimitError(
        "no cgroup with the cpu controller (cgroup v2 with cpu in cgroup.controllers, or v1 "
        f"mounted with cpu) was found ({seen}): {WHAT_TO_DO}"
    )


# ── One limited group ───────────────────────────────────────────────────────────────────────


class CpuLimit:
    """A child cgroup with a CFS quota; processes added to it (and their children) share it.

    Use as a context manager: the group is created on entry and removed on exit, also when the
    body fails or is interrupted (any process still inside is moved back to the parent first).
    """

    def __init__(
        self,
        controller: CpuController,
        quota: float,
        *,
        period_us: int = PERIOD_US,
        nice: int | None = None,
        name: str | None = None,
    ) -> None:
        self.controller = controller
        self.nice = nice
        self.quota = quota
        self.period_us = period_us
        self.quota_us = quota_us(quota, period_us)
        self.path = controller.root / (name or f"{GROUP_PREFIX}-{os.getpid()}-{next(_serial)}")

    def describe(self) -> str:
        return (
            f"cgroup {self.controller.hierarchy} {self.path}: "
            f"{self.quota_us} us per {self.period_us} us ({self.quota:g} core)"
        )

    def create(self) -> None:
        try:
            if self.controller.hierarchy == "v2":
                self._enable_v2_controller()
            self.path.mkdir()
        except OSError as exc:
            raise CpuLimitError(f"cannot create {self.path} ({exc}): {WHAT_TO_DO}") from exc
        try:
            if self.controller.hierarchy == "v2":
                self._write("cpu.max", f"{self.quota_us} {self.period_us}")
            else:
                self._write("cpu.cfs_period_us", str(self.period_us))
                self._write("cpu.cfs_quota_us", str(self.quota_us))
            if self.nice is not None:
                self._weigh(self.nice)
        except OSError as exc:
            self.remove()
            raise CpuLimitError(
                f"cannot set the quota in {self.path} ({exc}): {WHAT_TO_DO}"
            ) from exc

    def _weigh(self, nice: int) -> None:
        """Give the group the scheduling weight of a task at ``nice``.

        A task in a child cgroup is no longer in an autogroup, so its own (and its autogroup's)
        nice stop counting against other work: the group competes with its own weight.
        """
        if self.controller.hierarchy == "v2":
            self._write("cpu.weight.nice", str(nice))
        else:
            self._write("cpu.shares", str(shares_for_nice(nice)))

    def _enable_v2_controller(self) -> None:
        control = self.controller.root / "cgroup.subtree_control"
        if "cpu" not in control.read_text().split():
            control.write_text("+cpu")

    def _write(self, name: str, value: str) -> None:
        (self.path / name).write_text(value)

    def add(self, pid: int) -> None:
        """Move ``pid`` (all its threads) into the group; children it starts later follow."""
        try:
            self._write("cgroup.procs", str(pid))
        except OSError as exc:
            raise CpuLimitError(f"cannot move pid {pid} into {self.path} ({exc})") from exc

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def throttling(self) -> Throttling:
        return parse_cpu_stat((self.path / "cpu.stat").read_text(), self.controller.hierarchy)

    def remove(self) -> None:
        """Move stragglers to the parent and remove the group (an exiting task may linger)."""
        if not self.path.exists():
            return
        parent_procs = self.controller.root / "cgroup.procs"
        for _ in range(REMOVE_TRIES):
            for pid in self.pids():
                with contextlib.suppress(OSError):
                    parent_procs.write_text(str(pid))
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(REMOVE_PAUSE_S)
        raise CpuLimitError(f"could not remove {self.path}: remove it by hand (rmdir)")

    def __enter__(self) -> CpuLimit:
        self.create()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()


def check(quota: float, period_us: int = PERIOD_US) -> CpuController:
    """Fail now, not after minutes of benchmark, if no quota can be set: make and drop a group."""
    controller = detect()
    with CpuLimit(controller, quota, period_us=period_us):
        pass
    return controller
