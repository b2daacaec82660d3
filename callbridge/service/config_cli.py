"""``callbridge check-config FILE``: validate a tenant file without connecting to anything.

Prints every problem at once, one line each, starting with the setting's dotted name, and
exits 2; prints a one-line summary and exits 0 when the file would serve. Secrets come from
the environment as in production; ``--without-secrets`` fills the missing ones with
placeholders, for checking a file in CI where the real secrets are not available.
"""

from __future__ import annotations

import argparse
import os
import pkgutil
import sys
from collections.abc import Sequence

from callbridge.bridge.config import SECRET_ENV, TenantConfig, config_problems, load_config
from callbridge.bridge.errors import ConfigError
from callbridge.bridge.models import unknown_model_hint
from callbridge.bridge.tools import build_tools
from callbridge.service.cpus import auto_workers
from callbridge.service.workers import resolve_workers

ADK_AGENT_LOADER = "callbridge.adapters.adk.agent:load_agent"
"""What ``serve`` uses to import ``model.adk_agent`` (named, so ``bridge`` imports no SDK)."""

EXIT_OK = 0
EXIT_INVALID = 2

PLACEHOLDERS = {
    "TELCOFLOW_API_KEY": "placeholder-telcoflow-key",
    "TELCOFLOW_CONNECTOR_UUID": "00000000-0000-0000-0000-000000000000",
    "GEMINI_API_KEY": "placeholder-gemini-key",
}
"""What ``--without-secrets`` assumes; only secrets every deployment needs are filled."""


def target_problems(config: TenantConfig) -> list[str]:
    """Import every configured code target with the loaders ``serve`` uses; one line each.

    ``tools.custom`` through :func:`~callbridge.bridge.tools.build_tools`, ``model.adk_agent``
    through
    the ADK adapter's ``load_agent``: so a target ``serve`` would refuse is refused here.
    """
    problems: list[str] = []
    try:
        build_tools(config.tools, non_blocking=config.model.tools_non_blocking())
    except ConfigError as exc:
        problems += config_problems(exc)
    except Exception as exc:  # importing runs user code: anything can go wrong
        problems.append(f"tools.custom: {type(exc).__name__}: {exc}")
    if config.model.backend == "adk" and config.model.adk_agent:
        try:
            pkgutil.resolve_name(ADK_AGENT_LOADER)(config.model.adk_agent)
        except ConfigError as exc:
            problems += config_problems(exc)
        except Exception as exc:
            problems.append(f"model.adk_agent: {type(exc).__name__}: {exc}")
    return problems


def bind_addresses(config: TenantConfig) -> str:
    """Where the listeners bind (shown so nobody discovers ``0.0.0.0`` in production)."""
    service = config.service
    admin = (
        f"admin API on {service.admin_host}:{service.admin_port}"
        if service.admin_token
        else "admin API off"
    )
    return f"probes+metrics {service.http_host}:{service.http_port}, {admin}"


def summary(path: str, config: TenantConfig) -> str:
    """One line describing what would run (never a secret)."""
    model = config.model
    fallback = f" (fallback {model.fallback_model})" if model.fallback_model else ""
    where = (
        f"Vertex AI {model.project}/{model.location}"
        if model.provider == "vertex"
        else "Gemini Developer API"
    )
    return (
        f"{path}: OK: tenant {config.tenant}, {model.backend} model {model.model}{fallback} "
        f"on {where}, "
        f"up to {config.limits.max_concurrent_calls} calls, "
        f"{config.limits.model_connects_per_minute} model connects/min, "
        f"drain grace {config.limits.drain_grace_s:g} s, "
        f"{bind_addresses(config)}{_workers(config)}"
    )


def _workers(config: TenantConfig) -> str:
    """``service.workers`` when not the default one process (``auto``: what it means here)."""
    workers = config.service.workers
    if workers == 1:
        return ""
    if workers == "auto":
        return f", workers auto ({auto_workers()} on this machine)"
    return f", {workers} workers"


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
    for name in filter(None, (config.model.model, config.model.fallback_model)):
        if not config.model.caps(name).known:
            print(f"{args.file}: warning: {unknown_model_hint(name)}", file=sys.stderr)
    problems = target_problems(config)
    try:
        resolve_workers(config, auto_workers())
    except ConfigError as exc:
        problems += config_problems(exc)
    if problems:
        for line in problems:
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
