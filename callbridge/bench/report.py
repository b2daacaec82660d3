"""The benchmark's outputs: ``latest.json`` (everything), ``latest.md`` (tables), ``latest.png``.

The Markdown has one row per (N, bridge) and a ratio table (ours / reference) for every N both
bridges ran at. The chart plots CPU per call-second and latency percentiles against N. Under a
CPU quota (``--cpu-quota Q``, written as ``cpu-quota-<Q>.*``) it starts with each bridge's ceiling
(calls held per core) and adds the throttling of every run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Run = dict[str, Any]


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _dist(d: dict[str, Any] | None, keys: Sequence[str] = ("p50", "p99", "max")) -> str:
    if not d or not d.get("n"):
        return "-"
    return " / ".join(_num(d.get(k)) for k in keys)


def _verdict(run: Run) -> str:
    if run.get("error"):
        return "failed"
    if not run["emulator"]["held"]:
        return "EMULATOR lost real time"
    return "held" if run["bridge"]["held"] else "LOST"


def run_rows(runs: Sequence[Run]) -> list[str]:
    header = (
        "| N | bridge | real time | CPU ms per call-s | bridge core | RSS MB per call "
        "| caller→model ms p50 / p99 / max | model→call ms p50 / p99 / max "
        "| barge-in ms p50 / p99 / max | stale audio after interrupt ms mean / max "
        "| underruns | emulator lag p99 ms (pump / gemini) |"
    )
    lines = [header, "|" + "---|" * 12]
    for run in runs:
        if run.get("error"):
            lines.append(
                f"| {run['calls']} | {run['bridge_kind']} | failed: {run['error']} |" + " |" * 9
            )
            continue
        emu = run["emulator"]
        stale = run["stale_after_interrupt_ms"]
        lines.append(
            "| "
            + " | ".join(
                [
                    str(run["calls"]),
                    run["label"],
                    _verdict(run),
                    _num(run["cpu_ms_per_call_s"], 2),
                    f"{run['bridge_core_share'] * 100:.0f} %",
                    _num(run["rss_mb_per_call"], 2),
                    _dist(run["caller_to_model_ms"]),
                    _dist(run["model_to_call_ms"]),
                    _dist(run["barge_in_ms"]),
                    f"{_num(stale['mean'])} / {_num(stale['max'])}",
                    str(run["underruns"]),
                    f"{_num(emu['pump_lateness_ms']['p99'])} / "
                    f"{_num(emu['gemini_loop_lag_ms']['p99'])}",
                ]
            )
            + " |"
        )
    return lines


def _ratio(a: Any, b: Any) -> str:
    if a is None or b is None or not b:
        return "-"
    return f"{a / b:.2f}"


def labels(runs: Sequence[Run]) -> list[str]:
    """Contenders in order of appearance (ours and its variants first, as run)."""
    seen: list[str] = []
    for run in runs:
        if run["label"] not in seen:
            seen.append(run["label"])
    return seen


def ratio_rows(runs: Sequence[Run]) -> list[str]:
    ok = [r for r in runs if not r.get("error")]
    ref = {r["calls"]: r for r in ok if r["bridge_kind"] == "reference"}
    pairs = [
        (r["label"], r, ref[r["calls"]])
        for r in ok
        if r["bridge_kind"] == "ours" and r["calls"] in ref
    ]
    if not pairs:
        return []
    lines = [
        "| N | ours | CPU per call-s | RSS per call | caller→model p50 | caller→model p99 "
        "| model→call p50 | barge-in p50 | stale audio mean |",
        "|" + "---|" * 9,
    ]
    for label, a, b in sorted(pairs, key=lambda p: (p[1]["calls"], p[0])):
        n = a["calls"]
        lines.append(
            "| "
            + " | ".join(
                [
                    str(n),
                    label,
                    _ratio(a["cpu_ms_per_call_s"], b["cpu_ms_per_call_s"]),
                    _ratio(a["rss_mb_per_call"], b["rss_mb_per_call"]),
                    _ratio(a["caller_to_model_ms"]["p50"], b["caller_to_model_ms"]["p50"]),
                    _ratio(a["caller_to_model_ms"]["p99"], b["caller_to_model_ms"]["p99"]),
                    _ratio(a["model_to_call_ms"]["p50"], b["model_to_call_ms"]["p50"]),
                    _ratio(a["barge_in_ms"]["p50"], b["barge_in_ms"]["p50"]),
                    _ratio(
                        a["stale_after_interrupt_ms"]["mean"],
                        b["stale_after_interrupt_ms"]["mean"],
                    ),
                ]
            )
            + " |"
        )
    return lines


def _load_line(meta: dict[str, Any]) -> list[str]:
    load = meta.get("load_average")
    if not load:
        return []
    text = " / ".join(f"{x:.2f}" for x in load["start"])
    return [
        f"Machine load average (1 / 5 / 15 min): {text} at the start, "
        f"{' / '.join(f'{x:.2f}' for x in load['end'])} at the end "
        f"({meta.get('elapsed_s', 0):.0f} s).",
        "",
    ]


def _quota_text(meta: dict[str, Any]) -> str:
    limit = meta.get("cpu_limit")
    if not limit:
        return ""
    if limit.get("quota") is None:
        return " · no CPU quota (bridge on its whole core)"
    return (
        f" · CPU quota {limit['quota']:g} core ({limit['quota_us']} us per "
        f"{limit['period_us']} us, cgroup {limit['hierarchy']})"
    )


def capacity_rows(ceilings: Sequence[dict[str, Any]]) -> list[str]:
    """Each bridge's ceiling: N held, calls per core, and what it looked like there."""
    lines = [
        "| bridge | quota (cores) | N held | first N lost | calls held per core "
        "| caller→model p99 at N held (ms) | CPU ms per call-s | quota used "
        "| throttled periods | throttled ms per s | limited by | N tried |",
        "|" + "---|" * 12,
    ]
    for c in ceilings:
        at = c.get("at_held") or {}
        throttle = at.get("throttling") or {}
        held = c["held_calls"]
        if c["limited_by"] == "emulators":
            held_text = f">= {held} (emulators lost real time at {c['emulators_lost_at']})"
        elif c["limited_by"] == "search":
            held_text = f">= {held} (no larger N lost)"
        else:
            held_text = str(held)
        tried = ", ".join(
            f"{n} {'✓' if o == 'held' else '✗' if o == 'lost' else 'E'}" for n, o in c["tried"]
        )
        lines.append(
            "| "
            + " | ".join(
                [
                    str(c["label"]),
                    "-" if c["quota"] is None else f"{c['quota']:g}",
                    held_text,
                    _num(c["lost_calls"]),
                    _num(c["calls_per_core"]),
                    _num(at.get("caller_to_model_p99_ms")),
                    _num(at.get("cpu_ms_per_call_s"), 2),
                    "-" if not throttle else f"{throttle['quota_used'] * 100:.0f} %",
                    "-"
                    if not throttle
                    else f"{throttle['throttled_periods']} / {throttle['periods']}",
                    _num(throttle.get("throttled_ms_per_s")),
                    c["limited_by"],
                    tried,
                ]
            )
            + " |"
        )
    return lines


def _foreign(run: Run) -> str:
    load = run.get("foreign_load")
    if load and load.get("both_cores") is not None:
        return f"{load['both_cores']:.2f} (both cores)"
    if not load or load.get("bridge_core") is None:
        return "-"
    text = f"{load['bridge_core']:.2f} / {load['emulator_core']:.2f}"
    rivals = run.get("foreign_realtime") or {}
    taken = [
        f"{rivals[k]['cores']:.2f} {name}"
        for k, name in (("bridge_core", "bridge"), ("emulator_core", "emulator"))
        if rivals.get(k, {}).get("tasks")
    ]
    return text + (f" (real-time: {', '.join(taken)} core)" if taken else "")


def throttle_rows(runs: Sequence[Run]) -> list[str]:
    """Per run under a quota: how much of it the bridge used and how often it ran out."""
    limited = [r for r in runs if r.get("cpu_limit")]
    if not limited:
        return []
    lines = [
        "| N | bridge | real time | quota used | throttled periods | throttled ms per s "
        "| caller late share | caller→model p99 ms "
        "| other processes' load on bridge / emulator core |",
        "|" + "---|" * 9,
    ]
    for r in limited:
        t = r["cpu_limit"]
        lines.append(
            f"| {r['calls']} | {r['label']} | {_verdict(r)} | {t['quota_used'] * 100:.0f} % "
            f"| {t['throttled_periods']} / {t['periods']} | {_num(t['throttled_ms_per_s'])} "
            f"| {r['bridge']['caller_late_share'] * 100:.2f} % "
            f"| {_num(r['caller_to_model_ms']['p99'])} "
            f"| {_foreign(r)} |"
        )
    return lines


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    runs = result["runs"]
    ceilings = result.get("capacity")
    out = [
        "# callbridge benchmark" + (" under a CPU quota" if ceilings else ""),
        "",
        f"{meta['started']} · {meta['machine']} · {meta['cores']} · "
        f"{meta['seconds']:g} s per call · call rate {meta['call_rate']} Hz · "
        f"model burst {meta['burst_speed']:g}x · {meta.get('scheduling', 'normal')} · "
        f"commit {meta['commit']}{_quota_text(meta)}",
        "",
        *_load_line(meta),
        "Real time held: < 1 % of caller audio reached the model > 20 ms late and < 1 % of "
        "agent-audio ticks underran. The emulators are judged on their own lateness (caller "
        "pump ticks and event-loop wake-ups late by > 20 ms); when they lose real time, the "
        "bridge's figures for that N are not the bridge's alone.",
        "",
    ]
    if ceilings:
        out += [
            "Ceiling: the largest N held, found by search (double until lost, then bisect to "
            "within 10 %); calls held per core = N held / quota. ✓ held, ✗ lost, E emulators "
            "lost real time.",
            "",
            *capacity_rows(ceilings),
            "",
        ]
    out += [*run_rows(runs), ""]
    throttled = throttle_rows(runs)
    if throttled:
        out += ["Throttling over each run's steady window (cgroup cpu.stat):", "", *throttled, ""]
    ratios = ratio_rows(runs)
    if ratios:
        out += ["Ratios, ours / reference (below 1 is better for ours):", "", *ratios, ""]
    if meta.get("skipped"):
        out += ["Not run: " + "; ".join(meta["skipped"]), ""]
    if meta.get("reruns"):
        out += [
            "Run twice (a loss while another process's real-time task shared the bridge's "
            "core; the better of the two counts for the search): " + "; ".join(meta["reruns"]),
            "",
        ]
    if "profile" in result:
        out += profile_markdown(result["profile"])
    return "\n".join(out)


def profile_markdown(prof: dict[str, Any], top: int = 12) -> list[str]:
    """Top costs of our bridge (py-spy), as shares of its busy samples."""
    if prof.get("error"):
        return [f"Profile: {prof['error']}", ""]
    out = [
        f"## Profile of our bridge at N = {prof['calls']} (py-spy, {prof['samples']} samples; "
        "shares of the bridge's busy time)",
        "",
        *([prof["note"], ""] if prof.get("note") else []),
        "| self, by package | |",
        "|---|---|",
    ]
    out += [f"| {c['share'] * 100:.1f} % | {c['name']} |" for c in prof["by_package"][:top]]
    out += ["", "| self | function |", "|---|---|"]
    out += [f"| {c['share'] * 100:.1f} % | `{c['name']}` |" for c in prof["self"][:top]]
    out += ["", "| inclusive | function |", "|---|---|"]
    out += [f"| {c['share'] * 100:.1f} % | `{c['name']}` |" for c in prof["inclusive"][: top * 2]]
    return [*out, ""]


def chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in result["runs"] if not r.get("error")]
    fig, (cpu_ax, lat_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    palette = ["tab:blue", "tab:green", "tab:purple", "tab:red", "tab:brown"]
    lost_labelled = False
    for index, label in enumerate(labels(runs)):
        mine = sorted((r for r in runs if r["label"] == label), key=lambda r: r["calls"])
        is_ref = mine[0]["bridge_kind"] == "reference"
        colour = "tab:orange" if is_ref else palette[index % len(palette)]
        marker = "s" if is_ref else "o"
        ns = [r["calls"] for r in mine]
        cpu_ax.plot(
            ns, [r["cpu_ms_per_call_s"] for r in mine], marker=marker, color=colour, label=label
        )
        lost = [r for r in mine if _verdict(r) != "held"]
        cpu_ax.scatter(
            [r["calls"] for r in lost],
            [r["cpu_ms_per_call_s"] for r in lost],
            marker="x",
            s=90,
            color="black",
            zorder=3,
            label="real time lost" if lost and not lost_labelled else None,
        )
        lost_labelled = lost_labelled or bool(lost)
        for key, style, what in (
            ("p50", "-", "caller→model p50"),
            ("p99", "--", "caller→model p99"),
        ):
            values = [r["caller_to_model_ms"][key] for r in mine]
            lat_ax.plot(ns, values, style, marker=marker, color=colour, label=f"{label} {what}")
        values = [r["model_to_call_ms"]["p50"] for r in mine]
        lat_ax.plot(ns, values, ":", marker=marker, color=colour, label=f"{label} model→call p50")
    cpu_ax.set(
        xscale="log",
        xlabel="concurrent calls (N)",
        ylabel="bridge CPU ms per call-second",
        title="CPU per call",
    )
    lat_ax.set(
        xscale="log",
        yscale="log",
        xlabel="concurrent calls (N)",
        ylabel="added latency, ms",
        title="Latency percentiles",
    )
    for ax in (cpu_ax, lat_ax):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    meta = result["meta"]
    fig.suptitle(f"callbridge bench · {meta['cores']}{_quota_text(meta)}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(result: dict[str, Any], out_dir: Path, stem: str = "latest") -> dict[str, Path]:
    """Write ``<stem>.json``, ``.md`` and ``.png`` into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / f"{stem}.json",
        "md": out_dir / f"{stem}.md",
        "png": out_dir / f"{stem}.png",
    }
    paths["json"].write_text(json.dumps(result, indent=1) + "\n")
    paths["md"].write_text(markdown(result))
    chart(result, paths["png"])
    return paths
