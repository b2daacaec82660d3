"""A worker's side of its link to the supervisor: one inherited socket, newline-JSON.

The supervisor (:mod:`callbridge.service.supervisor`) starts each worker with one end of a
``socketpair`` (``--worker INDEX/COUNT/FD``). Over it the worker tells the supervisor:

- ``{"started": {"http_port": P, "admin_port": A}}`` once its loopback listeners accept;
- ``{"add": [call ids], "gone": [call ids]}`` as its live calls change (checked every
  :data:`REPORT_EVERY_S`): the supervisor routes per-call admin actions with it and, if the
  worker dies, finalises exactly these calls' records.

The supervisor never writes. End of file means the supervisor is gone (killed with SIGKILL,
say): the worker then drains as on SIGTERM, so no worker outlives its supervisor for more
than ``limits.drain_grace_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Collection
from typing import Any

import structlog

from callbridge.service.serve import Service

log = structlog.get_logger("callbridge.worker")

REPORT_EVERY_S = 0.25
"""How stale the supervisor's view of a worker's live calls may be."""


def parse_worker_arg(text: str) -> tuple[int, int, int]:
    """``INDEX/COUNT/FD`` as three integers (the supervisor wrote it; a human never does)."""
    index, count, fd = (int(part) for part in text.split("/"))
    if not 0 <= index < count:
        raise ValueError(f"worker index {index} out of range for {count} workers")
    return index, count, fd


class WorkerLink:
    """Reports one worker's ports and live calls; drains it when the supervisor goes."""

    def __init__(self, fd: int) -> None:
        self._sock = socket.socket(fileno=fd)
        self._writer: asyncio.StreamWriter | None = None

    async def run(self, service: Service) -> None:
        """Until cancelled (the service has stopped) or the supervisor hangs up.

        Never raises: a link that fails (it should not) is logged and drains the worker,
        since a worker the supervisor cannot see must not go on taking calls."""
        try:
            reader, self._writer = await asyncio.open_connection(sock=self._sock)
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._watch_supervisor(reader, service))
                    await service.started.wait()
                    ports = {"http_port": service.port, "admin_port": service.admin_port}
                    self._send({"started": ports})
                    await self._report_calls(service)
            finally:
                self._writer.close()
        except Exception as exc:
            log.error("worker_link_failed", error=repr(exc))
            service.request_drain("the link to the supervisor failed")

    async def _watch_supervisor(self, reader: asyncio.StreamReader, service: Service) -> None:
        # The supervisor never writes: this returns at end of file, or raises a reset when the
        # supervisor died with our last report unread. Either way it is gone.
        with contextlib.suppress(OSError):
            await reader.read()
        log.warning("supervisor_gone")
        service.request_drain("the supervisor is gone")

    async def _report_calls(self, service: Service) -> None:
        known: set[str] = set()
        while True:
            live = set(service.app.runner.live)
            if live != known:
                self._send({"add": _sorted(live - known), "gone": _sorted(known - live)})
                known = live
            await asyncio.sleep(REPORT_EVERY_S)

    def _send(self, message: dict[str, Any]) -> None:
        # The transport buffers; a line is tiny and the supervisor reads as it goes, so this
        # never waits on the event loop's behalf.
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(json.dumps(message).encode() + b"\n")


def _sorted(ids: Collection[str]) -> list[str]:
    return sorted(ids)
