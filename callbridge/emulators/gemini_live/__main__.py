"""Run the emulator on its own: `python -m callbridge.emulators.gemini_live --port 8766`.

Prints the base URL and the CA file, plus the env vars that point an unmodified google-genai or
ADK program at it. Serves `presets.demo_script()` until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from .presets import demo_script
from .server import GeminiLiveEmulator


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m callbridge.emulators.gemini_live", description=__doc__
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766, help="0 picks a free port")
    parser.add_argument("--burst-speed", type=float, default=4.0)
    parser.add_argument("--text-frames", action="store_true", help="JSON in text frames")
    parser.add_argument(
        "--lenient-blocking",
        action="store_true",
        help="accept audio while a BLOCKING tool call is pending (the real service closes 1008)",
    )
    parser.add_argument("--greet-on-connect", action="store_true")
    parser.add_argument("--tool", default="escalate_to_human", help="tool the script calls")
    return parser.parse_args()


async def _main(args: argparse.Namespace) -> None:
    emulator = GeminiLiveEmulator(
        script=demo_script(args.tool, greet_on_connect=args.greet_on_connect),
        burst_speed=args.burst_speed,
        binary_frames=not args.text_frames,
        strict_blocking=not args.lenient_blocking,
        host=args.host,
        port=args.port,
    )
    async with emulator:
        print(f"base_url {emulator.base_url}", flush=True)
        print(f"ca_file  {emulator.ca_file}", flush=True)
        print(
            f"env: GOOGLE_API_KEY=x GOOGLE_GEMINI_BASE_URL={emulator.base_url} "
            f"SSL_CERT_FILE={emulator.ca_file}",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()  # then `async with` closes connections and deletes the TLS files


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(_main(_parse()))


if __name__ == "__main__":
    main()
