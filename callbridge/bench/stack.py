"""Both emulators and one bridge, each in its own pinned process: the benchmark's (and the
soak's) test bench.

``ProcessStack`` starts the Gemini Live emulator and the Telcoflow emulator on the emulators'
core, then the bridge under test (ours, or the reference) on the bridge's core, pointed at
them. Use it as ``async with``; ``stack.telco``, ``stack.gemini`` and ``stack.bridge`` are the
:class:`~callbridge.bench.procs.Child` handles (commands, CPU and memory samples).
"""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from callbridge.bench.cpu_limit import PERIOD_US, CpuController, CpuLimit
from callbridge.bench.load import TOOL_NAME
from callbridge.bench.procs import RT_PRIORITY, Child, CorePlan, JsonDict, plan_cores
from callbridge.bridge.config import LimitSettings

BridgeKind = Literal["ours", "reference"]


def bridge_config(
    telco: JsonDict, gemini: JsonDict, *, calls: int, call_rate: int
) -> dict[str, Any]:
    """Tenant config sections for our bridge: production defaults, pointed at the emulators.

    Only limits change: capacity for every call, and no connect-rate throttling (the benchmark
    measures the audio path, not the admission policy).
    """
    limits: dict[str, Any] = {
        "max_concurrent_calls": calls + 10,
        "model_connects_per_minute": 1_000_000,
    }
    if "model_connects_burst" in LimitSettings.model_fields:
        limits["model_connects_burst"] = calls + 10
    return {
        "tenant": "bench",
        "telcoflow": {
            "base_url": telco["base_url"],
            "api_key": telco["api_key"],
            "connector_uuid": telco["connector_uuid"],
        },
        "model": {
            "api_key": "emulator-key",
            "base_url": gemini["base_url"],
            "ca_file": gemini["ca_file"],
        },
        "audio": {"call_rate": call_rate},
        "tools": {"custom": {TOOL_NAME: "callbridge.bench.load:lookup_order"}},
        "limits": limits,
    }


@dataclass
class StackOptions:
    bridge: BridgeKind = "ours"
    calls: int = 10
    call_rate: int = 16000
    variant: str = "default"
    burst_speed: float = 4.0
    nice: int | None = -10
    """Scheduling priority of every benchmark process (root only): on a shared machine it keeps
    other work from taking the benchmark's cores; ``None`` leaves priorities alone."""
    realtime: bool = False
    """Run every benchmark process SCHED_RR (root only): on a busy shared machine, the only way
    to give the bridge its core whenever it wants it. Other work keeps the kernel's RT-throttle
    slice (5 %) of a saturated core."""
    cores: CorePlan = field(default_factory=plan_cores)
    cpu_quota: float | None = None
    """Cores' worth of CPU the bridge may use per CFS period (a Kubernetes CPU limit), on top
    of its pinned core; ``None``: unlimited. Needs ``cpu_controller``."""
    cpu_period_us: int = PERIOD_US
    cpu_controller: CpuController | None = None


class ProcessStack:
    """Emulators + one bridge in pinned processes, logs under ``workdir``."""

    def __init__(self, options: StackOptions, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        self._exit = AsyncExitStack()
        self.gemini: Child | None = None
        self.telco: Child | None = None
        self.bridge: Child | None = None
        self.cpu_limit: CpuLimit | None = None
        """The bridge's CPU-limited cgroup (removed when the stack closes), with a quota."""

    async def __aenter__(self) -> ProcessStack:
        opts = self.options
        emu_cores = opts.cores.emulator_affinity
        try:
            self.gemini = await self._exit.enter_async_context(
                Child(
                    "gemini-emulator",
                    "callbridge.bench.emu_gemini",
                    ["--burst-speed", str(opts.burst_speed)],
                    cores=emu_cores,
                    log_path=self.workdir / "gemini.log",
                    nice=opts.nice,
                    realtime=opts.realtime,
                )
            )
            self.telco = await self._exit.enter_async_context(
                Child(
                    "telcoflow-emulator",
                    "callbridge.bench.emu_telcoflow",
                    [],
                    cores=emu_cores,
                    log_path=self.workdir / "telcoflow.log",
                    nice=opts.nice,
                    realtime=opts.realtime,
                )
            )
            if opts.cpu_quota is not None:
                if opts.cpu_controller is None:
                    raise ValueError("cpu_quota needs cpu_controller (cpu_limit.detect())")
                # Entered before the bridge, so it is removed after the bridge has stopped.
                self.cpu_limit = self._exit.enter_context(
                    CpuLimit(
                        opts.cpu_controller,
                        opts.cpu_quota,
                        period_us=opts.cpu_period_us,
                        nice=opts.nice,
                    )
                )
            self.bridge = await self._exit.enter_async_context(self._bridge_child())
        except BaseException:
            await self._exit.aclose()
            raise
        return self

    def _bridge_child(self) -> Child:
        opts = self.options
        assert self.telco is not None and self.gemini is not None
        telco, gemini = self.telco.ready, self.gemini.ready
        if opts.bridge == "ours":
            config = bridge_config(telco, gemini, calls=opts.calls, call_rate=opts.call_rate)
            module = "callbridge.bench.bridge_proc"
            args = ["--config", json.dumps(config), "--variant", opts.variant]
        else:
            module = "callbridge.bench.reference"
            args = [
                "--telcoflow-url",
                telco["base_url"],
                "--api-key",
                telco["api_key"],
                "--connector",
                telco["connector_uuid"],
                "--gemini-url",
                gemini["base_url"],
                "--ca-file",
                gemini["ca_file"],
                "--rate",
                str(opts.call_rate),
            ]
        return Child(
            f"bridge-{opts.bridge}",
            module,
            args,
            cores=opts.cores.bridge,
            log_path=self.workdir / f"bridge-{opts.bridge}.log",
            nice=opts.nice,
            # A CFS quota does not limit SCHED_RR tasks: under a quota the bridge stays normal.
            realtime=opts.realtime and self.cpu_limit is None,
            # Emulators allowed on its core must never delay it.
            rt_priority=RT_PRIORITY + 1 if opts.cores.spill else RT_PRIORITY,
            on_spawn=self.cpu_limit.add if self.cpu_limit is not None else None,
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._exit.__aexit__(exc_type, exc, tb)
