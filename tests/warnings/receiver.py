"""A tiny real HTTP/1.1 server on 127.0.0.1 that receives warning webhooks.

It is deliberately dumb and fully scripted, so tests can make it slow, failing or flaky:
``delay_s`` before each answer, a queue of ``statuses`` (then 200), optional
``Retry-After``. Every request is kept with its raw body and whether the HMAC signature
verified, so tests assert on exactly what went over the wire. All its tasks live in one
TaskGroup that ``__aexit__`` cancels, so nothing outlives the test.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from callbridge.service.webhook import verify_signature


@dataclass(frozen=True)
class Received:
    at: float
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool

    @property
    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    @property
    def code(self) -> str:
        return str(self.payload.get("code"))


def free_port() -> int:
    """A port nothing listens on (bound, then released): connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class WebhookReceiver:
    def __init__(
        self,
        secret: bytes,
        *,
        delay_s: float = 0.0,
        statuses: Iterable[int] = (),
        retry_after: str | None = None,
    ) -> None:
        self.secret = secret
        self.delay_s = delay_s
        self.statuses: deque[int] = deque(statuses)
        self.retry_after = retry_after
        self.received: list[Received] = []
        self.connections = 0
        self._sock: socket.socket | None = None
        self._group: asyncio.TaskGroup | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        assert self._sock is not None
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}/hooks/warnings"

    def codes(self) -> list[str]:
        return [r.code for r in self.received]

    async def wait_for(
        self, predicate: Callable[[Received], bool], *, count: int = 1, timeout: float = 15.0
    ) -> list[Received]:
        async with asyncio.timeout(timeout):
            while True:
                hits = [r for r in self.received if predicate(r)]
                if len(hits) >= count:
                    return hits
                await asyncio.sleep(0.02)

    async def __aenter__(self) -> WebhookReceiver:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.setblocking(False)
        self._sock = sock
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._spawn(self._accept())
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        assert self._group is not None
        try:
            await self._group.__aexit__(None, None, None)
        finally:
            if self._sock is not None:
                self._sock.close()

    def _spawn(self, coro: Any) -> None:
        assert self._group is not None
        self._tasks.append(self._group.create_task(coro))

    async def _accept(self) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(self._sock)
            self.connections += 1
            self._spawn(self._serve(conn))

    async def _serve(self, conn: socket.socket) -> None:
        reader, writer = await asyncio.open_connection(sock=conn)
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                method, path, _ = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                ok = verify_signature(self.secret, body, headers.get("x-callbridge-signature"))
                self.received.append(Received(time.monotonic(), method, path, headers, body, ok))
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                status = (self.statuses.popleft() if self.statuses else 200) if ok else 401
                extra = f"Retry-After: {self.retry_after}\r\n" if self.retry_after else ""
                writer.write(
                    f"HTTP/1.1 {status} Status\r\nContent-Length: 0\r\n{extra}\r\n".encode()
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()  # not awaited: on cancellation the transport just goes away
