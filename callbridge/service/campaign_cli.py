"""``callbridge campaign submit FILE --config tenant.toml`` and ``campaign status ID``.

``submit`` checks every row of a CSV (header with ``number``, optional ``tz`` and ``key``;
every other column is a variable) or JSON-lines file (``{"number", "variables", "tz"}``),
prints each bad row with its line and field, and stores nothing unless every row is good
(``--skip-bad`` stores the good ones). The rows go to the tenant's record store
(``service.records_url``), where every replica with ``campaigns.enabled`` dials them.
``status`` prints the campaign's rows by state and outcome as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from sqlalchemy.exc import SQLAlchemyError

from callbridge.bridge.config import TenantConfig, config_problems, load_config
from callbridge.bridge.errors import ConfigError
from callbridge.service.campaigns import CampaignStore, parse_batch, policy_of
from callbridge.service.store import RecordStore


async def _submit(args: argparse.Namespace, config: TenantConfig, text: str) -> int:
    path = Path(args.file)
    fmt: Literal["csv", "jsonl"] = args.format or ("csv" if path.suffix == ".csv" else "jsonl")
    rows, problems = parse_batch(text, fmt)
    for problem in problems:
        print(f"{path}: {problem}", file=sys.stderr)
    if problems and not args.skip_bad:
        print(f"{path}: {len(problems)} bad row(s); nothing submitted", file=sys.stderr)
        return 2
    campaign_id = args.id or f"camp-{secrets.token_hex(4)}"
    async with RecordStore(config.service.records_url) as store:
        added = await CampaignStore(store.engine, config.tenant).submit(
            campaign_id, rows, policy_of(config)
        )
    print(json.dumps({"campaign_id": campaign_id, "rows": len(rows), "added": added}))
    return 0


async def _status(args: argparse.Namespace, config: TenantConfig) -> int:
    async with RecordStore(config.service.records_url) as store:
        status = await CampaignStore(store.engine, config.tenant).status(args.campaign_id)
    if status is None:
        print(f"no campaign {args.campaign_id!r}", file=sys.stderr)
        return 1
    print(json.dumps(status, indent=2))
    return 0


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="callbridge campaign", description=__doc__)
    actions = parser.add_subparsers(dest="action", required=True)
    submit = actions.add_parser("submit", help="check and store a batch of calls")
    submit.add_argument("file")
    submit.add_argument("--format", choices=["csv", "jsonl"], default=None)
    submit.add_argument("--id", default=None, help="campaign id (default: a new one)")
    submit.add_argument("--skip-bad", action="store_true", help="store the good rows anyway")
    status = actions.add_parser("status", help="rows by state and outcome")
    status.add_argument("campaign_id")
    for sub in (submit, status):
        sub.add_argument("--config", required=True, help="the tenant's TOML file")
    args = parser.parse_args(list(argv))
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for line in config_problems(exc):
            print(f"{args.config}: {line}", file=sys.stderr)
        return 2
    try:
        if args.action == "submit":
            text = Path(args.file).read_text(encoding="utf-8")
            return asyncio.run(_submit(args, config, text))
        return asyncio.run(_status(args, config))
    except (SQLAlchemyError, OSError) as error:
        print(f"callbridge campaign: {error}", file=sys.stderr)
        return 1
