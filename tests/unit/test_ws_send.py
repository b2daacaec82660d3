"""Writing a whole WebSocket message at once (adapters/ws_send.py), over a real socket."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from callbridge.adapters import ws_send


async def test_messages_arrive_whole_and_in_order_and_a_closed_socket_is_refused() -> None:
    got: list[str | bytes] = []
    done = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            got.append(message)
        done.set()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            ws_send.check_connection(ws, "test client")
            assert ws_send.send_now(ws, b"\x00\x01" * 320)
            assert ws_send.send_now(ws, bytearray(b"\x02\x03"))
            assert ws_send.send_now(ws, '{"text": "ä"}')
            await ws_send.send(ws, b"last")
        assert not ws_send.send_now(ws, b"after close"), "nothing is written once closed"
        await asyncio.wait_for(done.wait(), 5)
    assert got == [b"\x00\x01" * 320, b"\x02\x03", '{"text": "ä"}', b"last"]


def test_a_connection_without_the_internals_fails_loudly_naming_them() -> None:
    moved = SimpleNamespace(protocol=SimpleNamespace(state=None), transport=None, send=None)
    with pytest.raises(ws_send.WebSocketIncompatible) as raised:
        ws_send.check_connection(moved, "the model socket")
    message = str(raised.value)
    assert "the model socket" in message
    assert "fragmented_send_waiter" in message and "paused" in message
    assert "protocol.send_binary" in message and "protocol.data_to_send" in message
