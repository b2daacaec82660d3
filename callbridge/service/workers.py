"""``service.workers``: the decisions of a multi-process tenant, pure and table-tested.

- :func:`resolve_workers`: ``"auto"`` or a number, checked against the call limit.
- :func:`shares`: a total split over workers, summing exactly to it.
- :func:`worker_config`: one worker's tenant config (loopback listeners on OS-chosen ports,
  its share of every per-process limit, the campaign dialler in worker 0 only).
- :class:`RestartBackoff`: how long to wait before restarting a worker that died.
- :func:`pod_readiness`: the one ``/readyz`` answer from every worker's own.

The processes themselves are run by :mod:`callbridge.service.supervisor`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from callbridge.bridge.config import TenantConfig
from callbridge.bridge.errors import ConfigError

LOOPBACK = "127.0.0.1"


def resolve_workers(config: TenantConfig, cores: int) -> int:
    """How many bridge processes to run; ``cores`` is what ``"auto"`` means here.

    ``"auto"`` is capped by ``limits.max_concurrent_calls`` (every worker needs at least one
    call); an explicit number above it is a configuration error naming both settings.
    """
    total = config.limits.max_concurrent_calls
    wanted = config.service.workers
    if wanted == "auto":
        return max(1, min(cores, total))
    if wanted > total:
        raise ConfigError(
            f"service.workers: {wanted} workers cannot share limits.max_concurrent_calls = "
            f"{total} (each worker needs at least one call); lower service.workers or raise "
            f"the limit"
        )
    return wanted


def shares(total: int, workers: int) -> list[int]:
    """``total`` split over ``workers``: equal parts, the remainder one each to the first
    workers (10 over 3 is ``[4, 3, 3]``), so the shares sum exactly to ``total``."""
    if workers < 1:
        raise ValueError("workers must be >= 1")
    base, extra = divmod(total, workers)
    return [base + (1 if i < extra else 0) for i in range(workers)]


def worker_config(config: TenantConfig, index: int, workers: int) -> TenantConfig:
    """Worker ``index``'s config: per-process limits divided, listeners private.

    Every limit that a single process enforces on its own is split, so ``workers`` processes
    together keep the tenant's configured totals: ``limits.max_concurrent_calls``,
    ``limits.model_connects_per_minute`` (and an explicit ``model_connects_burst``) and
    ``outbound.max_concurrent_calls`` (each share at least 1). The campaign dialler runs in
    worker 0 only, so ``campaign.calls_per_minute`` is not multiplied. Each worker's probes,
    metrics and admin API listen on loopback ports the OS picks; only the supervisor's
    listeners are public.
    """

    def share(total: int) -> int:
        return max(1, shares(total, workers)[index])

    limits = config.limits
    burst = limits.model_connects_burst
    service = config.service.model_copy(
        update={
            "http_host": LOOPBACK,
            "http_port": 0,
            "admin_host": LOOPBACK,
            "admin_port": 0,
            "workers": 1,
        }
    )
    return config.model_copy(
        update={
            "limits": limits.model_copy(
                update={
                    "max_concurrent_calls": shares(limits.max_concurrent_calls, workers)[index],
                    "model_connects_per_minute": share(limits.model_connects_per_minute),
                    "model_connects_burst": None if burst is None else share(burst),
                }
            ),
            "outbound": config.outbound.model_copy(
                update={"max_concurrent_calls": share(config.outbound.max_concurrent_calls)}
            ),
            "campaigns": config.campaigns.model_copy(
                update={"enabled": config.campaigns.enabled and index == 0}
            ),
            "service": service,
        }
    )


@dataclass
class RestartBackoff:
    """Delay before restarting a worker: ``first_s`` doubling per quick death, capped at
    ``max_s``; a worker that stayed up ``stable_s`` starts the sequence over."""

    first_s: float = 0.5
    max_s: float = 30.0
    stable_s: float = 60.0
    _next: float = 0.0

    def after_exit(self, uptime_s: float) -> float:
        if uptime_s >= self.stable_s or self._next == 0.0:
            self._next = self.first_s
        else:
            self._next = min(self.max_s, self._next * 2)
        return self._next


@dataclass(frozen=True)
class WorkerState:
    """One worker as the supervisor last saw it (its ``/readyz``)."""

    running: bool
    reason: str | None = None
    """``None`` when the worker is ready, else its ``/readyz`` reason."""
    active_calls: int = 0
    max_calls: int = 0


def pod_readiness(draining: bool, workers: Sequence[WorkerState]) -> str | None:
    """``None`` when the pod is ready, else why.

    Ready when every worker is running and ready, except that a worker at capacity is fine
    while another has room (its competing consumers take the calls): the pod is
    ``at_capacity`` only when all are. A worker that is restarting, or unready for any other
    reason, makes the pod unready (``worker N: <reason>``): it is serving less than it should.
    """
    if draining:
        return "draining"
    for index, state in enumerate(workers):
        if not state.running:
            return f"worker {index}: not running"
        if state.reason is not None and state.reason != "at_capacity":
            return f"worker {index}: {state.reason}"
    if workers and all(state.reason == "at_capacity" for state in workers):
        return "at_capacity"
    return None
