"""``callbridge`` command line: demo, emulators, serve, check-config, calls, call, campaign,
bench, soak, bench-record-hour.

Each subcommand's work lives in its own module, imported only when that subcommand runs,
so ``callbridge check-config`` stays fast and never touches the network.
"""

from __future__ import annotations

import argparse
import pkgutil
import sys
from collections.abc import Callable, Sequence

from callbridge import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("callbridge.emulators.demo:main", "run a whole bridged call on the local emulators"),
    "emulators": ("callbridge.emulators.local:main", "run both emulators for your own `serve`"),
    "serve": ("callbridge.service.serve:main", "serve calls for one tenant (real endpoints)"),
    "check-config": (
        "callbridge.service.config_cli:main",
        "validate a tenant config without connecting",
    ),
    "calls": ("callbridge.service.store_cli:main", "list, show or erase recorded calls"),
    "call": (
        "callbridge.service.call_cli:main",
        "place an outbound call through a running bridge",
    ),
    "campaign": (
        "callbridge.service.campaign_cli:main",
        "submit a batch of calls, or show its status",
    ),
    "bench": ("callbridge.bench.run:main", "benchmark: calls per core, latency, barge-in, memory"),
    "soak": ("callbridge.bench.soak:main", "soak: thousands of calls through one process"),
    "bench-record-hour": (
        "callbridge.bench.record_hour:main",
        "one long recorded call: bridge RSS, recording cross-correlated",
    ),
}


def _load(target: str) -> Callable[[Sequence[str]], int]:
    function: Callable[[Sequence[str]], int] = pkgutil.resolve_name(target)
    return function


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="callbridge",
        description="Bridge Telcoflow phone calls to Gemini Live or a Google ADK agent.",
    )
    parser.add_argument("command", choices=sorted(COMMANDS), help="what to do")
    parser.add_argument("--version", action="version", version=f"callbridge {__version__}")
    epilog = "\n".join(f"  {name:<18} {text}" for name, (_, text) in sorted(COMMANDS.items()))
    parser.epilog = "commands:\n" + epilog
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    if argv[:1] == ["--version"]:
        print(f"callbridge {__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    args, rest = parser.parse_known_args(argv[:1])
    return _load(COMMANDS[args.command][0])(rest + argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
