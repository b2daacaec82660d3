"""``callbridge call +15551234567 --var name=Ada``: place a call through a running bridge.

The dial itself runs in the serving bridge (``POST /calls`` -> ``BridgeApp.start_dial`` ->
``BridgeApp.dial``, the same code as ``await app.dial(...)``); this command sends the request,
waits for the outcome on ``GET /dials/{id}`` and prints it. Exit status: 0 answered or
voicemail_left, 1 any other outcome, 2 a refused request (the problems name the field).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence

import httpx

DONE_OK = {"answered", "voicemail_left"}


def parse_vars(pairs: Sequence[str]) -> dict[str, str]:
    variables: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--var {pair!r}: expected NAME=VALUE")
        variables[name] = value
    return variables


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="callbridge call", description=__doc__)
    parser.add_argument("to", help="the number to call, E.164 (+15551234567)")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--instruction", default=None, help="instead of the tenant's template")
    parser.add_argument(
        "--url",
        default=os.environ.get("CALLBRIDGE_ADMIN_URL", "http://127.0.0.1:8081"),
        help="the serving bridge's admin listener (default $CALLBRIDGE_ADMIN_URL or "
        "http://127.0.0.1:8081, service.admin_port)",
    )
    parser.add_argument("--no-wait", action="store_true", help="print the dial id and return")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait")
    args = parser.parse_args(argv)
    token = os.environ.get("CALLBRIDGE_ADMIN_TOKEN", "")
    if not token:
        print("CALLBRIDGE_ADMIN_TOKEN: not set (the admin API's bearer token)", file=sys.stderr)
        return 2
    body: dict[str, object] = {"to": args.to, "variables": parse_vars(args.var)}
    if args.instruction:
        body["instruction"] = args.instruction
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=args.url, headers=headers, timeout=10) as http:
        response = http.post("/calls", json=body)
        if response.status_code != 202:
            print(f"call not placed ({response.status_code}):", file=sys.stderr)
            for problem in response.json().get("problems", [response.text]):
                print(f"  {problem}", file=sys.stderr)
            return 2
        dial_id = response.json()["dial_id"]
        if args.no_wait:
            print(dial_id)
            return 0
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            status = http.get(f"/dials/{dial_id}").json()
            if status.get("status") == "done":
                print(json.dumps(status))
                return 0 if status["outcome"] in DONE_OK else 1
            time.sleep(0.5)
    print(f"{dial_id}: no outcome after {args.timeout:g} s", file=sys.stderr)
    return 1
