"""``still_running_after``: real child processes, one quick to exit and one that is not."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time

import pytest

from callbridge.service.process_exit import still_running_after


def sleeper(seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"])


def test_returns_once_all_have_exited_and_a_zombie_counts_as_exited() -> None:
    quick = sleeper(0)
    quick_pid = quick.pid
    time.sleep(0.5)  # a zombie now: nobody has reaped it
    other = sleeper(0.2)
    started = time.monotonic()
    try:
        assert still_running_after([quick_pid, other.pid], timeout_s=30) == []
        assert time.monotonic() - started < 20  # not the whole 30 s
    finally:
        quick.wait()
        other.wait()


def test_names_the_ones_still_running_at_the_bound() -> None:
    slow, quick = sleeper(60), sleeper(0)
    try:
        started = time.monotonic()
        assert still_running_after([slow.pid, quick.pid], timeout_s=0.5) == [slow.pid]
        assert time.monotonic() - started >= 0.5
    finally:
        slow.kill()
        slow.wait()
        quick.wait()


def test_a_process_already_reaped_is_not_running() -> None:
    done = sleeper(0)
    done.wait()
    assert still_running_after([done.pid], timeout_s=1) == []


def test_where_pidfd_open_is_refused_it_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """An old kernel or a seccomp profile: ``kill(pid, 0)`` is polled instead, the processes
    reaped by a thread as asyncio's child watcher does."""

    def refused(pid: int, flags: int = 0) -> int:
        raise OSError(errno.ENOSYS, "pidfd_open")

    monkeypatch.setattr(os, "pidfd_open", refused, raising=False)
    slow, quick = sleeper(60), sleeper(0)
    reaper = threading.Thread(target=quick.wait)
    reaper.start()
    try:
        assert still_running_after([slow.pid, quick.pid], timeout_s=3) == [slow.pid]
    finally:
        slow.kill()
        slow.wait()
        reaper.join()
