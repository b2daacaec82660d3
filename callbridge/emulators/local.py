"""``callbridge emulators``: both emulators for your own ``callbridge serve``, ready to use.

Starts the Telcoflow emulator and the TLS Gemini Live emulator on fixed ports, and writes into
one folder (``--dir``, default ``.callbridge-emulators``) what ``serve`` needs to reach them:

- ``ca.pem``: the Gemini emulator's CA. The emulator makes a new CA each start, in a
  temporary folder it deletes when it stops; this copy keeps one path for ``model.ca_file``.
- ``tenant.toml``: a tenant file pointing at both emulators (``model.base_url``,
  ``model.ca_file``, ``telcoflow.base_url``); add your agent or tools to it.
- ``env``: the secrets ``serve`` reads from the environment (emulator credentials).

Then it places ``--calls`` calls (one after another, offered as soon as a bridge claims
calls), played from ``--scenario`` (the same file ``callbridge demo --scenario`` takes) or a
short default, prints each call's end, and serves until Ctrl-C (or, with
``--exit-after-calls``, exits once they ended: 0 if every call was answered)::

    callbridge emulators --calls 1 &
    set -a; . .callbridge-emulators/env; set +a
    callbridge serve --config .callbridge-emulators/tenant.toml
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from callbridge.emulators.gemini_live import GeminiLiveEmulator
from callbridge.emulators.scenario import Scenario, ScenarioError, default_scenario, load_scenario
from callbridge.emulators.stack import DEFAULT_MODEL
from callbridge.emulators.telcoflow import ConnectOutcome, TelcoflowEmulator
from callbridge.service import loop

API_KEY = "local-emulator-key"
CONNECTOR = "local-connector"
WAIT_FOREVER_S = 365 * 86400.0


def tenant_toml(telcoflow_url: str, gemini_url: str, ca_file: Path, folder: Path) -> str:
    """A tenant file for ``callbridge serve`` against the emulators (no secrets in it)."""
    return f"""\
# Written by `callbridge emulators`: a tenant served by the local emulators.
# Secrets come from the environment: `set -a; . {folder / "env"}; set +a`.
tenant = "local"

[telcoflow]
base_url = "{telcoflow_url}"

[model]
model = "{DEFAULT_MODEL}"
base_url = "{gemini_url}"
ca_file = "{ca_file}"
# Your own ADK agent instead of raw Gemini Live:
# backend = "adk"
# adk_agent = "my_package.agent:root_agent"

[service]
http_host = "127.0.0.1"
http_port = 8080
records_url = "sqlite+aiosqlite:///{folder / "records.sqlite"}"
"""


def env_file() -> str:
    return (
        f"TELCOFLOW_API_KEY={API_KEY}\nTELCOFLOW_CONNECTOR_UUID={CONNECTOR}\n"
        "GEMINI_API_KEY=local-emulator-gemini-key\n"
    )


def write_files(folder: Path, telcoflow_url: str, gemini_url: str, gemini_ca: str) -> Path:
    """Write ``ca.pem``, ``env`` and ``tenant.toml`` into ``folder``; returns the tenant file."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_file = folder / "ca.pem"
    shutil.copyfile(gemini_ca, ca_file)
    (folder / "env").write_text(env_file())
    tenant = folder / "tenant.toml"
    tenant.write_text(tenant_toml(telcoflow_url, gemini_url, ca_file, folder))
    return tenant


async def run(args: argparse.Namespace, scenario: Scenario) -> int:
    folder: Path = args.dir.absolute()
    gemini = GeminiLiveEmulator(script=scenario.script(), port=args.gemini_port)
    telco = TelcoflowEmulator(API_KEY, CONNECTOR, port=args.telcoflow_port)
    async with gemini, telco:
        tenant = write_files(folder, telco.base_url, gemini.base_url, gemini.ca_file)
        ca_file = folder / "ca.pem"
        print(f"Telcoflow emulator  {telco.base_url}  (connector {CONNECTOR})")
        print(f"Gemini emulator     {gemini.base_url}  (CA {ca_file})")
        print(f"Wrote {tenant} and {folder / 'env'}. In another terminal:\n")
        print(f"  set -a; . {folder / 'env'}; set +a")
        print(f"  callbridge serve --config {tenant}\n", flush=True)
        stop = asyncio.Event()
        running = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            running.add_signal_handler(sig, stop.set)
        answered = 0
        for n in range(1, args.calls + 1):
            call = telco.place_call(
                scenario.caller(args.rate), connect_outcomes=[ConnectOutcome.answered(1.0)]
            )
            print(f"call {n}: placed, waiting for a bridge to claim it", flush=True)
            ended = asyncio.ensure_future(call.ended(timeout=WAIT_FOREVER_S))
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({ended, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not ended.done():
                ended.cancel()
                break
            record = ended.result()
            answered += record.answered_at is not None
            commands = ", ".join(c.name for c in record.commands) or "none"
            print(f"call {n}: ended ({record.end_reason}); commands: {commands}", flush=True)
        if not args.exit_after_calls:
            await stop.wait()
        return 0 if answered == args.calls else 1


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="callbridge emulators",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dir", type=Path, default=Path(".callbridge-emulators"))
    parser.add_argument("--telcoflow-port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--gemini-port", type=int, default=8766, help="0 picks a free port")
    parser.add_argument("--scenario", type=Path, default=None, help="a scenario TOML file")
    parser.add_argument("--calls", type=int, default=1, help="calls to place, one at a time")
    parser.add_argument("--rate", type=int, choices=[8000, 16000, 24000], default=16000)
    parser.add_argument("--exit-after-calls", action="store_true")
    args = parser.parse_args(argv)
    try:
        scenario = default_scenario() if args.scenario is None else load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"callbridge emulators: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    return loop.run(run(args, scenario))
