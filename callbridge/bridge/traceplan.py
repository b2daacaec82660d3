"""A call's trace, planned from its record: which spans, when, with what attributes.

Pure: it reads :class:`~callbridge.bridge.record.RecordEntry` values and returns a tree of
:class:`SpanPlan`; ``callbridge.adapters.tracing`` turns the tree into OpenTelemetry spans. Keeping
the
decisions here means the shape of a trace is table-testable without an SDK, and nothing is
computed on the audio path (the tracer plans a call once it has ended, on its own thread).

The tree (times are the record's ``t``, seconds since the call started)::

    call                                   whole call; outcome, model, tokens, cost
    ├── answer                             0 -> answered
    ├── model_connect                      one per attempt (a failed one has error status)
    ├── turn                               caller speech end (or first audio) -> turn end
    │   ├── barge_in                       barge-in -> the call's buffer cleared
    │   ├── execute_tool {name}            started -> done (outcome, elapsed)
    │   │   └── call_command {command}     e.g. connect for a transfer
    │   └── (events: first_agent_audio, warnings, tool requests, nudges)
    ├── model_session.rotated              goAway rotation (took, handle age, replay size)
    ├── model_session.reconnected          unplanned drop (attempt, close code, replay size)
    └── call_command disconnect ...        commands outside any tool

Attribute names follow the OpenTelemetry GenAI semantic conventions where one fits
(``gen_ai.conversation.id``, ``gen_ai.request.model``, ``gen_ai.usage.*``,
``gen_ai.operation.name``, ``gen_ai.tool.*``) and Pipecat's turn attributes where peers
agree (``turn.was_interrupted``, ``turn.user_bot_latency_seconds``); the rest are
``callbridge.*``. Anything that carries what the caller said or can identify them
(transcripts, tool arguments and results, transfer summaries, the full phone number) is
under the single prefix ``callbridge.pii.``, and is left out unless the tenant opted in
(``tracing.include_content``), so a collector can also strip it by prefix.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from callbridge.bridge.record import RecordEntry, mask_number

AttrValue = str | bool | int | float
PII = "callbridge.pii."
"""The prefix of every attribute that carries caller content or identity."""
PROVIDER = "gcp.gemini"
ROTATION_KINDS = frozenset({"rotated", "reconnected", "resume_rejected"})
MAX_TEXT = 4000
"""Longest content attribute (characters); longer text is cut, marked with an ellipsis."""


@dataclass
class SpanEventPlan:
    name: str
    t: float
    attributes: dict[str, AttrValue] = field(default_factory=dict)


@dataclass
class SpanPlan:
    name: str
    start: float
    end: float | None = None
    attributes: dict[str, AttrValue] = field(default_factory=dict)
    events: list[SpanEventPlan] = field(default_factory=list)
    children: list[SpanPlan] = field(default_factory=list)
    error: str | None = None

    def child(self, name: str, start: float, **attributes: AttrValue) -> SpanPlan:
        span = SpanPlan(name, start, attributes=dict(attributes))
        self.children.append(span)
        return span

    def walk(self) -> Iterable[SpanPlan]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What the plan needs from the record besides its entries."""

    call_id: str
    tenant: str
    caller: str
    callee: str
    started_at: float
    outcome: str
    usage: Mapping[str, int]
    cost_usd: float | None = None


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _json(value: Any) -> str:
    return _clip(json.dumps(value, ensure_ascii=False, default=str))


def _scalar(value: Any) -> AttrValue | None:
    if isinstance(value, bool | int | float | str):
        return value
    return None


class _Planner:
    def __init__(self, facts: CallFacts, include_content: bool) -> None:
        self.content = include_content
        self.root = SpanPlan(
            "call",
            0.0,
            attributes={
                "gen_ai.conversation.id": facts.call_id,
                "gen_ai.provider.name": PROVIDER,
                "callbridge.call.id": facts.call_id,
                "callbridge.tenant": facts.tenant,
                "callbridge.call.caller": mask_number(facts.caller),
                "callbridge.content_included": include_content,
            },
        )
        if include_content:
            self.root.attributes[PII + "caller"] = facts.caller
            self.root.attributes[PII + "callee"] = facts.callee
        self.turn: SpanPlan | None = None
        self.turn_from_speech_end = False
        self.last_turn: SpanPlan | None = None
        self.turns = 0
        self.interrupts = 0
        self.speech_end: float | None = None
        self.clears: list[SpanPlan] = []
        self.tools: dict[str, SpanPlan] = {}
        self.connect_from = 0.0
        self.caller_text: list[str] = []
        self.last_t = 0.0

    # ── Where a fact belongs ───────────────────────────────────────────────────────
    def _scope(self) -> SpanPlan:
        """The innermost open span: a running tool, else the turn, else the call."""
        if self.tools:
            return next(reversed(self.tools.values()))
        return self.turn or self.root

    def _event(self, name: str, t: float, **attributes: Any) -> None:
        attrs = {k: v for k, v in ((k, _scalar(v)) for k, v in attributes.items()) if v is not None}
        self._scope().events.append(SpanEventPlan(name, t, attrs))

    # ── Entries ────────────────────────────────────────────────────────────────────
    def feed(self, entry: RecordEntry) -> None:
        self.last_t = max(self.last_t, entry.t)
        data = entry.data
        handler = getattr(self, f"_on_{entry.kind}", None)
        if handler is not None:
            handler(entry.t, data)

    def _on_state(self, t: float, data: Mapping[str, Any]) -> None:
        if data.get("state") == "answered":
            self.root.child("answer", 0.0).end = t
        elif data.get("state") == "ended":
            self.root.end = t
            self.root.attributes["callbridge.call.outcome"] = str(data.get("outcome", ""))

    def _on_timeline(self, t: float, data: Mapping[str, Any]) -> None:
        event = data.get("event")
        if event == "caller_stopped_speaking":
            silence = data.get("silence_ms")
            self._speech_ended(t - float(silence) / 1000 if isinstance(silence, int | float) else t)
        elif event == "agent_turn_start":
            self._first_audio(t)
        elif event == "agent_turn_end":
            self._close_turn(t, interrupted=False)
        elif event == "barge_in":
            self._barge_in(t, data)
        elif event == "buffer_cleared":
            self._cleared(t, data)
        elif event == "model_connected":
            span = self.root.child("model_connect", self.connect_from)
            span.end = t
            span.attributes["gen_ai.request.model"] = str(data.get("model", ""))
            self.root.attributes["gen_ai.request.model"] = str(data.get("model", ""))
            self.connect_from = t
        elif event == "model_connect_failed":
            span = self.root.child("model_connect", self.connect_from)
            span.end = t
            span.attributes["gen_ai.request.model"] = str(data.get("model", ""))
            span.error = str(data.get("error", "connect failed"))
            self.connect_from = t
        elif event == "model_session":
            self._model_session(t, data)
        elif event == "transfer_requested":
            attrs: dict[str, Any] = {}
            if self.content:
                attrs = {PII + "reason": data.get("reason"), PII + "summary": data.get("summary")}
            self._event("transfer_requested", t, **attrs)
        elif event == "tool_call":
            if self.turn is None:  # the model's answer starts with a tool call
                self._open_turn(t)
            self._event("tool_requested", t, **{"gen_ai.tool.name": data.get("name")})
        elif event == "inject":
            attrs = {PII + "text": data.get("text")} if self.content else {}
            self._event("inject", t, **attrs)
        elif isinstance(event, str):
            # Other timeline facts (nudges, telephony errors, agent audio on/off...) as events;
            # their data is operational, never caller content.
            self._event(event, t, **{k: v for k, v in data.items() if k != "event"})

    def _open_turn(self, t: float) -> SpanPlan:
        """A model turn: from the caller's speech end, if one came since the last turn."""
        if self.turn is not None:
            self._close_turn(t, interrupted=False)
        since_prev = self.last_turn.end if self.last_turn and self.last_turn.end else -1.0
        end = self.speech_end
        stop = end if end is not None and end >= since_prev else None
        self.turns += 1
        turn = self.root.child("turn", stop if stop is not None else t)
        turn.attributes["callbridge.turn.index"] = self.turns
        turn.attributes["turn.was_interrupted"] = False
        if self.content and self.caller_text:
            turn.attributes[PII + "caller_text"] = _clip(" ".join(self.caller_text))
        self.caller_text.clear()
        self.speech_end = None
        self.turn = turn
        self.turn_from_speech_end = stop is not None
        return turn

    def _speech_ended(self, end: float) -> None:
        """The caller stopped speaking at ``end``; this is noted after a hangover, so the
        model's answer (or its tool call) may already have opened the turn it answers."""
        turn = self.turn
        since_prev = self.last_turn.end if self.last_turn and self.last_turn.end else -1.0
        if turn is None or self.turn_from_speech_end or not since_prev <= end <= turn.start:
            self.speech_end = end
            return
        turn.start = end
        self.turn_from_speech_end = True
        first = turn.attributes.get("callbridge.turn.first_audio_t")
        if isinstance(first, float):
            self._latency(turn, first)

    def _latency(self, turn: SpanPlan, first_audio: float) -> None:
        latency = first_audio - turn.start
        turn.attributes["turn.user_bot_latency_seconds"] = round(latency, 4)
        turn.attributes["callbridge.turn.response_latency_ms"] = round(latency * 1000, 1)

    def _first_audio(self, t: float) -> None:
        """The turn's first agent audio; it opens the turn unless a tool call already did."""
        turn = self.turn
        if turn is None or "callbridge.turn.first_audio_t" in turn.attributes:
            turn = self._open_turn(t)
        turn.attributes["callbridge.turn.first_audio_t"] = round(t, 4)
        if self.turn_from_speech_end:
            self._latency(turn, t)
        turn.events.append(SpanEventPlan("first_agent_audio", t))

    def _close_turn(self, t: float, *, interrupted: bool) -> None:
        turn = self.turn
        if turn is None:
            return
        turn.end = t
        turn.attributes["turn.was_interrupted"] = interrupted
        self.last_turn, self.turn = turn, None

    def _barge_in(self, t: float, data: Mapping[str, Any]) -> None:
        self.interrupts += 1
        parent = self.turn or self.last_turn or self.root
        span = parent.child("barge_in", t)
        for key in ("played_ms", "dropped_bytes"):
            value = _scalar(data.get(key))
            if value is not None:
                span.attributes[f"callbridge.barge_in.{key}"] = value
        if "played_ms" in data and self.turn is not None:
            self.turn.attributes["callbridge.turn.played_ms"] = data["played_ms"]
        self._close_turn(t, interrupted=True)
        self.clears.append(span)

    def _cleared(self, t: float, data: Mapping[str, Any]) -> None:
        if not self.clears:
            return
        span = self.clears.pop(0)
        span.end = t
        latency = _scalar(data.get("interrupt_to_clear_ms"))
        if latency is not None:
            span.attributes["callbridge.barge_in.clear_latency_ms"] = round(float(latency), 2)
        cleared = _scalar(data.get("cleared_bytes"))
        if cleared is not None:
            span.attributes["callbridge.barge_in.cleared_bytes"] = cleared

    def _model_session(self, t: float, data: Mapping[str, Any]) -> None:
        kind = str(data.get("kind", ""))
        if kind not in ROTATION_KINDS:  # goAway and the like: facts of the connection
            attrs = {k: _scalar(v) for k, v in data.items() if k not in ("event", "kind")}
            self.root.events.append(
                SpanEventPlan(
                    f"model_session.{kind}",
                    t,
                    {f"callbridge.model_session.{k}": v for k, v in attrs.items() if v is not None},
                )
            )
            return
        took = data.get("took_ms")
        start = t - float(took) / 1000 if isinstance(took, int | float) else t
        span = self.root.child(f"model_session.{kind}", max(0.0, start))
        span.end = t
        for key, value in data.items():
            if key in ("event", "kind"):
                continue
            scalar = _scalar(value)
            if scalar is not None:
                span.attributes[f"callbridge.model_session.{key}"] = scalar

    def _on_tool(self, t: float, data: Mapping[str, Any]) -> None:
        call_id = str(data.get("call_id", ""))
        status = str(data.get("status", ""))
        name = str(data.get("name", ""))
        if status == "started":
            parent = self.turn or self.root
            started = parent.child(
                f"execute_tool {name}",
                t,
                **{
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": name,
                    "gen_ai.tool.call.id": call_id,
                },
            )
            if self.content and "args" in data:
                started.attributes[PII + "tool.arguments"] = _json(data["args"])
            self.tools[call_id] = started
            return
        span = self.tools.pop(call_id) if call_id in self.tools else None
        if span is None:  # a result without a start (store or queue dropped it): a point
            span = (self.turn or self.root).child(f"execute_tool {name}", t)
            span.attributes.update({"gen_ai.tool.name": name, "gen_ai.tool.call.id": call_id})
        span.end = t
        span.attributes["callbridge.tool.status"] = status
        elapsed = _scalar(data.get("elapsed_s"))
        if elapsed is not None:
            span.attributes["callbridge.tool.elapsed_s"] = elapsed
        response = data.get("response")
        if isinstance(response, Mapping) and "error" in response:
            span.error = str(response["error"])
        elif status in ("failed", "cancelled", "cancelled_by_model"):
            span.error = str(data.get("error", status))
        if isinstance(response, Mapping) and isinstance(response.get("status"), str):
            span.attributes["callbridge.tool.result_status"] = response["status"]
        if self.content and response is not None:
            span.attributes[PII + "tool.result"] = _json(response)

    def _on_command(self, t: float, data: Mapping[str, Any]) -> None:
        command = str(data.get("command", ""))
        elapsed = data.get("elapsed_s")
        start = t - float(elapsed) if isinstance(elapsed, int | float) else t
        span = self._scope().child(f"call_command {command}", max(0.0, start))
        span.end = t
        span.attributes["callbridge.command.name"] = command
        span.attributes["callbridge.command.ok"] = bool(data.get("ok"))
        if data.get("error_code"):
            span.attributes["callbridge.command.error_code"] = str(data["error_code"])
            span.error = str(data["error_code"])

    def _on_warning(self, t: float, data: Mapping[str, Any]) -> None:
        self._event(
            "callbridge.warning",
            t,
            **{
                "callbridge.warning.code": data.get("code"),
                "callbridge.warning.description": data.get("description"),
            },
        )

    def _on_transcript(self, t: float, data: Mapping[str, Any]) -> None:
        if not self.content:
            return
        text = str(data.get("text", ""))
        if data.get("speaker") == "caller":
            self.caller_text.append(text)
            return
        target = self.turn or self.last_turn or self.root
        key = PII + "agent_text"
        previous = target.attributes.get(key)
        target.attributes[key] = _clip(f"{previous} {text}" if previous else text)

    def finish(self, facts: CallFacts) -> SpanPlan:
        root = self.root
        end = root.end if root.end is not None else self.last_t
        root.end = end
        if self.turn is not None:
            self._close_turn(end, interrupted=False)
        for span in root.walk():
            if span.end is None:
                span.end = max(span.start, end)
        root.attributes["callbridge.call.outcome"] = facts.outcome
        root.attributes["callbridge.call.turns"] = self.turns
        root.attributes["callbridge.call.interrupts"] = self.interrupts
        usage = facts.usage
        if "prompt_tokens" in usage:
            root.attributes["gen_ai.usage.input_tokens"] = int(usage["prompt_tokens"])
        if "response_tokens" in usage:
            root.attributes["gen_ai.usage.output_tokens"] = int(usage["response_tokens"])
        for key, value in usage.items():
            if key.startswith("tokens_"):
                root.attributes[f"callbridge.usage.{key}"] = int(value)
        if facts.cost_usd is not None:
            root.attributes["callbridge.cost.usd"] = round(facts.cost_usd, 6)
        if self.content and self.caller_text:
            root.attributes[PII + "caller_text_unanswered"] = _clip(" ".join(self.caller_text))
        return root


def plan_trace(
    facts: CallFacts, entries: Sequence[RecordEntry], *, include_content: bool = False
) -> SpanPlan:
    """The span tree of one call, from its record entries in the order they were appended."""
    planner = _Planner(facts, include_content)
    for entry in entries:
        planner.feed(entry)
    return planner.finish(facts)


__all__ = ["PII", "CallFacts", "SpanEventPlan", "SpanPlan", "plan_trace"]
