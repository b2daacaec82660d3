"""``callbridge serve`` with ``service.workers`` > 1: a supervisor over N bridge processes.

A Python process uses one core; a pod given four serves four times the calls with four
workers. Each worker is a full ``callbridge serve`` (its own event loop, Telcoflow call source
competing for offers on the connector like another replica, record writer, tracer) started as
``callbridge serve --worker I/N/FD`` with its share of every per-process limit
(:func:`callbridge.service.workers.worker_config`) and its listeners on loopback ports the OS
picks, which it reports over its link (:mod:`callbridge.service.worker_link`).

The supervisor owns the public listeners and serves the same paths a single process does:

- ``service.http_host:http_port``: ``/healthz`` (the supervisor's loop answers), ``/readyz``
  (:func:`~callbridge.service.workers.pod_readiness` over the workers' own, polled every
  :data:`POLL_S`), ``/metrics`` (every worker's scraped and merged by
  :mod:`callbridge.service.metrics_merge`, plus ``callbridge_workers``,
  ``callbridge_workers_running``, ``callbridge_worker_restarts_total``,
  ``callbridge_worker_calls_lost_total`` and ``callbridge_worker_active_calls{worker}``).
- ``service.admin_host:admin_port``: the admin API and console, authenticated here and
  answered by the workers (:mod:`callbridge.service.pod_admin`): ``GET /calls`` merged over
  every worker, per-call actions and pages routed to the worker that owns the call.

A worker that dies (SIGKILL, OOM, a crash) is restarted after a backoff
(:class:`~callbridge.service.workers.RestartBackoff`), logged (``worker_exited``,
``worker_restarting``) and counted. Its calls' voice WebSockets close with the process and
no other process can take them over, so the callers lose the agent (the Telcoflow emulator
then ends the call as ``voice_dropped``; the real platform's handling of a dropped agent leg
is not in the verified wire notes); the supervisor marks their records ``worker_lost``, ended
now (the calls the worker reported: one started within
:data:`~callbridge.service.worker_link.REPORT_EVERY_S` of the death
may be missed; it is swept as ``abandoned`` by a start once silent for 15 minutes).
A worker that fails before it was ever ready (bad credentials, say) stops the supervisor with
its exit status, as the single process would exit, and exit 2 (configuration) always does.

SIGTERM (or a first SIGINT) drains: ``/readyz`` turns 503, every worker gets SIGTERM and runs
its own drain (``limits.drain_grace_s``), nothing is restarted, and the supervisor exits 0
once all have exited 0; a worker still running when its drain should long be over
(:meth:`Supervisor.drain_deadline_s`) is killed and the exit status is 1. A second signal
is passed on as SIGINT (each worker then exits at once; one still running
:data:`FORCED_EXIT_WAIT_S` later is killed) and the supervisor exits 130. Workers run in
their own session, so a terminal's Ctrl-C reaches only the supervisor, and drain by
themselves if the supervisor disappears.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from callbridge.bridge.config import TenantConfig
from callbridge.service.http import HEALTH_PATH, METRICS_PATH, READY_PATH
from callbridge.service.http_guard import GuardStats, HttpLimits
from callbridge.service.metrics import CONTENT_TYPE_LATEST
from callbridge.service.metrics_merge import Families, cumulative, merge, parse, render
from callbridge.service.pod_admin import PodAdmin, Slot
from callbridge.service.process_exit import still_running_after
from callbridge.service.serve import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    STALE_CALL_AFTER_S,
    _open_store,
    _report,
    bind_listener,
    embedded_server,
    release_listeners,
)
from callbridge.service.store import RecordStore
from callbridge.service.workers import WorkerState, pod_readiness, shares

log = structlog.get_logger("callbridge.supervisor")

POLL_S = 0.5
"""How often each worker's ``/readyz`` is read (the pod's readiness is this fresh)."""
START_TIMEOUT_S = 120.0
"""A worker that has not reported its listeners by then is killed and restarted."""
WORKER_HTTP_TIMEOUT_S = 5.0
DRAIN_SLACK_S = 2.0
"""Past everything a worker's drain may take, how long before a stuck worker is killed."""
LINK_DRAIN_S = 1.0
"""After a worker exits, how long its link's last lines may take to be read."""
LINK_LINE_LIMIT = 8 * 1024 * 1024
"""A link line lists at most every live call id of a worker (10 000 x ~20 bytes)."""
FORCED_EXIT_WAIT_S = 10.0
"""After a second signal, how long the workers have to exit on theirs before they are killed."""
KILLED_EXIT_WAIT_S = 5.0
"""After SIGKILL, how long the supervisor waits for the kernel to finish the workers off (a
large process takes a moment to tear down, longer on a loaded machine) before it exits."""
LOST_OUTCOME = "worker_lost"
"""The outcome recorded for a call whose worker process died under it."""


class Supervisor:
    """Starts, watches, restarts and drains the workers; serves the pod's one HTTP face."""

    def __init__(
        self,
        config: TenantConfig,
        workers: int,
        worker_argv: Callable[[int, int], list[str]],
        store: RecordStore | None = None,
    ) -> None:
        self.config = config
        self.count = workers
        self.worker_argv = worker_argv
        self.store = store
        self.slots = [
            Slot(i, share)
            for i, share in enumerate(shares(config.limits.max_concurrent_calls, workers))
        ]
        admin = config.service.admin_token
        self.admin_token = admin.get_secret_value() if admin else None
        self.started = asyncio.Event()
        self.port: int | None = None
        self.admin_port: int | None = None
        self._drain = asyncio.Event()
        self._interrupts = 0
        self.failed_status: int | None = None
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        Gauge("callbridge_workers", "service.workers: bridge processes wanted.", registry=r).set(
            workers
        )
        Gauge(
            "callbridge_workers_running", "Worker processes serving now.", registry=r
        ).set_function(lambda: float(sum(s.state.running for s in self.slots)))
        self.restarts = Counter(
            "callbridge_worker_restarts", "Workers restarted after they died.", registry=r
        )
        self.calls_lost = Counter(
            "callbridge_worker_calls_lost",
            f"Calls whose worker died under them (outcome {LOST_OUTCOME}).",
            registry=r,
        )
        self.worker_active = Gauge(
            "callbridge_worker_active_calls", "Active calls by worker.", ["worker"], registry=r
        )
        for slot in self.slots:
            self.worker_active.labels(worker=str(slot.index)).set_function(_active_calls_of(slot))

    # ── Control ──────────────────────────────────────────────────────────────────────

    @property
    def draining(self) -> bool:
        return self._drain.is_set()

    def request_drain(self, why: str) -> None:
        """Unready now; every worker drains (SIGTERM); nothing is restarted. Idempotent."""
        if self._drain.is_set():
            return
        self._drain.set()
        log.info(
            "drain_requested",
            why=why,
            active_calls=sum(s.state.active_calls for s in self.slots),
            grace_s=self.config.limits.drain_grace_s,
        )
        self._signal_workers(signal.SIGTERM)

    def _signal_workers(self, signum: signal.Signals) -> None:
        for slot in self.slots:
            if slot.proc is not None and slot.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.proc.send_signal(signum)

    def _on_signal(self, name: str) -> None:
        self._interrupts += 1
        if self._interrupts == 1:
            self.request_drain(f"{name} (send it again, or press Ctrl-C, to exit at once)")
            return
        log.warning("forced_exit", signal=name)
        self._force_workers_out()
        with contextlib.suppress(Exception):
            sys.stderr.flush()
            sys.stdout.flush()
        os._exit(EXIT_INTERRUPTED)

    def _force_workers_out(self) -> None:
        """Every worker gone before the supervisor: SIGINT now, SIGKILL for any still
        running :data:`FORCED_EXIT_WAIT_S` later.

        SIGINT, not a second SIGTERM: the kernel keeps one pending instance of each signal
        number, so a worker the scheduler did not run between the drain's SIGTERM and this
        one (a loaded machine) would receive the two SIGTERMs as one and drain for its whole
        grace. A pending SIGTERM and a pending SIGINT are two signals, and a worker counts
        either (:meth:`callbridge.service.serve.Service._on_signal`). This blocks the loop
        (the supervisor is exiting); it never waits longer than the bound."""
        running = {
            slot.proc.pid: slot.index
            for slot in self.slots
            if slot.proc is not None and slot.proc.returncode is None
        }
        for pid in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
        left = still_running_after(list(running), FORCED_EXIT_WAIT_S)
        if left:
            log.error(
                "workers_killed_at_exit",
                workers=sorted(running[pid] for pid in left),
                waited_s=FORCED_EXIT_WAIT_S,
            )
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            # SIGKILL is delivered at once but the exit is not: without this wait the
            # supervisor could exit while a killed worker was still being torn down.
            undead = still_running_after(left, KILLED_EXIT_WAIT_S)
            if undead:
                log.error(
                    "workers_outlived_kill",
                    workers=sorted(running[pid] for pid in undead),
                    waited_s=KILLED_EXIT_WAIT_S,
                )

    # ── Running ──────────────────────────────────────────────────────────────────────

    async def run(self, *, install_signals: bool = False) -> int:
        svc = self.config.service
        sock = bind_listener(svc.http_host, svc.http_port)
        try:
            admin_sock = bind_listener(svc.admin_host, svc.admin_port, "service.admin_port")
        except Exception:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        self.admin_port = int(admin_sock.getsockname()[1])
        limits = HttpLimits(
            max_connections=svc.http_max_connections,
            read_timeout_s=svc.http_read_timeout_s,
            max_body_bytes=svc.http_max_body_bytes,
        )
        server = embedded_server(self.http_app(), limits, GuardStats("http"))
        admin_server = embedded_server(self.admin_app(), limits, GuardStats("admin"))
        loop = asyncio.get_running_loop()
        if install_signals:
            loop.add_signal_handler(signal.SIGTERM, self._on_signal, "SIGTERM")
            loop.add_signal_handler(signal.SIGINT, self._on_signal, "SIGINT")
        statuses: list[int] = []
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(server.serve(sockets=[sock]), name="http")
                group.create_task(admin_server.serve(sockets=[admin_sock]), name="admin-http")
                log.info(
                    "service_started",
                    http_host=svc.http_host,
                    http_port=self.port,
                    admin_host=svc.admin_host,
                    admin_port=self.admin_port,
                    workers=self.count,
                    max_concurrent_calls=self.config.limits.max_concurrent_calls,
                    calls_per_worker=[s.max_calls for s in self.slots],
                    admin_api=self.admin_token is not None,
                )
                self.started.set()
                keepers = [
                    group.create_task(self._keep(slot), name=f"worker-{slot.index}")
                    for slot in self.slots
                ]
                poller = group.create_task(self._poll(), name="worker-poll")
                deadline = group.create_task(self._drain_deadline(), name="drain-deadline")
                statuses = list(await asyncio.gather(*keepers))
                poller.cancel()
                deadline.cancel()
                server.should_exit = True
                admin_server.should_exit = True
        finally:
            release_listeners(loop, install_signals, sock, admin_sock)
        if self.failed_status is not None:
            log.error("service_failed", error="a worker failed before it was ever ready")
            return self.failed_status
        # A worker that got SIGTERM before it could handle it (still starting) stopped cleanly.
        clean = (EXIT_OK, -signal.SIGTERM)
        log.info("service_stopped", worker_statuses=statuses)
        return EXIT_OK if all(status in clean for status in statuses) else EXIT_FAILED

    def drain_deadline_s(self) -> float:
        """What a worker's own drain may take: the grace, the record flush, the trace flush."""
        config = self.config
        return (
            config.limits.drain_grace_s
            + config.service.records_flush_timeout_s
            + config.tracing.export_timeout_s
            + DRAIN_SLACK_S
        )

    async def _drain_deadline(self) -> None:
        """A worker still running well after its own drain could end is killed: the pod's
        exit must not wait on a stuck process (Kubernetes would kill it less politely)."""
        await self._drain.wait()
        await asyncio.sleep(self.drain_deadline_s())
        stuck = [s.index for s in self.slots if s.proc is not None and s.proc.returncode is None]
        if stuck:
            log.error("workers_killed_after_drain", workers=stuck)
            self._signal_workers(signal.SIGKILL)

    async def _keep(self, slot: Slot) -> int:
        """Run this slot's worker until the drain; restart it whenever it dies."""
        while True:
            status = await self._run_worker(slot)
            if self.draining:
                log.info("worker_stopped", worker=slot.index, status=status)
                return status
            uptime = time.monotonic() - slot.started_at
            lost = sorted(slot.calls)
            slot.calls = set()
            log.warning(
                "worker_exited",
                worker=slot.index,
                status=status,
                uptime_s=round(uptime, 1),
                calls_lost=len(lost),
            )
            await self._end_lost_calls(slot, lost)
            if status == EXIT_CONFIG or not slot.ever_ready:
                self.failed_status = status if status > 0 else EXIT_FAILED
                self.request_drain(f"worker {slot.index} exited {status} before it was ready")
                return status
            delay = slot.backoff.after_exit(uptime)
            self.restarts.inc()
            log.warning("worker_restarting", worker=slot.index, delay_s=delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._drain.wait()
            if self.draining:
                return EXIT_OK

    async def _run_worker(self, slot: Slot) -> int:
        """Start the worker, serve its link until it exits; its exit status."""
        parent, child = socket.socketpair()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.worker_argv(slot.index, child.fileno()),
                pass_fds=(child.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            child.close()
        slot.proc = proc
        slot.started_at = time.monotonic()
        log.info("worker_launched", worker=slot.index, pid=proc.pid, max_calls=slot.max_calls)
        if self.draining:  # a drain began while it was starting: it drains at once
            proc.send_signal(signal.SIGTERM)
        reader, writer = await asyncio.open_connection(sock=parent, limit=LINK_LINE_LIMIT)
        try:
            async with asyncio.TaskGroup() as group:
                link = group.create_task(self._read_link(slot, reader), name="worker-link")
                status = await proc.wait()
                # Its last reports are still in the socket: read them up to the end of file.
                await asyncio.wait([link], timeout=LINK_DRAIN_S)
                link.cancel()
        finally:
            writer.close()
            slot.proc = None
            slot.state = WorkerState(running=False)
            # Cleared before the first await, so no poll in flight takes its answer for news.
            clients, slot.http, slot.admin = (slot.http, slot.admin), None, None
            for client in clients:
                if client is not None:
                    await client.aclose()
            slot.retired = merge([slot.retired, slot.last_metrics])
            slot.last_metrics = {}
        return status

    async def _read_link(self, slot: Slot, reader: asyncio.StreamReader) -> None:
        started = False
        try:
            async with asyncio.timeout(START_TIMEOUT_S) as deadline:
                async for raw in reader:
                    try:
                        message: dict[str, Any] = json.loads(raw)
                        if "started" in message:
                            self._worker_started(slot, message["started"])
                            started = True
                            deadline.reschedule(None)
                        slot.calls.update(map(str, message.get("add", ())))
                        slot.calls.difference_update(map(str, message.get("gone", ())))
                    except (ValueError, KeyError, TypeError, AttributeError) as exc:
                        log.error("worker_link_garbled", worker=slot.index, error=repr(exc))
        except TimeoutError:
            if not started and slot.proc is not None:
                log.error("worker_start_timeout", worker=slot.index, timeout_s=START_TIMEOUT_S)
                slot.proc.kill()
        except (ValueError, OSError) as exc:  # a line over the limit; a broken socket
            log.error("worker_link_failed", worker=slot.index, error=repr(exc))

    def _worker_started(self, slot: Slot, ports: dict[str, int]) -> None:
        slot.http = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{int(ports['http_port'])}",
            timeout=WORKER_HTTP_TIMEOUT_S,
        )
        slot.admin = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{int(ports['admin_port'])}",
            timeout=WORKER_HTTP_TIMEOUT_S,
        )

    async def _end_lost_calls(self, slot: Slot, call_ids: Sequence[str]) -> None:
        if not call_ids:
            return
        self.calls_lost.inc(len(call_ids))
        ended = 0
        if self.store is not None:
            try:
                ended = await self.store.end_calls(call_ids, outcome=LOST_OUTCOME)
            except Exception as exc:  # the stale-call sweep at the next start catches them
                log.error("lost_calls_not_recorded", worker=slot.index, error=repr(exc))
        log.warning(
            "worker_calls_lost",
            worker=slot.index,
            call_ids=list(call_ids),
            outcome=LOST_OUTCOME,
            records_ended=ended,
        )

    async def _poll(self) -> None:
        """Each worker's ``/readyz``, every :data:`POLL_S` (readiness, capacity, routing)."""
        while True:
            await asyncio.gather(*(self._poll_one(slot) for slot in self.slots))
            await asyncio.sleep(POLL_S)

    async def _poll_one(self, slot: Slot) -> None:
        http = slot.http
        if http is None:
            slot.state = WorkerState(running=False)
            return
        try:
            response = await http.get(READY_PATH, timeout=POLL_S * 4)
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            if slot.http is http:
                slot.state = WorkerState(
                    running=True, reason=f"not answering ({type(exc).__name__})"
                )
            return
        if slot.http is not http:
            # The worker died while we asked (its slot was reset): its answer is stale, and
            # would make the pod look ready with a worker down until the next poll.
            return
        ready = response.status_code == 200
        slot.ever_ready = slot.ever_ready or ready
        slot.state = WorkerState(
            running=True,
            reason=None if ready else str(body.get("reason", "unknown")),
            active_calls=int(body.get("active_calls", 0)),
            max_calls=int(body.get("max_concurrent_calls", slot.max_calls)),
        )

    # ── The pod's probes and metrics ─────────────────────────────────────────────────

    def http_app(self) -> Starlette:
        async def healthz(_: Request) -> Response:
            return JSONResponse(
                {"status": "ok", "workers_running": sum(s.state.running for s in self.slots)}
            )

        async def readyz(_: Request) -> Response:
            states = [slot.state for slot in self.slots]
            reason = pod_readiness(self.draining, states)
            body: dict[str, Any] = {
                "ready": reason is None,
                "active_calls": sum(s.active_calls for s in states),
                "max_concurrent_calls": self.config.limits.max_concurrent_calls,
                "workers": [
                    {
                        "worker": slot.index,
                        "running": slot.state.running,
                        "ready": slot.state.running and slot.state.reason is None,
                        "reason": slot.state.reason,
                        "active_calls": slot.state.active_calls,
                        "max_concurrent_calls": slot.max_calls,
                    }
                    for slot in self.slots
                ],
            }
            if reason is None:
                return JSONResponse(body)
            return JSONResponse({**body, "reason": reason}, status_code=503)

        async def metrics(_: Request) -> Response:
            return Response(await self.exposition(), media_type=CONTENT_TYPE_LATEST)

        return Starlette(
            routes=[
                Route(HEALTH_PATH, healthz, methods=["GET"]),
                Route(READY_PATH, readyz, methods=["GET"]),
                Route(METRICS_PATH, metrics, methods=["GET"]),
            ]
        )

    async def exposition(self) -> bytes:
        """Every worker's ``/metrics`` merged, with the dead workers' counters and our own."""

        async def scrape(slot: Slot) -> Families:
            http = slot.http
            if http is None:
                return {}
            try:
                response = await http.get(METRICS_PATH)
                response.raise_for_status()
                families = parse(response.text)
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("worker_scrape_failed", worker=slot.index, error=repr(exc))
                return {}
            if slot.http is http:  # still the same worker
                slot.last_metrics = cumulative(families)
            return families

        parts = await asyncio.gather(*(scrape(slot) for slot in self.slots))
        own = parse(generate_latest(self.registry).decode())
        return render(merge([*parts, *(slot.retired for slot in self.slots), own]))

    def admin_app(self) -> Starlette:
        return PodAdmin(self.slots, self.admin_token).app()


def _active_calls_of(slot: Slot) -> Callable[[], float]:
    return lambda: float(slot.state.active_calls)


# ── Entry point ──────────────────────────────────────────────────────────────────────────


async def supervise(config: TenantConfig, workers: int, config_path: str, log_level: str) -> int:
    """``callbridge serve`` with more than one worker (called by ``serve.main``)."""

    def worker_argv(index: int, fd: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "callbridge.service.cli",
            "serve",
            "--config",
            os.path.abspath(config_path),
            "--log-level",
            log_level,
            "--worker",
            f"{index}/{workers}/{fd}",
        ]

    # The store is opened (and migrated) here once, before any worker, so workers never race
    # to migrate it; the supervisor uses it to finalise the calls of workers that die.
    store = await _open_store(config.service)
    try:
        try:
            await store.abandon_stale(config.tenant, older_than_s=STALE_CALL_AFTER_S)
        except Exception as exc:
            log.warning("stale_call_sweep_failed", error=repr(exc))
        supervisor = Supervisor(config, workers, worker_argv, store)
        try:
            return await supervisor.run(install_signals=True)
        except ExceptionGroup as failure:
            # A fault of the supervisor itself: the workers drain (they also would on their
            # own, seeing their link close), and the reason is logged, one line per cause.
            supervisor.request_drain("the supervisor failed")
            return _report(failure)
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(15):
                await store.__aexit__(None, None, None)


__all__ = ["Supervisor", "supervise"]
