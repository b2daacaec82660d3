"""``callbridge check-config FILE``: validate a tenant file without connecting to anything.

Prints every problem at once, one line each, starting with the setting's dotted name, and
exits 2; prints a one-line summary and exits 0 when the file would serve. Secrets come from
the environment as in production; ``--without-secrets`` fills the missing ones with
placeholders, for checking a file in CI where the real secrets are not available.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from callbridge.bridge.config import SECRET_ENV, TenantConfig, config_problems, load_config
from callbridge.bridge.errors import ConfigError

EXIT_OK = 0
EXIT_INVALID = 2

PLACEHOLDERS = {
    "TELCOFLOW_API_KEY": "placeholder-telcoflow-key",
    "TELCOFLOW_CONNECTOR_UUID": "00000000-0000-0000-0000-000000000000",
    "GEMINI_API_KEY": "placeholder-gemini-key",
}
"""What ``--without-secrets`` assumes; only secrets every deployment needs are filled."""


def summary(path: str, config: TenantConfig) -> str:
    """One line describing what would run (never a secret)."""
    model = config.model
    admin = "on" if config.service.admin_token else "off"
    fallback = f" (fallback {model.fallback_model})" if model.fallback_model else ""
    return (
        f"{path}: OK: tenant {config.tenant}, {model.backend} model {model.model}{fallback}, "
        f"up to {config.limits.max_concurrent_calls} calls, "
        f"{config.limits.model_connects_per_minute} model connects/min, "
        f"drain grace {config.limits.drain_grace_s:g} s, "
        f"http :{config.service.http_port}, admin API {admin}"
    )


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="callbridge check-config",
        description="Validate a tenant TOML file (and the environment's secrets) offline.",
    )
    parser.add_argument("file", help="the tenant's TOML file")
    parser.add_argument(
        "--without-secrets",
        action="store_true",
        help="assume placeholder values for "
        + ", ".join(sorted(PLACEHOLDERS))
        + " when they are not set",
    )
    args = parser.parse_args(list(argv))
    env = dict(os.environ)
    if args.without_secrets:
        for name, value in PLACEHOLDERS.items():
            env.setdefault(name, value)
        assert set(PLACEHOLDERS) <= set(SECRET_ENV.values())
    try:
        config = load_config(args.file, env=env, service=True)
    except ConfigError as exc:
        for line in config_problems(exc):
            print(f"{args.file}: {line}", file=sys.stderr)
        return EXIT_INVALID
    print(summary(args.file, config))
    for note in notes(config):
        print(f"{args.file}: note: {note}")
    return EXIT_OK


def notes(config: TenantConfig) -> list[str]:
    """Things that are valid but limit how the tenant may run."""
    found = []
    if config.campaigns.enabled and config.service.records_url.startswith("sqlite"):
        found.append(
            "campaigns.enabled with SQLite records: run ONE replica only (SQLite has no row "
            "locks, so two replicas could dial the same row); use PostgreSQL "
            "(service.records_url = postgresql+asyncpg://...) for more"
        )
    if config.campaigns.enabled and not config.outbound.enabled:
        found.append("campaigns.enabled without outbound.enabled: every campaign row will fail")
    return found
