"""Writing one whole WebSocket message now, without ``Connection.send``'s per-call machinery.

The bridge sends about 100 small messages per second per call (caller audio to the model, agent
audio to Telcoflow). ``websockets``' ``Connection.send`` wraps each in an async context manager
that checks the state, writes, then drains: about 19 us of CPU per 640 B message here, of which
the happy path's actual work (frame, mask, ``transport.write``) is about 12 us (measured with a
websockets server in another process). :func:`send_now` does only that work, through the
Sans-I/O protocol object ``websockets`` itself writes with, and only when nothing else could
happen: the connection open, no fragmented message in progress, the transport neither closing
nor paused by flow control. Anything else returns ``False`` and the caller uses
``Connection.send`` (which waits, drains and raises exactly as before).

Checked against websockets 15.0.1 (:func:`check_connection` runs on every socket the hot paths
take over and fails loudly, naming what moved, if a future version changes it).
"""

from __future__ import annotations

from typing import Any, Final

from websockets.protocol import State

from callbridge.bridge.errors import BridgeError

OPEN: Final = State.OPEN
_CONNECTION_ATTRS: Final = ("protocol", "transport", "fragmented_send_waiter", "paused", "send")
_PROTOCOL_ATTRS: Final = ("state", "send_text", "send_binary", "data_to_send")


class WebSocketIncompatible(BridgeError):
    """The installed ``websockets`` no longer has what :func:`send_now` relies on."""


def check_connection(ws: Any, where: str) -> None:
    """Raise :class:`WebSocketIncompatible` unless ``ws`` has every attribute used here."""
    missing = [name for name in _CONNECTION_ATTRS if not hasattr(ws, name)]
    protocol = getattr(ws, "protocol", None)
    missing += [f"protocol.{name}" for name in _PROTOCOL_ATTRS if not hasattr(protocol, name)]
    if missing:
        raise WebSocketIncompatible(
            f"{where}: the websockets connection ({type(ws).__name__}) has no "
            f"{', '.join(missing)}; re-check callbridge/adapters/ws_send.py against the "
            "installed websockets version before deploying"
        )


def send_now(ws: Any, message: bytes | bytearray | str) -> bool:
    """Write ``message`` as one frame now and return True; False: nothing was written.

    Never waits. On False, ``await ws.send(message)`` does the same with waiting (flow
    control) and the connection's errors.
    """
    protocol = ws.protocol
    if (
        protocol.state is not OPEN
        or ws.fragmented_send_waiter is not None
        or ws.paused
        or ws.transport.is_closing()
    ):
        return False
    if isinstance(message, str):
        protocol.send_text(message.encode())
    else:
        protocol.send_binary(message)
    write = ws.transport.write
    for data in protocol.data_to_send():
        write(data)
    return True


async def send(ws: Any, message: bytes | bytearray | str) -> None:
    """:func:`send_now`, or ``ws.send`` when the message cannot go out at once."""
    if not send_now(ws, message):
        await ws.send(message)
