"""Waiting, blocking and briefly, for processes to exit, without reaping them.

The supervisor's forced exit (a second SIGTERM or SIGINT) runs in a signal callback that
ends with ``os._exit``: it cannot await the event loop's child watcher, whose job reaping
stays. On Linux each process is watched through a pidfd, which turns readable when the
process has terminated (a zombie included); elsewhere, or where ``pidfd_open`` is refused,
``kill(pid, 0)`` is polled, which relies on the child watcher's thread reaping the process
(Python 3.11's default watcher; a zombie left unreaped counts as running until the bound).
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Sequence

POLL_S = 0.02
"""Where pidfds are not available: how often the processes are looked at."""


def still_running_after(pids: Sequence[int], timeout_s: float) -> list[int]:
    """Wait up to ``timeout_s`` for every process in ``pids`` to exit; those that have not."""
    deadline = time.monotonic() + timeout_s
    if hasattr(os, "pidfd_open"):
        try:
            return _wait_pidfds(pids, deadline)
        except OSError:  # a kernel before 5.3, or a seccomp profile that refuses pidfd_open
            pass
    left = [pid for pid in pids if _exists(pid)]
    while left and time.monotonic() < deadline:
        time.sleep(POLL_S)
        left = [pid for pid in left if _exists(pid)]
    return left


def _wait_pidfds(pids: Sequence[int], deadline: float) -> list[int]:
    fds: dict[int, int] = {}
    try:
        for pid in pids:
            try:
                fds[os.pidfd_open(pid)] = pid
            except ProcessLookupError:  # already exited and reaped
                continue
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        left = dict(fds)
        while left:
            remaining_ms = (deadline - time.monotonic()) * 1000
            if remaining_ms <= 0:
                break
            for fd, _ in poller.poll(remaining_ms):
                poller.unregister(fd)
                left.pop(fd, None)
        return sorted(left.values())
    finally:
        for fd in fds:
            os.close(fd)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["still_running_after"]
