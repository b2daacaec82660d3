"""``callbridge serve``: one tenant's bridge as a long-running service.

One event loop, one ``asyncio.TaskGroup``: the bridge (Telcoflow call source + runner), the
HTTP server (uvicorn serving ``callbridge.service.http``) and the drain guard. Model connectors are
wrapped with the tenant's admission limiter here, at the composition edge, so the runner
never knows about rate limits.

Shutdown (what Kubernetes does on a rollout or scale-down):

1. SIGTERM (or a first SIGINT): ``/readyz`` turns 503 at once and nothing new is claimed;
   other replicas on the same connector take the new calls.
2. Live calls go on until they end by themselves, for at most ``limits.drain_grace_s``.
3. Then whatever remains is cancelled, which hangs each call up cleanly (``disconnect``),
   and the process exits 0. ``terminationGracePeriodSeconds`` must exceed the grace.

A second signal during a drain (SIGINT or SIGTERM, in any order) exits at once (status 130).

After the calls, the record writer gets ``service.records_flush_timeout_s`` for its final
flush; whatever it cannot write by then (database down, disk full) is logged
(``record_entries_lost_at_shutdown``) and the process still exits 0 within the grace.

Two listeners: probes and metrics on ``service.http_host:http_port``; the admin API and the
operator console (``/console``) on ``service.admin_host:admin_port`` (loopback by default),
each bounded by ``callbridge.service.http_guard``.

With ``service.workers`` > 1 this command becomes a supervisor over that many bridge
processes behind the same two listeners (:mod:`callbridge.service.supervisor`); each worker
is this same command started with ``--worker INDEX/COUNT/FD`` and runs exactly the path above
on loopback ports, with its share of the limits (:mod:`callbridge.service.workers`).

Exit status: 0 after a drain, 1 when the bridge fails (e.g. Telcoflow refused the
credentials), 2 for a configuration problem (one line per problem, naming the setting).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import structlog
import uvicorn
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp

from callbridge.adapters.tracing import CallTracer, build_tracer
from callbridge.bridge.config import (
    SECRET_FIELDS,
    ServiceSettings,
    TenantConfig,
    config_problems,
    load_config,
)
from callbridge.bridge.errors import ConfigError
from callbridge.bridge.model_health import ModelHealth
from callbridge.bridge.outbound import DialResult
from callbridge.bridge.record import RecordListener
from callbridge.bridge.runner import NamedConnector
from callbridge.bridge.warnings import BridgeWarning, WarningSink
from callbridge.service import loop
from callbridge.service.admission import AdmissionStats, admit_all
from callbridge.service.app import BridgeApp, build_connectors
from callbridge.service.campaign_runner import row_finished
from callbridge.service.campaigns import ClaimedRow, RowState, policy_of
from callbridge.service.console import CONSOLE_PATH, ConsoleDeps, ConsoleHub, create_console_app
from callbridge.service.cpus import auto_workers
from callbridge.service.delivery import WarningHandler, log_warning
from callbridge.service.health_metrics import register_gauges
from callbridge.service.http import (
    AdminGate,
    HttpDeps,
    create_admin_app,
    create_http_app,
    readiness,
)
from callbridge.service.http_guard import BodyLimit, GuardStats, HttpLimits, guarded_protocol
from callbridge.service.logs import configure_logging, register_secrets, safe_url
from callbridge.service.metrics import BridgeMetrics
from callbridge.service.retention import purge_forever
from callbridge.service.store import RecordStore
from callbridge.service.webhook import WebhookDelivery
from callbridge.service.workers import resolve_workers, worker_config

if TYPE_CHECKING:
    from callbridge.service.worker_link import WorkerLink

log = structlog.get_logger("callbridge.service")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130

STORE_OPEN_TIMEOUT_S = 15.0
"""Opening (or disposing of) the record store: a database that never answers is an error."""

STALE_CALL_AFTER_S = 900.0
"""An ``in_progress`` row not written for this long, found at start, is ``abandoned``."""


class _LateSink:
    """A warning sink whose target (the app's hub) exists only after the app is built."""

    def __init__(self) -> None:
        self.target: WarningSink | None = None

    def submit(self, warning: BridgeWarning) -> None:
        if self.target is not None:
            self.target.submit(warning)
        else:  # pragma: no cover - the target is set before any call can arrive
            log_warning(warning)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the service owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def release_listeners(
    loop: asyncio.AbstractEventLoop, signals_installed: bool, *socks: socket.socket
) -> None:
    """Undo what a serving process took at start: its signal handlers and listening sockets."""
    if signals_installed:
        loop.remove_signal_handler(signal.SIGTERM)
        loop.remove_signal_handler(signal.SIGINT)
    for sock in socks:
        sock.close()


def bind_listener(host: str, port: int, setting: str = "service.http_port") -> socket.socket:
    """A listening socket, or a :class:`ConfigError` naming the setting to fix."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"{setting}: cannot listen on {host}:{port}: {exc.strerror}") from None
    # Listening now (not when uvicorn starts) so the port is reachable the moment it is
    # logged: connections wait in the backlog until the server accepts them.
    sock.listen(128)
    sock.setblocking(False)
    return sock


def embedded_server(app: ASGIApp, limits: HttpLimits, stats: GuardStats) -> _EmbeddedServer:
    """uvicorn for ``app`` inside our own loop, behind the HTTP guard's limits."""
    return _EmbeddedServer(
        uvicorn.Config(
            BodyLimit(app, max_bytes=limits.max_body_bytes, stats=stats),
            http=guarded_protocol(limits, stats),
            ws="none",
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
            timeout_keep_alive=5,
            limit_concurrency=limits.max_connections,
        )
    )


class Service:
    """The bridge, its HTTP endpoints and its drain, for one tenant."""

    def __init__(
        self,
        config: TenantConfig,
        *,
        connectors: Sequence[NamedConnector] | None = None,
        warning_handlers: Iterable[WarningHandler] = (),
        record_listeners: Iterable[RecordListener] = (),
        store: RecordStore | None = None,
        admin_routes: Sequence[BaseRoute] = (),
        tracer: CallTracer | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.tracer = tracer if tracer is not None else build_tracer(config.tracing)
        limits = config.limits
        self.metrics = BridgeMetrics(config.tenant)
        self.model_health = ModelHealth(
            failures_unready=limits.model_failures_unready,
            retry_after_s=limits.model_retry_after_s,
        )
        named = list(connectors) if connectors is not None else build_connectors(config)
        late = _LateSink()
        self.console_hub = ConsoleHub()
        wrapped, self.limiter, self.admission = admit_all(
            [n.connector for n in named],
            per_minute=limits.model_connects_per_minute,
            burst=limits.connect_burst(),
            max_wait_s=limits.admission_wait_s,
            sink=late,
        )
        hooks = _webhook(config)
        self._row_hooks = hooks  # finished campaign rows go to the same signed webhook
        self.app = BridgeApp(
            config,
            connectors=[NamedConnector(n.model, w) for n, w in zip(named, wrapped, strict=True)],
            warning_handlers=[
                log_warning,
                self.metrics.on_warning,
                *warning_handlers,
                *hooks,
            ],
            record_listeners=[
                self.metrics,
                self.model_health,
                self.console_hub,
                *record_listeners,
                *([store.listener()] if store is not None else []),
                *([self.tracer] if self.tracer is not None else []),
            ],
            on_call_finished=self.metrics.on_finished,
            unready=self.model_health.reason,
            campaign_engine=store.engine if store is not None else None,
            on_campaign_row=self._campaign_row,
        )
        late.target = self.app.warnings
        source = self.app.source
        admission: AdmissionStats = self.admission
        unready = [self.model_health.reason]
        self.metrics.track(
            active_calls=lambda: source.active_calls,
            max_calls=limits.max_concurrent_calls,
            ready=lambda: readiness(source, unready) is None,
            draining=lambda: source.draining,
            connected=lambda: source.connected,
            admission_delayed=lambda: admission.delayed,
            admission_refused=lambda: admission.refused,
        )
        admin = config.service.admin_token
        deps = HttpDeps(
            source=source,
            live=self.app.runner.live,
            metrics=self.metrics,
            admin_token=admin.get_secret_value() if admin else None,
            max_concurrent_calls=limits.max_concurrent_calls,
            full_numbers=config.service.log_full_numbers,
            unready=unready,
            store_health=store.health if store is not None else None,
            dialer=self.app if config.outbound.enabled else None,
            campaign_policy=policy_of(config),
        )
        self.gate = AdminGate(deps.admin_token)
        self.http = create_http_app(deps)
        # The operator console shares the admin listener (loopback by default), never the
        # probes and metrics one; it does its own session auth and shares the gate's throttle.
        console = Mount(
            CONSOLE_PATH,
            app=create_console_app(
                ConsoleDeps(
                    live=self.app.runner.live,
                    hub=self.console_hub,
                    admin_token=deps.admin_token,
                    tenant=config.tenant,
                    tools=config.tools,
                    full_numbers=config.service.log_full_numbers,
                    store=store,
                    replica=socket.gethostname(),
                    throttle=self.gate.throttle,
                )
            ),
        )
        self.admin_http = create_admin_app(
            deps, gate=self.gate, extra_routes=[console, *admin_routes]
        )
        svc = config.service
        self.http_limits = HttpLimits(
            max_connections=svc.http_max_connections,
            read_timeout_s=svc.http_read_timeout_s,
            max_body_bytes=svc.http_max_body_bytes,
        )
        self.guards = {"http": GuardStats("http"), "admin": GuardStats("admin")}
        self._register_health_gauges()
        self.port: int | None = None
        self.admin_port: int | None = None
        self.started = asyncio.Event()
        self._drain = asyncio.Event()
        self._interrupts = 0
        self.hung_up_at_grace = 0

    def _register_health_gauges(self) -> None:
        store, health, gate = self.store, self.model_health, self.gate
        gauges = {
            "model_available": ("0 while the model is unreachable.", lambda: float(health.ready())),
            "model_failures_in_a_row": (
                "Calls in a row that found no model.",
                lambda: float(health.failures_in_a_row),
            ),
            "admin_auth_failures": (
                "Failed admin authentications since start.",
                lambda: float(gate.throttle.failures),
            ),
        }
        for name, stats in self.guards.items():
            gauges |= _guard_gauges(name, stats)
        if store is not None:
            gauges |= {
                "records_store_ok": (
                    "1 while the record writer's last write succeeded.",
                    lambda: float(store.healthy),
                ),
                "records_pending": ("Record entries not yet written.", lambda: store.pending),
                "records_dropped": ("Entries dropped from a full queue.", lambda: store.dropped),
                "records_lost": (
                    "Entries the store rejected or shutdown lost.",
                    lambda: store.lost,
                ),
                "records_errors": ("Failed record writes.", lambda: store.errors),
            }
        register_gauges(self.metrics.registry, gauges)

    # ── Control ──────────────────────────────────────────────────────────────────────

    def request_drain(self, why: str) -> None:
        """Stop claiming now (readiness turns false), then drain; idempotent."""
        if self._drain.is_set():
            return
        self.app.stop_claiming()
        self._drain.set()
        log.info(
            "drain_requested",
            why=why,
            active_calls=self.app.source.active_calls,
            grace_s=self.config.limits.drain_grace_s,
        )

    @property
    def draining(self) -> bool:
        return self._drain.is_set()

    def _on_sigterm(self) -> None:
        self._on_signal("SIGTERM")

    def _on_sigint(self) -> None:
        self._on_signal("SIGINT")

    def _on_signal(self, name: str) -> None:
        """The first SIGTERM or SIGINT drains; a second one, of either kind, exits at once."""
        self._interrupts += 1
        if self._interrupts == 1:
            self.request_drain(f"{name} (send it again, or press Ctrl-C, to exit at once)")
            return
        log.warning("forced_exit", signal=name, active_calls=self.app.source.active_calls)
        with contextlib.suppress(Exception):
            sys.stderr.flush()
            sys.stdout.flush()
        os._exit(EXIT_INTERRUPTED)

    # ── Running ──────────────────────────────────────────────────────────────────────

    def _bind(self, host: str, port: int, setting: str = "service.http_port") -> socket.socket:
        return bind_listener(host, port, setting)

    def _campaign_row(self, row: ClaimedRow, result: DialResult, state: RowState) -> None:
        self.metrics.campaign_rows.labels(outcome=result.outcome.value, state=state).inc()
        event = row_finished(
            self.config.tenant,
            row,
            result,
            state,
            full_number=self.config.service.log_full_numbers,
        )
        for hook in self._row_hooks:
            hook(event)

    def _server(self, app: ASGIApp, name: str) -> _EmbeddedServer:
        return embedded_server(app, self.http_limits, self.guards[name])

    async def run(self, *, install_signals: bool = False) -> int:
        """Serve until drained; returns the exit status."""
        svc = self.config.service
        sock = self._bind(svc.http_host, svc.http_port)
        self.port = int(sock.getsockname()[1])
        try:
            admin_sock = self._bind(svc.admin_host, svc.admin_port, "service.admin_port")
        except ConfigError:
            sock.close()
            raise
        self.admin_port = int(admin_sock.getsockname()[1])
        server = self._server(self.http, "http")
        admin_server = self._server(self.admin_http, "admin")
        loop = asyncio.get_running_loop()
        if install_signals:
            loop.add_signal_handler(signal.SIGTERM, self._on_sigterm)
            loop.add_signal_handler(signal.SIGINT, self._on_sigint)
        failure: ExceptionGroup[Exception] | None = None
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(server.serve(sockets=[sock]), name="http")
                group.create_task(admin_server.serve(sockets=[admin_sock]), name="admin-http")
                writer = (
                    group.create_task(self.store.run(), name="record-writer")
                    if self.store is not None
                    else None
                )
                privacy = self.config.privacy
                retention = (
                    group.create_task(purge_forever(self.store, privacy), name="records-purge")
                    if self.store is not None
                    and (
                        privacy.call_retention_days is not None
                        or privacy.transcript_retention_days is not None
                    )
                    else None
                )
                bridge = group.create_task(self.app.run(), name="bridge")
                guard = group.create_task(self._drain_guard(bridge), name="drain-guard")
                log.info(
                    "service_started",
                    http_host=svc.http_host,
                    http_port=self.port,
                    admin_host=svc.admin_host,
                    admin_port=self.admin_port,
                    max_concurrent_calls=self.config.limits.max_concurrent_calls,
                    admin_api=svc.admin_token is not None,
                )
                self.started.set()
                await asyncio.wait([bridge])
                guard.cancel()
                if retention is not None:
                    retention.cancel()
                server.should_exit = True
                admin_server.should_exit = True
                if self.store is not None and writer is not None:
                    await self._stop_writer(writer)
        except ExceptionGroup as group_error:
            failure = group_error
        finally:
            release_listeners(loop, install_signals, sock, admin_sock)
            if self.tracer is not None:
                # Bounded by tracing.export_timeout_s; off the loop, which has stopped serving.
                await asyncio.to_thread(self.tracer.close)
        if failure is not None:
            return _report(failure)
        log.info("service_stopped", hung_up_at_grace=self.hung_up_at_grace)
        return EXIT_OK

    async def _stop_writer(self, writer: asyncio.Task[None]) -> None:
        """Let the writer commit what is queued, for at most the flush deadline."""
        assert self.store is not None
        self.store.stop()
        deadline = self.config.service.records_flush_timeout_s
        await asyncio.wait([writer], timeout=deadline)
        if not writer.done():
            log.warning(
                "record_writer_stopped_at_deadline",
                deadline_s=deadline,
                pending=self.store.pending,
            )
            writer.cancel()

    async def _drain_guard(self, bridge: asyncio.Task[None]) -> None:
        """After a drain request, give live calls the grace period, then hang up the rest."""
        await self._drain.wait()
        await asyncio.sleep(self.config.limits.drain_grace_s)
        if not bridge.done():
            self.hung_up_at_grace = self.app.source.active_calls
            log.warning("drain_grace_over", hanging_up=self.hung_up_at_grace)
            bridge.cancel()


def _guard_gauges(name: str, stats: GuardStats) -> dict[str, tuple[str, Callable[[], float]]]:
    return {
        f"{name}_connections_refused": (
            f"{name} listener: connections closed at the cap.",
            lambda: float(stats.refused_connections),
        ),
        f"{name}_read_timeouts": (
            f"{name} listener: requests not received in time.",
            lambda: float(stats.read_timeouts),
        ),
        f"{name}_bodies_refused": (
            f"{name} listener: bodies over the limit.",
            lambda: float(stats.bodies_refused),
        ),
    }


def _leaves(group: BaseExceptionGroup[Exception]) -> list[Exception]:
    out: list[Exception] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def _report(failure: ExceptionGroup[Exception]) -> int:
    """Log why the service stopped, one line per cause; the exit status says what kind."""
    status = EXIT_FAILED
    for exc in _leaves(failure):
        if isinstance(exc, ConfigError):
            status = EXIT_CONFIG
            for line in config_problems(exc):
                log.error("config_error", problem=line)
        else:
            log.error("service_failed", error=f"{type(exc).__name__}: {exc}")
    return status


# ── Command line ─────────────────────────────────────────────────────────────────────────


def _print_problems(problems: Sequence[str]) -> None:
    for line in problems:
        print(f"callbridge serve: config error: {line}", file=sys.stderr)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="callbridge serve", description="Serve calls for one tenant until SIGTERM."
    )
    parser.add_argument(
        "--config",
        default=os.environ.get("CALLBRIDGE_CONFIG"),
        help="the tenant's TOML file (default: $CALLBRIDGE_CONFIG)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    # Set by the supervisor on the worker processes it starts (service.workers > 1).
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(list(argv))
    if not args.config:
        _print_problems(["--config: no tenant file given (or set CALLBRIDGE_CONFIG)"])
        return EXIT_CONFIG
    try:
        config = load_config(args.config, service=True)
        workers = 1 if args.worker else resolve_workers(config, auto_workers())
    except ConfigError as exc:
        _print_problems(config_problems(exc))
        return EXIT_CONFIG
    configure_logging(config.service.log_format, getattr(logging, args.log_level.upper()))
    register_secrets(_secret_values(config))
    structlog.contextvars.bind_contextvars(tenant=config.tenant)
    try:
        if args.worker:
            from callbridge.service.worker_link import WorkerLink, parse_worker_arg

            index, count, fd = parse_worker_arg(args.worker)
            structlog.contextvars.bind_contextvars(worker=index)
            return loop.run(_serve(worker_config(config, index, count), link=WorkerLink(fd)))
        if workers > 1:
            from callbridge.service.supervisor import supervise

            return loop.run(supervise(config, workers, args.config, args.log_level))
        return loop.run(_serve(config))
    except ConfigError as exc:
        _print_problems(config_problems(exc))
        return EXIT_CONFIG
    except KeyboardInterrupt:  # pragma: no cover - SIGINT before the handlers were installed
        return EXIT_INTERRUPTED


def _secret_values(config: TenantConfig) -> list[str | None]:
    """Every configured secret's value, and passwords in configured URLs (for redaction)."""
    values: list[str | None] = []
    for section, key in SECRET_FIELDS:
        value = getattr(getattr(config, section), key)
        values.append(value.get_secret_value() if value is not None else None)
    for url in (
        config.warnings.webhook_url,
        config.service.records_url,
        config.model.adk_session_db,
        config.telcoflow.base_url,
    ):
        if url:
            with contextlib.suppress(ValueError):
                values.append(urlsplit(url).password)
    return values


async def _open_store(service_settings: ServiceSettings) -> RecordStore:
    """The record store, or one clear line naming the setting (no 100-line traceback)."""
    store = RecordStore(
        service_settings.records_url,
        full_numbers=service_settings.log_full_numbers,
    )
    try:
        async with asyncio.timeout(STORE_OPEN_TIMEOUT_S):
            return await store.__aenter__()
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "timed out"
        raise ConfigError(
            f"service.records_url: cannot open the record store at "
            f"{safe_url(service_settings.records_url)}: {type(exc).__name__}: {reason}"
        ) from None


async def _serve(config: TenantConfig, link: WorkerLink | None = None) -> int:
    service = config.service
    # Records are written as the call goes, so a crash loses nothing already known.
    store = await _open_store(service)
    status = EXIT_FAILED
    try:
        try:
            await store.abandon_stale(config.tenant, older_than_s=STALE_CALL_AFTER_S)
        except Exception as exc:  # a sweep that fails must not stop the service
            log.warning("stale_call_sweep_failed", error=repr(exc))
        served = Service(config, store=store)
        if link is None:
            status = await served.run(install_signals=True)
        else:
            async with asyncio.TaskGroup() as group:
                reporting = group.create_task(link.run(served), name="worker-link")
                status = await served.run(install_signals=True)
                reporting.cancel()
    finally:
        lost = await store.close_within(service.records_flush_timeout_s)
        try:
            async with asyncio.timeout(STORE_OPEN_TIMEOUT_S):
                await store.__aexit__(None, None, None)
        except Exception as exc:
            log.error("record_store_close_failed", error=repr(exc), entries_lost=lost)
    return status


def _webhook(config: TenantConfig) -> list[WebhookDelivery]:
    """The tenant's signed warning webhook, if configured (the hub runs its worker)."""
    webhook = WebhookDelivery.from_settings(config.warnings)
    return [webhook] if webhook is not None else []
