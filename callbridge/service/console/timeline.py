"""A finished (or live) call's record drawn as a picture: one SVG, rendered on the server.

Lanes, top to bottom: agent turns (bars from ``agent_turn_start`` to ``agent_turn_end``),
caller utterances (a tick where each transcript line was recorded), barge-ins, tools (bars
from ``started`` to the end status), call commands, operator actions, model connection
events and warnings. Every mark has a ``<title>``, so hovering names it. Pure: entries in,
markup out, every text escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from callbridge.bridge.record import RecordEntry

WIDTH = 960
LEFT = 110
LANE_H = 26
TOP = 8

LANES = ("agent", "caller", "barge-in", "tools", "commands", "operator", "model", "warnings")
_COLOURS = {
    "agent": "#2f6fdf",
    "caller": "#2a9d5b",
    "barge-in": "#d62828",
    "tools": "#8e44ad",
    "commands": "#555555",
    "operator": "#e67e22",
    "model": "#16a085",
    "warnings": "#e0a800",
}
_TOOL_OVER = {"done", "failed", "cancelled", "cancelled_by_model"}


def _tick_step(span: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800):
        if span / step <= 12:
            return float(step)
    return 3600.0


def _marks(entries: Sequence[RecordEntry], end: float) -> list[tuple[str, float, float, str]]:
    """(lane, start, stop, label) for every mark; a point has stop == start."""
    marks: list[tuple[str, float, float, str]] = []
    turn_start: float | None = None
    tools: dict[str, tuple[float, str]] = {}
    for e in entries:
        d = e.data
        if e.kind == "timeline":
            event = str(d.get("event"))
            if event == "agent_turn_start":
                if turn_start is not None:  # the previous turn ended without a note
                    marks.append(("agent", turn_start, e.t, "agent turn"))
                turn_start = e.t
            elif event == "agent_turn_end" and turn_start is not None:
                marks.append(("agent", turn_start, e.t, "agent turn"))
                turn_start = None
            elif event == "barge_in":
                marks.append(("barge-in", e.t, e.t, "barge-in"))
                if turn_start is not None:  # a barge-in cuts the agent's turn
                    marks.append(("agent", turn_start, e.t, "agent turn (cut by barge-in)"))
                    turn_start = None
            elif event == "operator_action":
                marks.append(
                    ("operator", e.t, e.t, f"{d.get('action')} by {d.get('by')}: {d.get('result')}")
                )
            elif event.startswith("model_"):
                marks.append(
                    ("model", e.t, e.t, f"{event} {d.get('kind') or d.get('model') or ''}")
                )
        elif e.kind == "transcript":
            lane = "caller" if d.get("speaker") == "caller" else "agent"
            if lane == "caller":
                marks.append(("caller", e.t, e.t, f"caller: {d.get('text', '')}"))
        elif e.kind == "tool":
            key = str(d.get("call_id"))
            if d.get("status") == "started":
                tools[key] = (e.t, str(d.get("name")))
            elif d.get("status") in _TOOL_OVER and key in tools:
                start, name = tools.pop(key)
                marks.append(("tools", start, e.t, f"{name}: {d.get('status')}"))
        elif e.kind == "command":
            ok = "ok" if d.get("ok") else f"failed {d.get('error_code')}"
            marks.append(("commands", e.t, e.t, f"{d.get('command')}: {ok}"))
        elif e.kind == "warning":
            marks.append(("warnings", e.t, e.t, f"{d.get('code')}: {d.get('description', '')}"))
    if turn_start is not None:
        marks.append(("agent", turn_start, end, "agent turn (open)"))
    for start, name in tools.values():
        marks.append(("tools", start, end, f"{name}: running"))
    return marks


def timeline_svg(entries: Sequence[RecordEntry], duration: float | None = None) -> str:
    """The SVG markup for these entries on a time axis of ``duration`` seconds (or the last
    entry's time)."""
    end = max([duration or 0.0, *(e.t for e in entries), 1.0])
    plot = WIDTH - LEFT - 10
    height = TOP + LANE_H * len(LANES) + 24

    def x(t: float) -> float:
        return round(LEFT + plot * max(0.0, t) / end, 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {height}"'
        f' width="{WIDTH}" height="{height}" role="img" aria-label="call timeline">'
    ]
    for i, lane in enumerate(LANES):
        y = TOP + i * LANE_H
        parts.append(
            f'<text x="4" y="{y + 17}" font-size="12" fill="#333">{lane}</text>'
            f'<line x1="{LEFT}" y1="{y + LANE_H - 2}" x2="{WIDTH - 10}" y2="{y + LANE_H - 2}"'
            ' stroke="#eee"/>'
        )
    axis_y = TOP + LANE_H * len(LANES)
    step = _tick_step(end)
    tick = 0.0
    while tick <= end + 1e-9:
        parts.append(
            f'<line x1="{x(tick)}" y1="{TOP}" x2="{x(tick)}" y2="{axis_y}" stroke="#f3f3f3"/>'
            f'<text x="{x(tick)}" y="{axis_y + 16}" font-size="11" fill="#666"'
            f' text-anchor="middle">{tick:g}s</text>'
        )
        tick += step
    for lane, start, stop, label in _marks(entries, end):
        y = TOP + LANES.index(lane) * LANE_H
        colour = _COLOURS[lane]
        title = f"<title>{escape(f'{start:.1f}s {label}')}</title>"
        if stop > start:
            w = max(2.0, x(stop) - x(start))
            parts.append(
                f'<rect class="mark {lane}" x="{x(start)}" y="{y + 5}" width="{w:.1f}"'
                f' height="{LANE_H - 12}" fill="{colour}" opacity="0.75">{title}</rect>'
            )
        else:
            parts.append(
                f'<rect class="mark {lane}" x="{x(start) - 2}" y="{y + 3}" width="4"'
                f' height="{LANE_H - 8}" fill="{colour}">{title}</rect>'
            )
    parts.append("</svg>")
    return "".join(parts)
