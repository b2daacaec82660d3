"""Operators watching the console, for the benchmark: N open console streams on one bridge.

``python -m callbridge.bench.console_watch --url URL --token TOKEN --streams N`` logs in like a
browser,
then keeps N server-sent-event streams open and reads them as fast as they come: one on the
live-calls table and N-1 on single calls (each picks the next live call it is not yet
watching, and moves on when its call ends). It runs on the emulators' core, as a browser
would run on another machine, so only the bridge's side of the streams is charged to the
bridge. It prints one JSON line of counters when it is stopped (SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from typing import Any

import httpx

from callbridge.bench.procs import pin_self, plan_cores


class Watch:
    def __init__(self, url: str, token: str, streams: int) -> None:
        self.url = url
        self.token = token
        self.streams = streams
        self.live: list[str] = []
        self.watched: set[str] = set()
        self.events = 0
        self.bytes = 0
        self.errors = 0

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=None) as http:
            login = await http.post(
                "/console/login", data={"operator": "bench", "token": self.token}
            )
            if login.status_code != 303:
                raise SystemExit(f"console login failed: {login.status_code} {login.text}")
            cookie = login.headers["set-cookie"].split(";", 1)[0]
            headers = {"Cookie": cookie}
            async with asyncio.TaskGroup() as group:
                group.create_task(self._table(http, headers))
                for _ in range(self.streams - 1):
                    group.create_task(self._one_call(http, headers))

    async def _read(self, http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> None:
        name = ""
        async with http.stream("GET", path, headers=headers) as response:
            if response.status_code != 200:
                self.errors += 1
                await asyncio.sleep(0.5)
                return
            async for line in response.aiter_lines():
                self.bytes += len(line) + 1
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    self.events += 1
                    if name == "calls":
                        self.live = [c["call_id"] for c in json.loads(line[6:])]
                    elif name == "ended":
                        return

    async def _table(self, http: httpx.AsyncClient, headers: dict[str, str]) -> None:
        while True:
            await self._read(http, "/console/stream", headers)

    async def _one_call(self, http: httpx.AsyncClient, headers: dict[str, str]) -> None:
        while True:
            fresh = [c for c in self.live if c not in self.watched]
            if not fresh:
                await asyncio.sleep(0.2)
                continue
            call_id = fresh[0]
            self.watched.add(call_id)
            await self._read(http, f"/console/calls/{call_id}/stream", headers)

    def counters(self) -> dict[str, Any]:
        return {
            "streams": self.streams,
            "events": self.events,
            "bytes": self.bytes,
            "calls_watched": len(self.watched),
            "errors": self.errors,
        }


async def _main(args: argparse.Namespace) -> None:
    watch = Watch(args.url, args.token, args.streams)
    task = asyncio.ensure_future(watch.run())
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    print(json.dumps({"console_watch": watch.counters()}), file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m callbridge.bench.console_watch")
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--streams", type=int, default=5)
    args = parser.parse_args(argv)
    pin_self(plan_cores().emulators)
    asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
