"""A :class:`~callbridge.bridge.ports.ModelSession` over google-genai Live that outlives
connections.

A Gemini Live connection lasts about ten minutes; a call can last an hour. This session
hides that from the call:

- it loops over ``receive()`` (which ends at every ``turnComplete``);
- it keeps the latest resumable handle;
- on ``goAway`` it rotates at the next quiet point (no turn in progress, no tool call
  pending) or just before ``timeLeft`` runs out: it closes the old socket first (the server
  rejects a resume while the old socket is open), opens a new one with the handle, and only
  then lets caller audio flow again. Caller audio is not dropped meanwhile: the caller pump
  waits on the send lock and the call SDK queues what arrives;
- on an unplanned drop (1000/1006/1011, network errors) it reconnects with the handle,
  with bounded attempts and backoff;
- if the handle is rejected it opens a fresh session seeded with a summary of the
  conversation so far.

Each of these is reported as a :class:`~callbridge.bridge.events.SessionNotice` so the call can
record
and warn. Close codes 1007/1008 outside a resume are fatal: ``ModelUnavailable``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal

import structlog
import websockets
from google import genai
from google.auth.credentials import Credentials
from google.auth.exceptions import GoogleAuthError
from google.genai import errors, live, types

from callbridge.adapters import ws_send
from callbridge.adapters.gemini_live.setup import live_config
from callbridge.adapters.gemini_live.translate import function_response
from callbridge.adapters.gemini_live.wire import (
    RawSocket,
    ServerMessage,
    audio_frame,
    parse,
    raw_socket,
)
from callbridge.adapters.genai_common import (
    CLOSE_REASONS,
    RETRYABLE_CLOSE,
    close_code,
    fresh_credentials,
    unavailable,
)
from callbridge.bridge.config import ModelSettings
from callbridge.bridge.errors import ModelUnavailable
from callbridge.bridge.events import (
    GenerationComplete,
    ModelAudio,
    ModelEvent,
    SessionNotice,
    ToolCall,
    ToolResult,
    Transcript,
    TurnComplete,
)
from callbridge.bridge.line_watch import ROTATION_CUT
from callbridge.bridge.ports import SessionRequest
from callbridge.bridge.speech import CallerActivity
from callbridge.bridge.tools import ToolContext

log = structlog.get_logger("callbridge.gemini")

ROTATE_MARGIN_S = 1.0
"""Rotate this long before ``timeLeft`` runs out if no quiet point came."""
RESPONSE_WAIT_S = 4.0
"""After the caller stops, a rotation waits this long for the model's answer to start."""
MAX_UNSENT_FRAMES = 500
"""Frames whose send failed on a dying socket, replayed after reconnecting (10 s at 20 ms)."""
MAX_UNANSWERED_FRAMES = 500
"""Caller frames sent since the latest handle or model output, replayed after a drop (10 s)."""
MAX_SUMMARY_LINES = 40
"""Transcript lines kept for seeding a fresh session or recalling what a stale handle lacks."""
CUT_OFF = " [cut off]"


def _describe(exc: BaseException) -> str:
    """The error, plus our own close frame when this client failed the connection.

    When the client gives up (a frame over ``max_size``: 1009; no pong in time: 1011) the
    server's close never arrives and google-genai reports only 1006; the code we sent says
    what actually happened.
    """
    closed = exc if isinstance(exc, websockets.ConnectionClosed) else exc.__context__
    if isinstance(closed, websockets.ConnectionClosed) and closed.rcvd is None and closed.sent:
        return f"{exc}; closed by the bridge: {closed.sent.code} {closed.sent.reason}"
    return str(exc)


class GeminiLiveSession:
    """One call's conversation with Gemini Live, across as many connections as it takes."""

    output_rate = 24000

    def __init__(
        self,
        client: genai.Client,
        settings: ModelSettings,
        request: SessionRequest,
        *,
        model: str,
        credentials: Credentials | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._settings = settings
        self._request = request
        self._model = model
        self._caps = settings.caps(model)
        self._credentials = credentials  # Vertex: the client's, refreshed off the loop
        self._clock = clock
        self._mime = f"audio/pcm;rate={request.input_rate}"
        self._context: AbstractAsyncContextManager[live.AsyncSession] | None = None
        self._live: live.AsyncSession | None = None
        self._ws: RawSocket | None = None
        self._send_lock = asyncio.Lock()
        self._switching = False
        self._unsent: deque[bytes] = deque(maxlen=MAX_UNSENT_FRAMES)
        self._unanswered: deque[bytes] = deque(maxlen=MAX_UNANSWERED_FRAMES)
        self._handle: str | None = None
        self._handle_at: float | None = None  # when the latest handle arrived (its age)
        self._handle_current = False
        self._go_away_deadline: float | None = None
        self._in_turn = False
        self._generated = False  # the current turn's generationComplete has arrived
        self._pending_tools: set[str] = set()
        # The call's tracker when it shares one (fed before each frame arrives here), else
        # our own: either way one energy measurement per frame.
        self._owns_caller = request.caller_activity is None
        self._caller = request.caller_activity or CallerActivity(request.input_rate, clock=clock)
        self._seen_stop: float | None = None
        self._awaiting_answer_since: float | None = None
        self._lines: deque[str] = deque(maxlen=MAX_SUMMARY_LINES)
        self._lines_ended = 0  # lines ever appended to ``_lines``
        self._lines_at_handle = 0  # ... when the latest resumable handle arrived
        self._recalled: deque[str] = deque(maxlen=MAX_SUMMARY_LINES)  # told to resumed setups
        self._seed = ""  # the summary a fresh session started with, after a rejected resume
        self._speaking: dict[str, list[str]] = {"caller": [], "agent": []}
        self.connections = 0
        self.rotations = 0
        self.reconnects = 0
        self.frames_dropped = 0
        self._log = log.bind(call_id=request.call_id)

    @property
    def input_rate(self) -> int:
        return self._request.input_rate

    @property
    def resumption_handle(self) -> str | None:
        return self._handle

    # ── Connection management ─────────────────────────────────────────────────────────

    async def open(self) -> None:
        await self._connect(handle=None)

    async def aclose(self) -> None:
        await self._disconnect()

    async def _connect(self, handle: str | None, extra_instruction: str = "") -> None:
        config = live_config(
            self._settings,
            self._request,
            caps=self._caps,
            handle=handle,
            extra_instruction=extra_instruction,
        )
        context = self._client.aio.live.connect(model=self._model, config=config)
        try:
            async with asyncio.timeout(self._settings.connect_timeout_s):
                await fresh_credentials(self._credentials)
                session = await context.__aenter__()
        except errors.APIError as exc:
            raise ModelUnavailable(
                f"{self._model}: connect closed with {exc.code}: {exc.message or exc}",
                close_code=close_code(exc),
            ) from None
        except TimeoutError:
            raise ModelUnavailable(
                f"{self._model}: no setupComplete within {self._settings.connect_timeout_s} s"
            ) from None
        except (OSError, websockets.WebSocketException, GoogleAuthError) as exc:
            raise unavailable(exc, self._model) from None
        self._context, self._live = context, session
        self._ws = raw_socket(session)
        self._go_away_deadline = None
        self._in_turn = False
        self._handle_current = False
        self._unanswered.clear()
        self.connections += 1

    async def _disconnect(self) -> None:
        context, self._context, self._live = self._context, None, None
        self._ws = None
        if context is None:
            return
        try:
            await context.__aexit__(None, None, None)
        except Exception as exc:  # closing a broken socket may fail; it is gone either way
            self._log.debug("close_failed", error=str(exc))

    # ── Sending ──────────────────────────────────────────────────────────────────────

    async def send_audio(self, pcm: bytes) -> None:
        if self._owns_caller:
            self._caller.update(pcm)
        stopped = self._caller.stopped_at
        if stopped is not None and stopped != self._seen_stop:
            self._seen_stop = self._awaiting_answer_since = stopped
        if self._switching:
            # A reconnect or rotation holds the send lock, maybe for seconds. Queue the frame
            # (it goes out on the new connection) rather than wait: the caller pump must keep
            # reading, or a hang-up meanwhile goes unnoticed until the reconnect ends.
            self._queue(pcm)
            return
        ws = self._ws
        # The common case, without the lock's two coroutines: nothing awaits between this
        # check and the write, so no other sender can be in between either.
        if (
            ws is not None
            and not self._send_lock.locked()
            and ws_send.send_now(ws, audio_frame(pcm, self._mime))
        ):
            self._unanswered.append(pcm)
            return
        async with self._send_lock:
            ws = self._ws
            if ws is None:
                self._queue(pcm)
                return
            try:
                await ws_send.send(ws, audio_frame(pcm, self._mime))
            except (websockets.ConnectionClosed, OSError):
                # The receive side sees the close and reconnects; this frame goes out then.
                self._queue(pcm)
            else:
                self._unanswered.append(pcm)

    def _queue(self, pcm: bytes) -> None:
        """Keep a frame for the next connection; when the queue is full the oldest goes."""
        if len(self._unsent) == self._unsent.maxlen:
            self.frames_dropped += 1
        self._unsent.append(pcm)

    async def send_text(self, text: str) -> None:
        async with self._send_lock:
            if self._live is not None:
                try:
                    await self._live.send_realtime_input(text=text)
                except (websockets.ConnectionClosed, OSError) as exc:
                    self._log.warning("text_not_sent", error=str(exc))

    def bind_call(self, ctx: ToolContext) -> None:
        """Nothing to bind: tool calls come back as events and the bridge runs them."""

    async def send_context(self, role: Literal["user", "model"], text: str) -> None:
        """``clientContent`` with one ``role`` turn and ``turnComplete`` false (see the port)."""
        content = types.Content(role=role, parts=[types.Part(text=text)])
        async with self._send_lock:
            if self._live is not None:
                try:
                    await self._live.send_client_content(turns=content, turn_complete=False)
                except (websockets.ConnectionClosed, OSError) as exc:
                    self._log.warning("context_not_sent", error=str(exc))

    async def send_tool_result(self, result: ToolResult) -> None:
        self._pending_tools.discard(result.call_id)
        response = function_response(result)
        async with self._send_lock:
            if self._live is not None:
                try:
                    await self._live.send_tool_response(function_responses=[response])
                except (websockets.ConnectionClosed, OSError) as exc:
                    self._log.warning("tool_response_not_sent", error=str(exc))

    async def _replay_unsent(self) -> int:
        """Send frames that failed on the old socket (caller holds the send lock); how many."""
        assert self._ws is not None
        sent = 0
        while self._unsent:
            try:
                await ws_send.send(self._ws, audio_frame(self._unsent[0], self._mime))
            except (websockets.ConnectionClosed, OSError):
                return sent  # the receive side sees the close and reconnects; the rest goes then
            self._unanswered.append(self._unsent.popleft())
            sent += 1
        return sent

    # ── Receiving ────────────────────────────────────────────────────────────────────

    async def events(self) -> AsyncIterator[ModelEvent]:
        while True:
            try:
                async for event in self._connection_events():
                    yield event
            except (errors.APIError, websockets.ConnectionClosed, OSError) as exc:
                code = close_code(exc)
                if code is not None and code not in RETRYABLE_CLOSE:
                    reason = CLOSE_REASONS.get(code, str(exc))
                    raise ModelUnavailable(
                        f"Gemini Live closed the session with {code}: {reason} ({exc})",
                        close_code=code,
                    ) from None
                if self._in_turn:
                    yield self._cut_turn()
                yield await self._reconnect(code, _describe(exc))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                # google-genai raises these for frames it cannot parse (bad JSON, JSON that
                # is not an object, an unknown top-level key). The connection's state is
                # unknown: start a new one.
                self._log.warning("protocol_error", error=f"{type(exc).__name__}: {exc}")
                if self._in_turn:
                    yield self._cut_turn()
                yield await self._reconnect(None, f"unreadable message from the server: {exc}")

    async def _connection_events(self) -> AsyncIterator[ModelEvent]:
        """Events of the current connection; returns after a planned rotation."""
        ws = self._ws
        if ws is None:
            raise ModelUnavailable("session is closed")
        while True:
            deadline = self._go_away_deadline
            try:
                if deadline is None:
                    raw = await ws.recv(decode=False)
                else:
                    # Poll while a goAway is pending, so a quiet moment is noticed even if
                    # nothing arrives from the server (cancelling recv loses no message).
                    left = deadline - ROTATE_MARGIN_S - self._clock()
                    raw = await asyncio.wait_for(ws.recv(decode=False), min(max(left, 0.0), 0.25))
            except TimeoutError:
                assert deadline is not None
                forced = self._clock() >= deadline - ROTATE_MARGIN_S
                if not forced and not self._quiet():
                    continue
                if self._in_turn:
                    # The old connection would have ended this turn; it will not now.
                    yield self._cut_turn()
                yield await self._rotate("timeLeft nearly over" if forced else "quiet point")
                return
            for event in self._observe(parse(raw)):
                yield event
            if self._go_away_deadline is not None and self._quiet():
                yield await self._rotate("quiet point")
                return

    def _quiet(self) -> bool:
        """A good moment to switch connections: nobody speaks and nothing is owed.

        Not while a model turn runs or a tool call is pending, not while the caller speaks,
        not before the handle covering the last turn has arrived, and not in the gap between
        the caller finishing and the model's answer starting (that answer would be lost with
        the old connection).
        """
        if self._in_turn or self._pending_tools or self._caller.speaking:
            return False
        if self._settings.session_resumption and not self._handle_current:
            # The server sends the handle covering a turn just after its turnComplete;
            # resuming from an older one would make the model forget that turn.
            return False
        since = self._awaiting_answer_since
        return since is None or self._clock() - since > RESPONSE_WAIT_S

    def _observe(self, message: ServerMessage) -> list[ModelEvent]:
        """Keep what rotation needs (handle, turn state, transcript lines); pass events on."""
        update = message.resumption
        if update is not None and update[1] and update[0]:
            self._handle = update[0]
            self._handle_at = self._clock()
            self._handle_current = True
            self._lines_at_handle = self._lines_ended
            self._unanswered.clear()
        elif update is not None:
            self._handle_current = False  # not resumable now (mid-generation, tool pending)
        out: list[ModelEvent] = []
        if message.go_away_s is not None:
            time_left = message.go_away_s
            self._go_away_deadline = self._clock() + time_left
            out.append(
                SessionNotice(
                    "go_away",
                    f"connection ends in {time_left:.1f} s",
                    facts={"time_left_s": round(time_left, 3)},
                )
            )
        for event in message.events:
            if isinstance(event, ModelAudio | ToolCall | Transcript):
                self._handle_current = False  # the conversation moved past the handle
            if isinstance(event, ModelAudio | ToolCall):
                self._unanswered.clear()  # the model is answering what it heard so far
                if not self._in_turn:
                    self._generated = False
                self._in_turn = True
                self._awaiting_answer_since = None
            if isinstance(event, ToolCall):
                self._pending_tools.add(event.call_id)
            elif isinstance(event, GenerationComplete):
                self._generated = True
            elif isinstance(event, TurnComplete):
                self._in_turn = False
                self._end_lines()
            elif isinstance(event, Transcript):
                self._speaking[event.speaker].append(event.text)
            out.append(event)
        return out

    def _end_lines(self, *, cut: bool = False) -> None:
        for speaker in ("caller", "agent"):
            words = "".join(self._speaking[speaker]).strip()
            if words:
                ending = CUT_OFF if cut and speaker == "agent" else ""
                self._lines.append(f"{speaker}: {words}{ending}")
                self._lines_ended += 1
            self._speaking[speaker].clear()

    def _cut_turn(self) -> TurnComplete:
        """The turn this connection will never finish: end it for the call and the transcript."""
        self._in_turn = False
        self._end_lines(cut=not self._generated)
        return TurnComplete(ROTATION_CUT)

    def _standing_instruction(self) -> str:
        """What every resumed connection adds to the system instruction.

        A handle older than the last exchange (a rotation forced mid-answer, a drop) restores
        the conversation without it, so those transcript lines are recalled here; so is the
        summary a fresh session was seeded with. Every later connection carries both: the
        instruction is setup, not conversation state, and a resume would lose them otherwise.
        """
        recalled = (
            "The connection to you was renewed and you may not remember every exchange. "
            "These happened, oldest first:\n" + "\n".join(self._recalled)
            if self._recalled
            else ""
        )
        return "\n\n".join(part for part in (self._seed, recalled) if part)

    def _lines_since_handle(self) -> list[str]:
        """Exchanges that ended after the latest resumable handle: a resume forgets them."""
        missed = min(self._lines_ended - self._lines_at_handle, len(self._lines))
        return list(self._lines)[-missed:] if missed > 0 else []

    def summary(self, max_chars: int = 4000) -> str:
        """The conversation so far, newest last, for seeding a fresh session."""
        self._end_lines()
        text = "\n".join(self._lines)
        return text[-max_chars:]

    # ── Rotation and reconnection ────────────────────────────────────────────────────

    @asynccontextmanager
    async def _switch(self) -> AsyncIterator[None]:
        """Hold the send lock while connections change; caller audio queues meanwhile."""
        async with self._send_lock:
            self._switching = True
            try:
                yield
            finally:
                self._switching = False

    async def _rotate(self, why: str) -> SessionNotice:
        """Planned handover after goAway: old socket closed first, then resume."""
        started = self._clock()
        async with self._switch():
            await self._disconnect()
            notice = await self._resume_or_restart(
                "rotated", f"goAway rotation at {why}", close_code=None
            )
            replayed = await self._replay_unsent()
        self.rotations += 1
        took_ms = (self._clock() - started) * 1000
        self._log.info("rotated", why=why, took_ms=round(took_ms, 1), kind=notice.kind)
        facts = {**notice.facts, "why": why, "took_ms": round(took_ms, 1)}
        facts["replayed_frames"] = replayed
        return SessionNotice(notice.kind, f"{notice.detail}; took {took_ms:.0f} ms", None, facts)

    async def _reconnect(self, code: int | None, error: str) -> SessionNotice:
        """Unplanned drop: reconnect with the handle, bounded attempts with backoff.

        The resumed state ends at the handle, so caller audio the old connection heard but
        had not started answering (and that no later handle covers) is sent again, with the
        frames whose send failed. Audio already being answered is not: the model would say
        its answer a second time.
        """
        started = self._clock()
        async with self._switch():
            await self._disconnect()
            dropped_before = self.frames_dropped
            lost = [*self._unanswered, *self._unsent]
            self._unsent = deque(lost[-MAX_UNSENT_FRAMES:], maxlen=MAX_UNSENT_FRAMES)
            self.frames_dropped += max(len(lost) - MAX_UNSENT_FRAMES, 0)
            attempts = self._settings.max_reconnect_attempts
            last_error = error
            for attempt in range(attempts):
                if attempt:
                    await asyncio.sleep(min(0.2 * 2**attempt, 3.0))
                try:
                    notice = await self._resume_or_restart(
                        "reconnected",
                        f"connection closed ({code}: {error}); reconnected on attempt "
                        f"{attempt + 1}",
                        close_code=code,
                    )
                except ModelUnavailable as exc:
                    last_error = str(exc)
                    continue
                replayed = await self._replay_unsent()
                self.reconnects += 1
                dropped = self.frames_dropped - dropped_before
                facts = {
                    **notice.facts,
                    "attempt": attempt + 1,
                    "took_ms": round((self._clock() - started) * 1000, 1),
                    "replayed_frames": replayed,
                    "frames_dropped": dropped,
                }
                detail = notice.detail
                if dropped:
                    detail = f"{detail}; {dropped} caller frames queued too long dropped"
                return SessionNotice(notice.kind, detail, notice.close_code, facts)
        raise ModelUnavailable(
            f"connection closed ({code}: {error}); {attempts} reconnect attempts failed: "
            f"{last_error}",
            close_code=code,
        )

    async def _resume_or_restart(
        self, kind: str, detail: str, *, close_code: int | None
    ) -> SessionNotice:
        handle = self._handle if self._settings.session_resumption else None
        if handle is not None:
            age = self._clock() - (self._handle_at if self._handle_at is not None else 0.0)
            missed = self._lines_since_handle()
            self._recalled.extend(missed)
            self._lines_at_handle = self._lines_ended  # recalled once, not at every attempt
            try:
                await self._connect(handle, extra_instruction=self._standing_instruction())
                resumed = detail + " (resumed)"
                if missed:
                    resumed += f"; recalled {len(missed)} transcript lines newer than the handle"
                facts = {
                    "resumed": True,
                    "handle_age_s": round(age, 3),
                    "recalled_lines": len(missed),
                }
                return SessionNotice(kind, resumed, close_code, facts)
            except ModelUnavailable as exc:
                if exc.close_code not in (1007, 1008, 1011):
                    raise
                self._log.warning("resume_rejected", error=str(exc))
                self._handle = None
                resume_error = str(exc)
        else:
            resume_error = "no resumable handle yet"
        summary = self.summary()
        seed = (
            "This call continues an earlier conversation that could not be resumed. "
            "Do not greet the caller again. The conversation so far:\n" + summary
            if summary
            else ""
        )
        self._seed, self._recalled = seed, deque(maxlen=MAX_SUMMARY_LINES)  # summary has them
        await self._connect(None, extra_instruction=seed)
        return SessionNotice(
            "resume_rejected",
            f"{detail}; resumption failed ({resume_error}); fresh session seeded with "
            f"{len(summary)} characters of summary",
            close_code,
            {"resumed": False, "summary_chars": len(summary)},
        )


def session_info(session: GeminiLiveSession) -> dict[str, Any]:
    return {
        "connections": session.connections,
        "rotations": session.rotations,
        "reconnects": session.reconnects,
        "frames_dropped": session.frames_dropped,
    }
