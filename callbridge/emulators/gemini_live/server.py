"""`GeminiLiveEmulator`: a local, TLS, protocol-faithful Gemini Live server.

The unmodified google-genai client and ADK reach it through `base_url` + `client_ssl_context()`
(or the env vars `GOOGLE_GEMINI_BASE_URL` + `SSL_CERT_FILE=ca_file`). Any URL path is accepted and
logged (genai uses v1beta, ADK v1alpha, Vertex proxy mode an arbitrary path).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import ssl
import tempfile
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from . import messages
from .log import SessionLog
from .oauth import TokenEndpoint
from .protocol import ProtocolError, encode_frame
from .resumption import Conversation, HandleStore
from .script import Script
from .session import LiveSession, SessionConfig
from .setup import INVALID_ARGUMENT, SetupInfo, parse_setup, provider_for
from .tls import TlsFiles, write_tls_files

__all__ = ["GeminiLiveEmulator"]

_log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 15 * 1024 * 1024
DEADLINE_EXPIRED = "Deadline expired before operation could complete."
_SECRET_HEADERS = frozenset({"x-goog-api-key", "authorization"})


def _redact(value: str) -> str:
    return f"<redacted:{len(value)} chars>"


class GeminiLiveEmulator:
    """Serve scripted Gemini Live conversations on 127.0.0.1 over TLS.

    Use as `async with GeminiLiveEmulator(script=...) as emu:`; one `SessionLog` per accepted
    connection lands in `emu.sessions`. `burst_speed` is how much faster than real time model
    audio is released (the real service bursts too); `strict_blocking` closes 1008 when audio
    arrives while a BLOCKING function call is pending, as the real service does;
    `stall_3x_on_affective` reproduces 3.x models never answering a setup that carries
    affective dialog or proactivity. `log_audio_frames=False` keeps only counters for audio
    (no per-chunk entries in `audio_in` / `sent`), for long many-session soaks.
    """

    def __init__(
        self,
        script: Script | None = None,
        *,
        burst_speed: float = 4.0,
        vad_threshold_rms: float = 500.0,
        vad_hangover_s: float = 0.4,
        binary_frames: bool = True,
        strict_blocking: bool = True,
        stall_3x_on_affective: bool = True,
        log_audio_frames: bool = True,
        handle_ttl_s: float = 7200.0,
        setup_timeout_s: float = 60.0,
        token_ttl_s: int = 3600,
        compression: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._script = script or Script()
        self._config = SessionConfig(
            burst_speed=burst_speed,
            vad_threshold_rms=vad_threshold_rms,
            vad_hangover_s=vad_hangover_s,
            binary_frames=binary_frames,
            strict_blocking=strict_blocking,
            log_audio_frames=log_audio_frames,
        )
        self._stall_3x = stall_3x_on_affective
        self._setup_timeout_s = setup_timeout_s
        self._compression = compression
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._tmpdir: Path | None = None
        self._tls: TlsFiles | None = None
        self._server: Server | None = None
        self.handles = HandleStore(ttl_s=handle_ttl_s)
        self.oauth = TokenEndpoint(token_ttl_s=token_ttl_s)
        """The OAuth token endpoint Vertex credentials are exchanged at (see `oauth`)."""
        self.vertex_refusals: list[str] = []
        """Vertex handshakes refused before the WebSocket opened (why, no secrets)."""
        self.sessions: list[SessionLog] = []
        self._accepted = asyncio.Condition()

    # ------------------------------------------------------------------ public API

    @property
    def port(self) -> int:
        """The bound TCP port (available once started)."""
        if self._port is None:
            raise RuntimeError("emulator not started: use `async with GeminiLiveEmulator(...)`")
        return self._port

    @property
    def base_url(self) -> str:
        """`https://127.0.0.1:PORT`; the client rewrites the scheme to wss itself."""
        return f"https://{self._host}:{self.port}"

    @property
    def ca_file(self) -> str:
        """PEM file of the CA that signed the server certificate (trust this)."""
        if self._tls is None:
            raise RuntimeError("emulator not started")
        return str(self._tls.ca_file)

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context trusting this emulator only."""
        if self._tls is None:
            raise RuntimeError("emulator not started")
        return self._tls.client_context()

    def set_script(self, script: Script) -> None:
        """Script for conversations started from now on (resumed ones keep theirs)."""
        self._script = script

    async def wait_sessions(self, count: int, timeout: float = 30.0) -> list[SessionLog]:
        """Wait until at least `count` connections were accepted; returns `sessions`."""
        async with asyncio.timeout(timeout), self._accepted:
            await self._accepted.wait_for(lambda: len(self.sessions) >= count)
        return self.sessions

    async def start(self) -> None:
        """Generate TLS material and bind the listening socket."""
        self._tmpdir = Path(tempfile.mkdtemp(prefix="gemini-live-emu-"))
        self._tls = write_tls_files(self._tmpdir)
        await self.oauth.start()
        self._server = await serve(
            self._handle,
            self._host,
            self._requested_port,
            process_request=self._check_vertex_auth,
            ssl=self._tls.server_context(),
            max_size=MAX_FRAME_BYTES,
            ping_interval=None,  # the real service does not ping; it only answers pings
            compression="deflate" if self._compression else None,
        )
        self._port = int(next(iter(self._server.sockets)).getsockname()[1])

    async def stop(self) -> None:
        """Close every connection (1001), stop listening and delete the TLS files."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.oauth.stop()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    async def serve_forever(self) -> None:
        """Run until cancelled (for `python -m callbridge.emulators.gemini_live`)."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def __aenter__(self) -> GeminiLiveEmulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ connections

    def _check_vertex_auth(self, ws: ServerConnection, request: Request) -> Response | None:
        """Vertex AI: refuse the upgrade without a valid bearer token (HTTP 401).

        Assumption: the real endpoint answers the handshake with 401 UNAUTHENTICATED (the
        status Google's HTTP APIs use for a missing or expired token); google-genai then
        raises `websockets.InvalidStatus`. Tokens are the ones `oauth` issued.
        """
        if provider_for(urlsplit(request.path).path) != "vertex":
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.oauth.token_valid(token.strip()):
            return None
        why = "no bearer token" if not token else "unknown or expired bearer token"
        self.vertex_refusals.append(why)
        body = json.dumps(
            {
                "error": {
                    "code": 401,
                    "message": f"Request had invalid authentication credentials ({why}).",
                    "status": "UNAUTHENTICATED",
                }
            }
        ).encode()
        headers = Headers(
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return Response(401, "Unauthorized", headers, body)

    def _new_log(self, ws: ServerConnection) -> SessionLog:
        request = ws.request
        assert request is not None
        url = urlsplit(request.path)
        query = parse_qs(url.query)
        headers: dict[str, str] = {}
        for name, value in request.headers.raw_items():
            lower = name.lower()
            headers[lower] = _redact(value) if lower in _SECRET_HEADERS else value
        source = None
        if "x-goog-api-key" in headers:
            source = "header"
        elif "key" in query:
            source = "query"
        elif "authorization" in headers or "access_token" in query:
            source = "token"
        path = url.path
        if url.query:
            safe = [f"{k}=<redacted>" if k in ("key", "access_token") else k for k in query]
            path = f"{url.path}?{'&'.join(safe)}"
        return SessionLog(
            path=path, headers=headers, opened_at=time.monotonic(), api_key_source=source
        )

    async def _handle(self, ws: ServerConnection) -> None:
        log = self._new_log(ws)
        async with self._accepted:
            self.sessions.append(log)
            self._accepted.notify_all()
        conversation: Conversation | None = None
        try:
            try:
                async with asyncio.timeout(self._setup_timeout_s):
                    first = await ws.recv()
            except TimeoutError:
                raise ProtocolError(1011, DEADLINE_EXPIRED) from None
            info = parse_setup(first, log.path)
            log.setup, log.model, log.profile = info.setup, info.model, info.profile.name
            log.provider = info.profile.provider
            user_project = log.headers.get("x-goog-user-project")
            if info.project is not None and user_project not in (None, info.project):
                # Assumption: the quota project must be the one the request is for.
                raise ProtocolError(
                    1008,
                    f"Permission denied on resource project {user_project} "
                    f"(the model is in {info.project}).",
                )
            conversation = self._conversation_for(info, log)
            conversation.active = ws
            log.conversation_id = conversation.id
            log.connection_index = conversation.connections
            conversation.connections += 1
            stall = info.profile.stalls_on_affective_dialog and info.affective_or_proactive
            if stall and self._stall_3x:
                log.notes.append("3.x setup with affective dialog/proactivity: no reply")
                await ws.wait_closed()
                return
            for fault in conversation.script.faults_of("slow_setup"):
                if fault.on_connection in (None, log.connection_index):
                    log.notes.append(f"fault: slow_setup {fault.delay_s:g} s")
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(fault.delay_s):
                            await ws.wait_closed()  # a client that gives up ends the wait
            await ws.send(encode_frame(messages.setup_complete(), self._config.binary_frames))
            log.sent.append((time.monotonic(), "setupComplete"))
            session = LiveSession(ws, log, self._config, info, conversation, self.handles)
            await session.run()
        except ProtocolError as exc:
            log.notes.append(f"rejected: {exc.code} {exc.reason}")
            await ws.close(exc.code, exc.reason)
        except ConnectionClosed:
            pass
        except Exception:
            _log.exception("gemini live emulator session failed")
            log.notes.append("internal error (see logs)")
            await ws.close(1011, "Internal error encountered.")
        finally:
            if conversation is not None and conversation.active is ws:
                conversation.active = None
            await ws.close()
            log.mark_closed(time.monotonic(), ws.close_code, ws.close_reason or "")

    def _conversation_for(self, info: SetupInfo, log: SessionLog) -> Conversation:
        handle = info.resume_handle
        if handle is None:
            conversation = Conversation(script=self._script)
            conversation.state.context_text_tokens = info.system_text_tokens
            return conversation
        found = self.handles.lookup(handle)
        if found is None:
            raise ProtocolError(1007, f"{INVALID_ARGUMENT} Invalid session resumption handle.")
        conversation, state = found
        if conversation.take_resume_rejection():
            raise ProtocolError(1007, f"{INVALID_ARGUMENT} Invalid session resumption handle.")
        if conversation.socket_open():
            # Users report exactly this: resuming while the old socket is open fails with 1011.
            raise ProtocolError(1011, "Internal error encountered.")
        conversation.state = state
        log.resumed_from = handle
        return conversation
