"""Incoming calls from Telcoflow: claim (notify -> open -> ready), answer, hand to the bridge.

The SDK's notify handlers run on a serial event bus capped at 60 s per handler, so the
handler here only claims the session and registers callbacks; each call then runs as a task
in this source's own TaskGroup. Capacity is reserved at claim time: a process at
``max_concurrent_calls`` (or draining) does not open new sessions, so another replica on the
same connector takes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import structlog
import telcoflow

# Not re-exported at the package top (telcoflow 1.0.0): ``telcoflow.WSSSessionBusy`` is an
# AttributeError, raised only when a lost race is being handled.
from telcoflow.exceptions import WSSSessionBusy

from callbridge.adapters.telcoflow import sdk_fixes, voice_wire
from callbridge.adapters.telcoflow.port import TelcoflowCall
from callbridge.bridge.config import CallRate, TelcoflowSettings
from callbridge.bridge.errors import BridgeError, ConfigError

log = structlog.get_logger("callbridge.telcoflow")

CallHandler = Callable[[TelcoflowCall], Awaitable[Any]]

RESUMES_BEFORE_TAKEOVER = 2
"""A live owner re-claims its call on the first RESUME after its reconnect; a call offered as
RESUME again has no owner left (it crashed, or gave the call up), so it is taken over."""


class TelephonyUnavailable(BridgeError):
    """The Telcoflow session manager could not be reached or refused our credentials."""


@asynccontextmanager
async def _entered(manager: telcoflow.SessionManager) -> AsyncIterator[None]:
    """Exit an already-entered SessionManager (entered separately to translate its errors)."""
    try:
        yield
    finally:
        await manager.__aexit__(None, None, None)  # type: ignore[no-untyped-call]  # SDK: unannotated


@dataclass
class SourceStats:
    notified: int = 0
    claimed: int = 0
    busy_elsewhere: int = 0
    declined_capacity: int = 0
    calls_started: int = 0
    calls_finished: int = 0
    duplicates_ignored: int = 0
    reclaimed: int = 0
    resumes_left_to_owner: int = 0
    resumes_taken_over: int = 0
    released: int = 0
    declined_unready: int = 0


def build_manager(settings: TelcoflowSettings, sample_rate: CallRate) -> telcoflow.SessionManager:
    """A SessionManager from our settings, with the SDK fixes applied and checked."""
    try:
        config = telcoflow.SessionManagerConfig.create(
            api_key=settings.api_key.get_secret_value() if settings.api_key else None,
            connector_uuid=settings.connector_uuid,
            cert_path=str(settings.cert_path) if settings.cert_path else None,
            key_path=str(settings.key_path) if settings.key_path else None,
            base_url=settings.base_url,
            call_audio=telcoflow.CallAudioConfig(sample_rate=sample_rate),
        )
    except ValueError as exc:
        raise ConfigError(f"telcoflow: {exc}") from None
    manager = telcoflow.SessionManager(config)
    sdk_fixes.apply_fixes(manager)
    voice_wire.check_sdk_internals()  # the per-call voice fast path: fail here, not mid-call
    return manager


def claim_delay_s(in_use: int, capacity: int, spread_ms: float) -> float:
    """How long to wait before claiming an offered call: ``spread_ms`` times the share of
    ``capacity`` in use (0 when idle).

    Competing consumers on one connector (a pod's workers, other replicas) are all offered
    every call, and the first to open its session gets it. Without a delay the fastest one
    wins, which below capacity put every call of a run on the same worker; with it an idle
    consumer claims at once and a busier one a little later, so calls spread by load.
    """
    if capacity <= 0 or spread_ms <= 0:
        return 0.0
    return spread_ms / 1000 * min(1.0, max(0, in_use) / capacity)


class TelcoflowCallSource:
    """Claims calls for this process and runs ``handle_call`` for each, in one TaskGroup."""

    def __init__(
        self,
        settings: TelcoflowSettings,
        *,
        sample_rate: CallRate,
        handle_call: CallHandler,
        max_concurrent_calls: int,
        claim_spread_ms: float = 0.0,
        unready: Callable[[], str | None] = lambda: None,
        on_connected: Callable[[telcoflow.SessionManager], Awaitable[None]] | None = None,
    ) -> None:
        self._settings = settings
        self._rate = sample_rate
        self._handle_call = handle_call
        self._max_calls = max_concurrent_calls
        self._claim_spread_ms = claim_spread_ms
        self._unready = unready
        self._released: set[str] = set()
        self._resumes_seen: dict[str, int] = {}
        self._on_connected = on_connected
        self._group: asyncio.TaskGroup | None = None
        self._manager: telcoflow.SessionManager | None = None
        self._reserved: set[str] = set()
        self._calls: dict[str, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()
        self._stopping = False
        self.ready = asyncio.Event()
        self.draining = False
        self.stats = SourceStats()

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    @property
    def reserved(self) -> int:
        return len(self._reserved)

    @property
    def connected(self) -> bool:
        manager = self._manager
        # The manager's own check: its SM-WS is open now (``id`` survives a drop).
        return manager is not None and self.ready.is_set() and bool(manager._is_connected())

    def has_capacity(self) -> bool:
        return not self.draining and len(self._reserved) < self._max_calls

    @property
    def manager(self) -> telcoflow.SessionManager | None:
        """The connected SessionManager (outbound calls are placed through it)."""
        return self._manager if self.ready.is_set() else None

    def try_reserve(self, key: str) -> bool:
        """Take a capacity slot for an outbound call: inbound and outbound share the limit."""
        if not self.has_capacity():
            return False
        self._reserved.add(key)
        return True

    def release(self, key: str) -> None:
        self._reserved.discard(key)

    def stop_claiming(self) -> None:
        """Begin a drain: claim nothing new; :meth:`run` returns once live calls end."""
        self.draining = True
        self._stop.set()

    async def run(self) -> None:
        """Connect, take calls until :meth:`stop_claiming`, then wait for live calls."""
        manager = build_manager(self._settings, self._rate)
        self._manager = manager
        telco_v, bus_v = sdk_fixes.installed_versions()
        if (telco_v, bus_v) not in sdk_fixes.CHECKED_VERSIONS:
            log.warning("sdk_versions_unverified", telcoflow=telco_v, abxbus=bus_v)
        # Registered before connecting: the SDK drops notifies that arrive with no handler.
        manager.on_session_notification(self._on_notify)
        try:
            await manager.__aenter__()
        except (telcoflow.WSSConnectionError, telcoflow.WSSAuthenticationError) as exc:
            raise TelephonyUnavailable(
                f"Telcoflow refused the connection to {self._settings.base_url or 'production'}: "
                f"{exc}. Check TELCOFLOW_API_KEY and TELCOFLOW_CONNECTOR_UUID (or the mTLS "
                "cert/key) and TELCOFLOW_BASE_URL."
            ) from None
        async with _entered(manager):
            if self._on_connected is not None:
                await self._on_connected(manager)
            async with asyncio.TaskGroup() as group:
                self._group = group
                self.ready.set()
                log.info("telcoflow_connected", sm_id=manager.id, sample_rate=self._rate)
                group.create_task(self._watch_connection(manager), name="telcoflow-watch")
                await self._stop.wait()
                self._stopping = True
            self._group = None
        log.info("telcoflow_stopped", **self.stats.__dict__)

    async def _watch_connection(self, manager: telcoflow.SessionManager) -> None:
        """Log when the SM-WS drops and when it is back (the SDK reconnects by itself)."""
        up = True
        down_since = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping:
            await asyncio.sleep(0.25)
            now_up = bool(manager._is_connected())
            if up and not now_up:
                down_since = loop.time()
                log.warning("telcoflow_disconnected", active_calls=self.active_calls)
            elif now_up and not up:
                log.info(
                    "telcoflow_reconnected",
                    sm_id=manager.id,
                    down_s=round(loop.time() - down_since, 2),
                    active_calls=self.active_calls,
                )
            up = now_up

    async def _on_notify(self, notice: telcoflow.SessionNotification) -> None:
        self.stats.notified += 1
        if notice.channel != "TELCO":
            return
        session_id = notice.session_id
        manager = self._manager
        assert manager is not None
        if session_id in self._reserved:
            if (
                notice.activity == "RESUME"
                and session_id in self._calls
                and not sdk_fixes.has_session(manager, session_id)
            ):
                # Our own live call after our SM-WS reconnected: the SDK force-closed its
                # session. Claim it back so the platform stops re-offering it and routes its
                # end to us; the re-delivered Call object is ignored in _start_call.
                self.stats.reclaimed += 1
                await self._claim(manager, session_id)
                return
            self.stats.duplicates_ignored += 1
            return
        if notice.activity == "RESUME":
            # A live call whose bridge's SM-WS reconnected: on another replica, or in an
            # earlier life of this process. Its voice socket belongs to that bridge, so
            # claiming it at once would only start a second, dead bridge. But a call we gave
            # up ourselves, or one re-offered again (its owner did not take it back), has no
            # owner left: take it over, or it is stranded.
            seen = self._resumes_seen.get(session_id, 0) + 1
            self._resumes_seen[session_id] = seen
            if len(self._resumes_seen) > 4 * self._max_calls + 100:
                self._resumes_seen.pop(next(iter(self._resumes_seen)))
            if session_id not in self._released and seen < RESUMES_BEFORE_TAKEOVER:
                self.stats.resumes_left_to_owner += 1
                log.info("resume_left_to_owner", session_id=session_id)
                return
        if not self.has_capacity():
            self.stats.declined_capacity += 1
            log.info("session_left_for_another_replica", session_id=session_id)
            return
        unready = self._unready()
        if unready is not None:
            self.stats.declined_unready += 1
            log.info("session_left_for_another_replica", session_id=session_id, reason=unready)
            return
        delay = claim_delay_s(len(self._reserved), self._max_calls, self._claim_spread_ms)
        if delay > 0:
            await asyncio.sleep(delay)  # at most claim_spread_ms; the bus waits for it
            if not self.has_capacity():
                self.stats.declined_capacity += 1
                log.info("session_left_for_another_replica", session_id=session_id)
                return
        if notice.activity == "RESUME":
            self.stats.resumes_taken_over += 1
            self._released.discard(session_id)
            log.warning("resume_taken_over", session_id=session_id)
        self._reserved.add(session_id)
        claimed = False
        try:
            claimed = await self._claim(manager, session_id)
        except Exception:
            log.exception("session_claim_failed", session_id=session_id)
        finally:
            # Whatever went wrong, a slot is only kept by a claimed session: a leaked
            # reservation would shrink this replica's capacity for the rest of its life.
            if claimed:
                self.stats.claimed += 1
            elif session_id not in self._calls:
                self._reserved.discard(session_id)

    async def _claim(self, manager: telcoflow.SessionManager, session_id: str) -> bool:
        """Open the session, register our callbacks, then ``ready()``; False if refused."""
        try:
            session = await manager.open_session(session_id)
        except WSSSessionBusy:
            self.stats.busy_elsewhere += 1
            return False
        except telcoflow.WSSError as exc:
            log.warning("session_open_failed", session_id=session_id, error=str(exc))
            return False

        async def on_call(call: telcoflow.Call) -> None:
            self._start_call(session_id, call)

        def on_closed(reason: Any) -> None:
            sdk_fixes.release_session(manager, session_id)
            if session_id not in self._calls:
                self._reserved.discard(session_id)

        session.on_incoming_call(on_call)
        session.on_closed(on_closed)
        await session.ready()
        return True

    def _start_call(self, session_id: str, call: telcoflow.Call) -> None:
        if session_id in self._calls:
            # A RESUME re-delivery builds a second Call object for a call we already run.
            self.stats.duplicates_ignored += 1
            return
        if self._group is None:
            self._reserved.discard(session_id)
            return
        self.stats.calls_started += 1
        self._calls[session_id] = self._group.create_task(
            self._run_call(session_id, call), name=f"call-{call.id}"
        )

    async def _run_call(self, session_id: str, call: telcoflow.Call) -> None:
        port = TelcoflowCall(call, self._rate)
        try:
            with structlog.contextvars.bound_contextvars(call_id=port.call_id):
                await self._handle_call(port)
        except Exception:
            log.exception("call_failed", call_id=port.call_id)
        finally:
            self._calls.pop(session_id, None)
            self._reserved.discard(session_id)
            self.stats.calls_finished += 1
            if port.not_served:
                self._release(session_id, port.call_id)

    def _release(self, session_id: str, call_id: str) -> None:
        """Give up a call this process could not serve, so it can be taken (here or elsewhere).

        The SDK's registry entry goes, so a re-offer (RESUME) can be claimed afresh; the
        session id is remembered so that re-offer is taken over at once, not left "to its
        owner" (which was us).
        """
        manager = self._manager
        if manager is not None:
            sdk_fixes.release_session(manager, session_id)
        self._released.add(session_id)
        if len(self._released) > 4 * self._max_calls + 100:
            self._released.pop()
        self.stats.released += 1
        log.warning("call_released", session_id=session_id, call_id=call_id)
