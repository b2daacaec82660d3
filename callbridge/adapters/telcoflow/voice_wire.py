"""The Telcoflow voice socket's hot messages, handled as the documented wire protocol.

The SDK (telcoflow 1.0.0) opens the voice WebSocket, runs the commands and the call events;
this module changes only what repeats every 20 ms (``telcoflow-wire.md`` sections 4.3-4.6):

- **Caller audio** (binary ``[channel][pcm]``): queued with ``put_nowait`` instead of an
  awaited ``Queue.put`` coroutine per frame, into a :class:`FrameQueue` (a deque and its
  readers' futures) read by a :class:`FrameStream`, instead of ``asyncio.Queue.get`` under
  the SDK's iterator: two coroutines and a loop lookup fewer per 20 ms frame.
- **Agent audio pull** (``buffer_request``): the SDK queues each request for a sender task,
  which waits on an ``asyncio.Condition`` of its lock-guarded ring buffer, copies the bytes
  three times and sends with ``Connection.send``: a task wake-up, a lock and a context manager
  per 20 ms frame. Here the request is served at once, in the receive handler, when its audio
  is already buffered (and otherwise by the next ``send_audio``), from a plain byte FIFO
  (:class:`SendBuffer`), written with :func:`callbridge.adapters.ws_send.send_now`. The
  semantics are the SDK's, request for request: served in order, never cancelled (not even by
  a clear), each frame at least ``min(prefer or 960, remaining)`` bytes and at most the
  remainder, requests for channels other than 0 skipped, ``requested_bytes <= 0`` ignored.
- ``send_audio``, ``get_send_audio_buffer_size`` and ``clear_send_audio_buffer`` work on that
  FIFO without a lock (one event loop: nothing awaits between the check and the change), with
  the SDK's exceptions (``BufferFullError``, ``BufferClosedError``, ``WSSSessionError``).

:class:`FastVoiceConnection` subclasses the SDK's ``_VoiceConnection`` and overrides those
methods only; its receive loop, commands, events and close are the SDK's own.
:func:`open_voice` opens it for a ``Call`` the way ``Call._ensure_voice_open`` does (same
states, same lock, same error). Both reach into SDK internals, so :func:`check_sdk_internals`
runs at start-up and fails loudly, naming what changed, if a future SDK moved them.

Checked against: telcoflow 1.0.0 (with websockets 15.0.1).
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from typing import Any, Final, cast

import orjson
import telcoflow
from telcoflow import call as sdk_call
from telcoflow import media_messages as mm
from telcoflow import voice_session as sdk_voice
from telcoflow.concurrent_byte_buffer import ConcurrentByteBuffer
from websockets.exceptions import ConnectionClosed

from callbridge.adapters import ws_send
from callbridge.adapters.telcoflow.sdk_fixes import SdkIncompatible

DEFAULT_PREFER: Final = 960
"""The SDK's minimum frame when a request names no ``prefer_audio_frame_bytes``."""
_WAKE: Final = (0, 1, 0)
"""Put on the SDK's request queue to wake the slow-path sender (the SDK's stop sentinel is
``(0, -1, 0)``)."""

_OVERRIDDEN: Final = (
    "_handle_audio",
    "_handle_text_event",
    "_send_poll_based_request",
    "send_audio",
    "get_send_audio_buffer_size",
    "clear_send_audio_buffer",
    "_receive_loop",
    "_run_connection_tasks",
    "_get_or_create_channel_queue",
    "_dispatch_event_and_maybe_close",
    "_handle_command_response",
    "close",
    "audio_stream",
)
_CALLS_ITS_HOOKS: Final = {
    "_receive_loop": (
        "self._handle_audio(",
        "self._handle_text_event(",
        "self._audio_to_server_buffer.close()",
        "self._server_requests_more_bytes_queue.put_nowait(",
    ),
    "_run_connection_tasks": ("self._receive_loop()", "self._send_poll_based_request()"),
    "close": (
        "self._audio_to_server_buffer.close()",
        "self._server_requests_more_bytes_queue.put_nowait(",
        "self.clear_send_audio_buffer()",
    ),
}
_CALL_STATE: Final = (
    "_state",
    "_state_lock",
    "_voice",
    "_session_url",
    "_session_token",
    "_audio_config",
)


def check_sdk_internals() -> None:
    """Raise :class:`SdkIncompatible` unless every SDK internal used here is as checked."""
    problems: list[str] = []
    voice_cls = getattr(sdk_voice, "_VoiceConnection", None)
    if not isinstance(voice_cls, type):
        problems.append("telcoflow.voice_session._VoiceConnection is gone")
    else:
        problems += [
            f"_VoiceConnection.{name} is missing"
            for name in _OVERRIDDEN
            if not callable(getattr(voice_cls, name, None))
        ]
        for method, needles in _CALLS_ITS_HOOKS.items():
            try:
                source = inspect.getsource(getattr(voice_cls, method))
            except (AttributeError, OSError, TypeError):
                problems.append(f"_VoiceConnection.{method} cannot be read")
                continue
            problems += [
                f"_VoiceConnection.{method} no longer uses {needle.rstrip('(')}"
                for needle in needles
                if needle not in source
            ]
    if not isinstance(getattr(sdk_voice, "_EmptyAudioStreamIterator", None), type):
        problems.append("telcoflow.voice_session._EmptyAudioStreamIterator is gone")
    if getattr(sdk_call, "_VoiceConnection", None) is not voice_cls:
        problems.append("telcoflow.call no longer opens voice_session._VoiceConnection")
    probe = telcoflow.Call("probe", "", "", "ws://127.0.0.1:9/", "token")
    problems += [f"Call.{name} is missing" for name in _CALL_STATE if not hasattr(probe, name)]
    if not callable(getattr(probe, "_handle_voice_event", None)):
        problems.append("Call._handle_voice_event is missing")
    for name in (
        "get_buffer_request_bytes",
        "get_buffer_request_prefer_frame_bytes",
        "get_buffer_request_channel_id",
    ):
        if not callable(getattr(mm, name, None)):
            problems.append(f"telcoflow.media_messages.{name} is missing")
    if problems:
        raise SdkIncompatible(
            f"telcoflow {telcoflow.__version__}: the voice fast path cannot be used: "
            + "; ".join(problems)
            + ". Re-check callbridge/adapters/telcoflow/voice_wire.py against this SDK version."
        )


class SendBuffer:
    """The agent audio waiting to be pulled: a bounded byte FIFO (the SDK's ring buffer's job).

    Synchronous at its core (one event loop, nothing awaits inside); the async methods are
    the SDK buffer's interface, kept for the SDK code that still calls them (``close``).
    """

    __slots__ = ("_buf", "_capacity", "closed")

    def __init__(self, capacity: int) -> None:
        if capacity <= 0 or capacity & (capacity - 1):
            raise ValueError("Capacity must be a positive power of 2")
        self._capacity = capacity
        self._buf = bytearray()
        self.closed = False

    def __len__(self) -> int:
        return len(self._buf)

    def put(self, data: bytes) -> None:
        """All or nothing, never waits (``ConcurrentByteBuffer.write_all_no_wait``)."""
        if not data:
            return
        if self.closed:
            raise telcoflow.BufferClosedError("Buffer is closed")
        if len(self._buf) + len(data) > self._capacity:
            raise telcoflow.BufferFullError(
                "Buffer does not have enough space to write all the data"
            )
        self._buf += data

    def take_frame(self, prefix: bytes, size: int) -> bytearray:
        """``prefix`` + the oldest ``size`` bytes (one copy), removed from the buffer."""
        frame = bytearray(prefix)
        frame += memoryview(self._buf)[:size]
        del self._buf[:size]
        return frame

    def drop_all(self) -> int:
        cleared = len(self._buf)
        self._buf.clear()
        return cleared

    # The SDK buffer's interface (ConcurrentByteBuffer), for the SDK's own code paths.

    def get_capacity(self) -> int:
        return self._capacity

    async def write_all_no_wait(self, data: bytes) -> None:
        self.put(data)

    async def available(self) -> int:
        return len(self._buf)

    async def remaining(self) -> int:
        return self._capacity - len(self._buf)

    async def clear(self) -> None:
        self._buf.clear()

    async def close(self) -> None:
        self.closed = True

    async def read_bytes(self, min_bytes_to_read: int, max_bytes_to_read: int) -> bytes:
        """Not used on the fast path (requests are served by :class:`FastVoiceConnection`)."""
        size = min(max_bytes_to_read, len(self._buf))
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data


class FrameQueue:
    """Caller audio of one channel: unbounded, like the SDK's ``asyncio.Queue``, but cheaper.

    ``asyncio.Queue.get`` costs a coroutine, a loop lookup and a getter-deque round per frame;
    the caller pump reads 50 frames a second per call through it. This keeps the same
    interface (``put_nowait``, ``put``, ``get``) for the SDK code that still uses it (its
    receive loop and ``close()`` put the ``None`` end marker) with a deque and the waiting
    readers' futures.
    """

    __slots__ = ("_items", "_waiters")

    def __init__(self) -> None:
        self._items: deque[bytes | None] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: bytes | None) -> None:
        self._items.append(item)
        self._wake_one()

    def _wake_one(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def put(self, item: bytes | None) -> None:
        self.put_nowait(item)

    async def get(self) -> bytes | None:
        items = self._items
        while not items:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if items:
                    self._wake_one()  # woken and cancelled at once: pass the wake-up on
                raise
        return items.popleft()


class FrameStream:
    """``audio_stream()``'s iterator over a :class:`FrameQueue` (ends at the ``None`` marker)."""

    __slots__ = ("_queue",)

    def __init__(self, queue: FrameQueue) -> None:
        self._queue = queue

    def __aiter__(self) -> FrameStream:
        return self

    async def __anext__(self) -> bytes:
        queue = self._queue
        data = queue._items.popleft() if queue._items else await queue.get()
        if data is None:
            raise StopAsyncIteration
        return data


class FastVoiceConnection(sdk_voice._VoiceConnection):
    """The SDK's voice connection with its per-frame paths replaced (see the module docstring)."""

    def __init__(self, url: str, token: str, buffer_size: int = 0) -> None:
        super().__init__(url, token, buffer_size)
        self._fifo = SendBuffer(buffer_size)
        # The SDK's close paths still reach the buffer under its own name.
        self._audio_to_server_buffer = cast("ConcurrentByteBuffer", self._fifo)
        self._owed: deque[list[int]] = deque()  # [remaining bytes, min frame bytes], FIFO
        self._held: bytearray | None = None  # a frame send_now could not write
        self.frames_sent = 0

    # ── Receiving ────────────────────────────────────────────────────────────────────

    def _get_or_create_channel_queue(self, channel_id: int) -> Any:
        queues: dict[int, Any] = self._audio_from_server_queues
        queue = queues.get(channel_id)
        if queue is None:
            queue = queues[channel_id] = FrameQueue()
        return queue

    def audio_stream(self, channel_id: int = 0) -> Any:
        if self._closed and channel_id not in self._audio_from_server_queues:
            return sdk_voice._EmptyAudioStreamIterator()
        return FrameStream(self._get_or_create_channel_queue(channel_id))

    async def _handle_audio(self, data: bytes) -> None:
        if len(data) < 2:
            return
        queue = self._audio_from_server_queues.get(data[0])
        if queue is None:
            queue = self._get_or_create_channel_queue(data[0])
        queue.put_nowait(data[1:])  # unbounded, as in the SDK: never raises QueueFull

    async def _handle_text_event(self, message: str) -> None:
        try:
            parsed = orjson.loads(message)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict) or parsed.get("type") != mm.TYPE_BUFFER_REQUEST:
            # Commands' responses, call events and junk: the SDK's own handling.
            await super()._handle_text_event(message)
            return
        requested = mm.get_buffer_request_bytes(parsed)
        if requested <= 0 or mm.get_buffer_request_channel_id(parsed) != 0:
            return  # the agent only sends channel 0; the SDK skips the others too
        prefer = mm.get_buffer_request_prefer_frame_bytes(parsed)
        self._owed.append([requested, prefer if prefer > 0 else DEFAULT_PREFER])
        self._serve()

    # ── Serving the server's pulls ───────────────────────────────────────────────────

    def _serve(self) -> None:
        """Send every owed frame whose audio is buffered now, oldest request first."""
        owed, buffer, ws = self._owed, self._fifo, self._ws
        while owed and self._held is None and ws is not None and not self._closed:
            request = owed[0]
            remaining = request[0]
            have = len(buffer)
            if have < min(request[1], remaining):
                return
            size = min(have, remaining)
            frame = buffer.take_frame(b"\x00", size)
            request[0] = remaining - size
            if request[0] <= 0:
                owed.popleft()
            if not ws_send.send_now(ws, frame):
                # Flow control, or a closing socket: the sender task sends it, waiting.
                self._held = frame
                self._server_requests_more_bytes_queue.put_nowait(_WAKE)
                return
            self.frames_sent += 1

    async def _send_poll_based_request(self) -> None:
        """The slow path only: sends the frame :meth:`_serve` could not write without waiting.

        Woken through the SDK's request queue, which is also where the SDK's receive loop and
        ``close()`` put their stop sentinel (``requested_bytes <= 0``): this task ends with
        the connection, as the SDK's own sender does.
        """
        queue = self._server_requests_more_bytes_queue
        try:
            while True:
                _, requested, _ = await queue.get()
                if requested <= 0:
                    return
                frame, ws = self._held, self._ws
                if frame is None or ws is None or self._closed:
                    continue
                await ws.send(bytes(frame))
                self._held = None
                self.frames_sent += 1
                self._serve()
        except ConnectionClosed:
            pass

    # ── The agent's audio ─────────────────────────────────────────────────────────────

    def write_now(self, audio_data: bytes) -> None:
        """``send_audio`` without the coroutine (the same checks and exceptions)."""
        if self._closed:
            raise telcoflow.WSSSessionError("Voice session is closed (call terminated)")
        if not self._connected or not self._ws:
            raise telcoflow.WSSSessionError("Voice session is not established")
        self._fifo.put(audio_data)
        if self._owed:
            self._serve()

    def buffered_now(self) -> int:
        return len(self._fifo)

    async def send_audio(self, audio_data: bytes) -> None:
        self.write_now(audio_data)

    async def get_send_audio_buffer_size(self) -> int:
        return len(self._fifo)

    async def clear_send_audio_buffer(self) -> int:
        # Owed requests stay owed (the SDK never cancels them): served from the next audio.
        return self._fifo.drop_all()


async def open_voice(call: telcoflow.Call) -> None:
    """Open ``call``'s voice socket as a :class:`FastVoiceConnection` (NEW -> OPENING -> LIVE).

    ``Call._ensure_voice_open`` with our class: the same lock, states and error, so the SDK's
    commands then find the call LIVE and use this connection. A call that is not NEW is left
    as it is (the SDK's own rules apply to it).
    """
    sdk: Any = call
    if sdk._state != telcoflow.CallState.NEW:
        return
    async with sdk._state_lock:
        if sdk._state != telcoflow.CallState.NEW:
            return
        sdk._state = telcoflow.CallState.OPENING
        try:
            voice = FastVoiceConnection(
                sdk._session_url, sdk._session_token, sdk._audio_config.buffer_size
            )
            await voice.connect()  # type: ignore[no-untyped-call]  # SDK: unannotated
            ws = voice._ws
            if ws is not None:
                ws_send.check_connection(ws, "telcoflow's voice connection")
            voice.on_event(sdk._handle_voice_event)
            sdk._voice = voice
            sdk._state = telcoflow.CallState.LIVE
        except ws_send.WebSocketIncompatible:
            sdk._state = telcoflow.CallState.NEW
            raise
        except Exception as exc:
            sdk._state = telcoflow.CallState.NEW
            raise telcoflow.WSSCallError("Failed to open voice session") from exc
