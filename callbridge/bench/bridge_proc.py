"""Our bridge as a benchmark child process: ``BridgeApp`` built from a config, as in production.

``python -m callbridge.bench.bridge_proc --config JSON`` is the ``callbridge serve`` equivalent
without the
HTTP server and the record store (neither is on the audio path). ``--config`` holds tenant
config sections (``callbridge.bench.run.bridge_config`` builds them) pointing at the emulators.

The only change from production wiring: each model session's system instruction carries the
Telcoflow call id (``callbridge.bench.load.tag_instruction``) so the benchmark can pair the model's
session with the call. ``--variant`` selects a prototype optimisation
(``callbridge.bench.variants``); a
variant with console streams also serves the operator console here and starts
``callbridge.bench.console_watch`` to watch it.

Commands: ``stats`` (call counters, warnings by code).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from callbridge.bench import variants
from callbridge.bench.load import tag_instruction
from callbridge.bench.procs import GcWatch, JsonDict, serve_parent
from callbridge.bench.stall_watch import StallWatch
from callbridge.bridge.config import TenantConfig, load_config
from callbridge.bridge.ports import ModelConnector, ModelSession, SessionRequest
from callbridge.bridge.runner import NamedConnector
from callbridge.bridge.warnings import BridgeWarning
from callbridge.service import loop
from callbridge.service.app import BridgeApp, build_connectors
from callbridge.service.console import CONSOLE_PATH, ConsoleDeps, ConsoleHub, create_console_app
from callbridge.service.logs import configure_logging

STOP_GRACE_S = 20.0
CONSOLE_TOKEN = "bench-console-token-0123456789"


class TaggingConnector:
    """Opens the wrapped connector's session with the call id in the system instruction."""

    def __init__(self, inner: ModelConnector) -> None:
        self._inner = inner

    def open(self, request: SessionRequest) -> AbstractAsyncContextManager[ModelSession]:
        tagged = tag_instruction(request.system_instruction, request.call_id)
        return self._inner.open(replace(request, system_instruction=tagged))


async def _run(config_sections: JsonDict, variant: str) -> None:
    chosen = variants.parse(variant)
    for v in chosen:
        v.config(config_sections)
    config = load_config(overrides=config_sections, env={})
    for v in chosen:
        v.patch()
    connectors = [
        NamedConnector(named.model, TaggingConnector(named.connector))
        for named in build_connectors(config)
    ]
    warnings: Counter[str] = Counter()
    gc_watch = GcWatch()
    gc_watch.install()
    stall_watch = StallWatch()

    def count_warning(warning: BridgeWarning) -> None:
        warnings[warning.code.value] += 1

    streams = max((v.console_streams for v in chosen), default=0)
    hub = ConsoleHub() if streams else None
    app = BridgeApp(
        config,
        connectors=connectors,
        warning_handlers=[count_warning],
        record_listeners=[hub] if hub is not None else [],
    )

    async def stats(_: JsonDict) -> JsonDict:
        source = app.source
        return {
            "active_calls": source.active_calls,
            "source": dict(source.stats.__dict__),
            "warnings": dict(warnings),
            "gc": gc_watch.export(),
            "stalls": stall_watch.export(),
        }

    async with asyncio.TaskGroup() as group:
        app_task = group.create_task(app.run(), name="bridge-app")
        watch_task = group.create_task(stall_watch.run(), name="stall-watch")
        async with asyncio.timeout(30):
            await app.source.ready.wait()
        for v in chosen:
            v.after_start()
        async with contextlib.AsyncExitStack() as stack:
            if hub is not None:
                await stack.enter_async_context(_console(group, app, hub, config, streams))
            await serve_parent({"pid": os.getpid(), "variant": variant}, {"stats": stats})
        app.stop_claiming()
        try:
            async with asyncio.timeout(STOP_GRACE_S):
                await asyncio.shield(app_task)
        except TimeoutError:
            app_task.cancel()
        watch_task.cancel()


@contextlib.asynccontextmanager
async def _console(
    group: asyncio.TaskGroup, app: BridgeApp, hub: ConsoleHub, config: TenantConfig, streams: int
) -> AsyncIterator[None]:
    """Serve the console from this process and let ``callbridge.bench.console_watch`` open
    ``streams``."""
    console = create_console_app(
        ConsoleDeps(
            live=app.runner.live,
            hub=hub,
            admin_token=CONSOLE_TOKEN,
            tenant=config.tenant,
            tools=config.tools,
        )
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Mount(CONSOLE_PATH, app=console)]),
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
    )
    serving = group.create_task(server.serve(sockets=[sock]), name="console-http")
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    watcher = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callbridge.bench.console_watch",
        "--url",
        url,
        "--token",
        CONSOLE_TOKEN,
        "--streams",
        str(streams),
    )
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            watcher.terminate()
        await watcher.wait()
        server.should_exit = True
        await serving
        sock.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m callbridge.bench.bridge_proc")
    parser.add_argument("--config", required=True, help="tenant config sections as JSON")
    parser.add_argument("--variant", default="default", help="see callbridge.bench.variants")
    args = parser.parse_args(argv)
    configure_logging("json", logging.WARNING)
    loop.run(_run(json.loads(args.config), args.variant))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
