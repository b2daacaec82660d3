"""How many cores this process may use: what ``service.workers = "auto"`` resolves to.

Two limits apply in a container, and the smaller wins:

- CPU affinity (``os.sched_getaffinity``): the cores the scheduler will run us on (a cpuset,
  ``docker --cpuset-cpus``, Kubernetes' static CPU manager).
- A CFS quota (``docker --cpus``, a Kubernetes CPU *limit*): cgroup v2 ``cpu.max``
  (``"<quota> <period>"`` or ``"max <period>"``), or cgroup v1 ``cpu.cfs_quota_us`` and
  ``cpu.cfs_period_us`` (quota ``-1``: none). The quota in cores is rounded up: a 1.5-core
  limit gets two workers, which share it.

The cgroup files are read from the process's own cgroup (``/proc/self/cgroup``) under
``/sys/fs/cgroup``; the reading is pure over a root directory so it is tested with files.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def quota_cores(
    root: Path = CGROUP_ROOT, self_cgroup: Path = Path("/proc/self/cgroup")
) -> float | None:
    """The CFS quota in cores (e.g. ``0.5``), or ``None`` when no quota is set or readable."""
    for directory in _cgroup_dirs(root, self_cgroup):
        v2 = _read(directory / "cpu.max")
        if v2 is not None:
            quota, _, period = v2.partition(" ")
            if quota != "max" and quota.isdigit() and period.strip().isdigit():
                return int(quota) / int(period)
            return None
        v1_quota = _read(directory / "cpu.cfs_quota_us")
        v1_period = _read(directory / "cpu.cfs_period_us")
        if v1_quota is not None and v1_period is not None:
            if v1_quota.lstrip("-").isdigit() and int(v1_quota) > 0 and v1_period.isdigit():
                return int(v1_quota) / int(v1_period)
            return None
    return None


def usable_cores(affinity: int, quota: float | None) -> int:
    """Affinity capped by the quota rounded up; never below one."""
    if quota is None:
        return max(1, affinity)
    return max(1, min(affinity, math.ceil(round(quota, 6))))


def auto_workers() -> int:
    """``service.workers = "auto"`` on this machine, in this container."""
    return usable_cores(len(os.sched_getaffinity(0)), quota_cores())


def _cgroup_dirs(root: Path, self_cgroup: Path) -> list[Path]:
    """Our own cgroup's directory (v2 unified, or v1's cpu controller), then the root."""
    dirs: list[Path] = []
    text = _read(self_cgroup) or ""
    for line in text.splitlines():
        _, controllers, path = [*line.split(":", 2), "", ""][:3]
        relative = path.lstrip("/")
        if controllers == "":  # v2: "0::/path"
            dirs.append(root / relative)
        elif "cpu" in controllers.split(","):  # v1: "4:cpu,cpuacct:/path"
            base = root / controllers if (root / controllers).is_dir() else root / "cpu"
            dirs.append(base / relative)
            dirs.append(base)
    dirs.append(root)
    return dirs


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
