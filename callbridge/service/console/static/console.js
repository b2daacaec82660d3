// callbridge operator console: live updates over server-sent events and the call actions.
// Plain JavaScript, no build step. Text from calls is only ever set with textContent.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmtDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

function streamStatus(text) {
  const node = document.getElementById("stream-status");
  if (node) node.textContent = text;
}

// ── Live calls table ─────────────────────────────────────────────────────────────────────
function liveTable(table) {
  const base = document.querySelector('meta[name="console-base"]').content;
  const body = table.querySelector("tbody");
  const tick = () => {
    for (const row of body.querySelectorAll("tr[data-started-at]")) {
      row.querySelector(".duration").textContent =
        fmtDuration(Date.now() / 1000 - Number(row.dataset.startedAt));
    }
  };
  const render = (calls) => {
    body.replaceChildren();
    for (const c of calls) {
      const row = el("tr");
      row.dataset.callId = c.call_id;
      row.dataset.startedAt = c.started_at;
      const caller = el("td");
      const link = el("a", null, c.caller);
      link.href = base + "/calls/" + encodeURIComponent(c.call_id);
      caller.append(link);
      const warnings = Object.entries(c.warnings).map(([k, n]) => k + "×" + n).join(" ");
      const first = c.first_audio_s === null ? "" : c.first_audio_s + " s";
      row.append(caller, el("td", null, c.direction), el("td", "state", c.state),
        el("td", "duration"), el("td", null, c.model), el("td", null, warnings),
        el("td", null, first), el("td", null, String(c.barge_ins)));
      body.append(row);
    }
    document.getElementById("live-count").textContent = String(calls.length);
    tick();
  };
  tick();
  setInterval(tick, 1000);
  const source = new EventSource(table.dataset.stream);
  source.addEventListener("open", () => streamStatus("live"));
  source.addEventListener("error", () => streamStatus("reconnecting…"));
  source.addEventListener("calls", (ev) => render(JSON.parse(ev.data)));
}

// ── One call ─────────────────────────────────────────────────────────────────────────────
function describe(e) {
  const d = e.data;
  switch (e.kind) {
    case "transcript": {
      const interrupted = d.text.endsWith(" [interrupted]");
      return ["transcript " + d.speaker + (interrupted ? " interrupted" : ""), d.speaker + ": " + d.text];
    }
    case "tool":
      return ["tool", "tool " + d.name + " " + d.status +
        (d.args ? " args " + JSON.stringify(d.args) : "") +
        (d.response ? " → " + JSON.stringify(d.response) : "") +
        (d.error ? " error " + d.error : "")];
    case "command":
      return ["command", "command " + d.command + ": " + (d.ok ? "ok" : "failed " + d.error_code)];
    case "warning":
      return ["warning", "warning " + d.code + ": " + d.description];
    case "state":
      return ["state", "call " + d.state + (d.outcome ? " (" + d.outcome + ")" : "")];
    case "timeline":
      switch (d.event) {
        case "barge_in": return ["barge", "barge-in: the caller interrupted the agent"];
        case "operator_action":
          return ["operator", "operator " + d.by + ": " + d.action + " → " + d.result +
            (d.code ? " (" + d.code + ")" : "") + (d.text ? ": “" + d.text + "”" : "")];
        case "model_connected": return ["model", "model connected: " + d.model];
        case "model_connect_failed": return ["model", "model connect failed: " + d.model + " " + d.error];
        case "model_session": return ["model", "model session " + d.kind + (d.detail ? ": " + d.detail : "")];
        case "transfer_requested": return ["command", "transfer requested: " + (d.reason || "")];
        default: return null;  // turn starts/ends etc. are on the timeline, not in the feed
      }
    default:
      return null;
  }
}

function callView(section) {
  const feed = document.getElementById("feed");
  const result = document.getElementById("action-result");
  // The end has its own line: an action's answer arriving after the end must not hide it.
  const ended = document.getElementById("call-ended");
  const state = document.getElementById("call-state");
  const source = new EventSource(section.dataset.stream);
  source.addEventListener("open", () => streamStatus("live"));
  source.addEventListener("error", () => streamStatus("reconnecting…"));
  source.addEventListener("entries", (ev) => {
    for (const e of JSON.parse(ev.data)) {
      const shown = describe(e);
      if (shown === null) continue;
      const item = el("li", shown[0]);
      item.append(el("time", null, e.t.toFixed(1) + "s"), document.createTextNode(" " + shown[1]));
      feed.append(item);
    }
  });
  source.addEventListener("state", (ev) => {
    state.textContent = JSON.parse(ev.data).state;
  });
  source.addEventListener("meter", (ev) => {
    const m = JSON.parse(ev.data);
    document.getElementById("meter-caller").value = m.caller_dbfs;
    document.getElementById("meter-caller-db").textContent = m.caller_dbfs + " dBFS";
    const agent = document.getElementById("meter-agent");
    agent.textContent = m.agent_speaking ? "speaking" : "silent";
    agent.classList.toggle("on", m.agent_speaking);
  });
  source.addEventListener("ended", (ev) => {
    source.close();
    const outcome = JSON.parse(ev.data).outcome;
    state.textContent = "ended: " + outcome;
    streamStatus("call over");
    const link = el("a", null, "see it in history");
    link.href = section.dataset.history;
    link.id = "history-link";
    ended.replaceChildren(document.createTextNode("The call ended (" + outcome + "): "), link);
  });
  for (const form of section.querySelectorAll("form[data-action]")) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
      result.textContent = "…";
      const response = await fetch(form.dataset.action, {
        method: "POST",
        headers: {"X-CSRF-Token": csrf},
        body: new URLSearchParams(new FormData(form)),
        credentials: "same-origin",
      });
      let body = {};
      try { body = await response.json(); } catch (_) { /* not JSON */ }
      result.className = response.ok ? "ok" : "refused";
      if (body.code) {
        result.textContent = "Refused (" + body.code + "): " +
          (body.code.endsWith("USER_SPEECH") ? "the caller is speaking" : "the agent is speaking") +
          "; try again in a moment.";
      } else if (response.ok) {
        result.textContent = "Done: " + JSON.stringify(body);
        if (form.id === "form-inject") form.reset();
      } else {
        result.textContent = "Refused (" + response.status + "): " + (body.error || body.status || JSON.stringify(body));
      }
    });
  }
}

const table = document.getElementById("live-calls");
if (table) liveTable(table);
const call = document.getElementById("call");
if (call) callView(call);
