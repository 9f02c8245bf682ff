// The supervisor page: every agent by state with its time in state, each queue's figures
// (calls in flight, callers waiting, dial level, answer rate, abandon rates), and actions on
// agents. Agents' changes and queue figures come pushed over each call task's queue stream;
// the plot of the last hours (5-minute buckets) is read again every minute.

import { $, Api, EventStream, attempt, clock, el, notice, show } from "./api.js";

const api = new Api();
const agents = new Map();
const figures = new Map();
const links = new Map();
let choices = { pause_reasons: [], tasks: [], forms: {} };
// Events seen: an action's answer older than the last event is not applied over it.
let eventCount = 0;
const STATES = ["ready", "reserved", "talking", "wrap_up", "paused", "logged_out"];

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const me = await attempt("Log in", () =>
    api.login($("login-name").value.trim(), $("login-password").value),
  );
  $("login-password").value = "";
  if (!me) return;
  if (me.role !== "supervisor" && me.role !== "admin") {
    api.forget();
    notice(`${me.name} is ${me.role}: this page is for supervisors and admins`, "error");
    return;
  }
  notice("");
  $("who").textContent = me.name;
  choices = (await attempt("Loading tasks", () => api.call("GET", "/api/v1/agent/choices"))) || choices;
  await loadAgents();
  show($("login"), false);
  show($("board"), true);
  for (const t of choices.tasks) {
    const s = new EventStream(api, `/api/v1/queues/${t.id}/events`, {
      resume: false,
      onEvent,
      onLink: (up, n) => onLink(t, up, n),
    });
    s.open();
  }
  renderQueues();
  loadHistory();
  setInterval(loadHistory, 60_000);
});

async function loadAgents() {
  const list = await attempt("Loading agents", () => api.call("GET", "/api/v1/agents"));
  if (!list) return;
  for (const a of list.items) {
    const known = agents.get(a.id) || {};
    agents.set(a.id, { ...known, ...a, sinceMs: a.since ? Date.parse(a.since) : null });
  }
  renderAgents();
}

function onLink(task, up, n) {
  links.set(task.id, up);
  const all = [...links.values()].every(Boolean);
  $("link").className = all ? "link up" : "link down";
  if (!up) notice(`Stream of ${task.campaign} — ${task.name} lost — reconnecting (try ${n})…`, "warn");
  else if (n > 0) {
    notice(all ? "Reconnected to dialerd." : $("notice").textContent, "info");
    loadAgents();
  }
}

function onEvent(e) {
  eventCount += 1;
  if (e.type === "queue") {
    figures.set(e.task, e.figures);
    renderQueues();
    return;
  }
  let a = agents.get(e.agent);
  if (!a) {
    // An agent created since the page loaded: read the list once.
    loadAgents();
    a = { id: e.agent, name: `agent ${e.agent}`, tasks: [] };
    agents.set(e.agent, a);
  }
  if (e.type === "state") {
    a.state = e.state;
    a.reason = e.reason;
    a.sinceMs = Date.parse(e.at);
    if (["ready", "paused", "logged_out"].includes(e.state)) a.call_id = null;
  } else if (e.type === "call.offered" || e.type === "preview.offer") {
    a.call_id = e.call;
    a.direction = e.type === "preview.offer" ? "preview" : e.direction;
  }
  renderAgents();
}

function act(id, path, body) {
  return async () => {
    const before = eventCount;
    const v = await attempt(`Agent ${id}`, () => api.call(path === "session" ? "DELETE" : "POST", `/api/v1/agents/${id}/${path}`, body && body()));
    // An event newer than the request already says more than its answer.
    if (!v || eventCount !== before) return;
    const a = agents.get(id);
    Object.assign(a, v, { sinceMs: v.since ? Date.parse(v.since) : a.sinceMs });
    renderAgents();
  };
}

// One row per agent, made once and updated in place: a re-render would close a reason list
// the supervisor has open.
const rows = new Map();

function rowOf(a) {
  let r = rows.get(a.id);
  if (r) return r;
  const cells = Array.from({ length: 6 }, () => el("td"));
  cells[3].className = "since";
  const reason = el("select", { "aria-label": "pause reason" },
    choices.pause_reasons.map((p) => el("option", { value: p, text: p })));
  const buttons = {
    ready: el("button", { type: "button", onclick: act(a.id, "ready"), text: "Ready" }),
    pause: el("button", { type: "button", onclick: act(a.id, "pause", () => ({ reason: reason.value })), text: "Pause" }),
    hangup: el("button", { type: "button", class: "danger", onclick: act(a.id, "hangup"), text: "Hang up" }),
    logout: el("button", { type: "button", class: "quiet", onclick: act(a.id, "session"), text: "Log out" }),
  };
  const tr = el("tr", { "data-agent": a.id }, cells,
    el("td", { class: "actions" }, buttons.ready, reason, buttons.pause, buttons.hangup, buttons.logout));
  r = { tr, cells, buttons };
  rows.set(a.id, r);
  return r;
}

function renderAgents() {
  const sorted = [...agents.values()].sort(
    (x, y) => STATES.indexOf(x.state) - STATES.indexOf(y.state) || x.name.localeCompare(y.name),
  );
  const body = $("agents").tBodies[0];
  sorted.forEach((a, i) => {
    const { tr, cells, buttons } = rowOf(a);
    tr.dataset.state = a.state;
    tr.className = `s-${a.state}`;
    cells[0].textContent = a.name;
    cells[1].replaceChildren(el("span", { class: `state s-${a.state}`, text: a.state }));
    cells[2].textContent = a.reason || "";
    cells[3].dataset.since = a.sinceMs ?? "";
    cells[4].textContent = a.call_id ? `${a.call_id}${a.direction ? ` (${a.direction})` : ""}` : "";
    cells[5].textContent = (a.tasks || []).join(", ");
    const on = a.state !== "logged_out";
    buttons.ready.disabled = !on;
    buttons.pause.disabled = !on;
    buttons.hangup.disabled = a.state !== "talking";
    buttons.logout.disabled = !on;
    // Rows move only when the order by state changes.
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
  });
  const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
  for (const a of agents.values()) counts[a.state] = (counts[a.state] || 0) + 1;
  $("by-state").replaceChildren(
    ...STATES.map((s) => el("span", { class: `count s-${s}`, "data-state": s }, `${s.replace("_", "-")} `, el("b", { text: counts[s] }))),
  );
  tick();
}

function pct(x) {
  return typeof x === "number" ? `${(x * 100).toFixed(1)} %` : "—";
}

function renderQueues() {
  const body = $("queues").tBodies[0];
  body.replaceChildren(
    ...choices.tasks.map((t) => {
      const f = figures.get(t.id);
      const waiting = f ? f.waiting_callers.length : 0;
      return el("tr", { "data-task": t.id },
        el("td", { text: `${t.campaign} — ${t.name}` }),
        el("td", { text: f ? f.mode + (f.draining ? " (draining)" : "") : `${t.dial_mode} (not dialling)` }),
        el("td", { text: f ? f.calls_in_flight : "—" }),
        el("td", { class: waiting > 0 ? "waiting" : "", text: f ? waiting : "—", title: f ? f.waiting_callers.map((c) => `${c.number} ${Math.round(c.waited_seconds)} s`).join("\n") : "" }),
        el("td", { text: f ? f.dial_level.toFixed(2) : "—" }),
        el("td", { text: f ? pct(f.answer_rate) : "—" }),
        el("td", { text: f ? pct(f.abandon_ratio_24h) : "—" }),
        el("td", { text: f ? pct(f.abandon_ratio_30d) : "—" }),
        el("td", { text: f ? `${f.placed} / ${f.answered} / ${f.abandoned}` : "—" }),
      );
    }),
  );
}

function tick() {
  for (const td of document.querySelectorAll("#agents td.since")) {
    const since = Number(td.dataset.since);
    td.textContent = td.dataset.since ? clock((Date.now() - since) / 1000) : "";
  }
}
setInterval(tick, 1000);

const SVG = "http://www.w3.org/2000/svg";

/** An SVG element with presentation attributes (no style attribute: the CSP allows none). */
function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  for (const c of children) e.append(c);
  return e;
}

async function loadHistory() {
  const campaigns = [...new Set(choices.tasks.map((t) => t.campaign_id))];
  const plots = [];
  for (const id of campaigns) {
    const h = await attempt("Loading the last hours", () =>
      api.call("GET", `/api/v1/campaigns/${id}/dialer/history?hours=6`),
    );
    if (!h) continue;
    const campaign = choices.tasks.find((t) => t.campaign_id === id)?.campaign ?? id;
    for (const t of h.tasks) plots.push(plot(`${campaign} — ${t.name}`, t));
  }
  $("history").replaceChildren(...plots);
}

/** One task's plot: occupancy 0–100 % as a line, abandoned ÷ answered 0–10 % as bars. */
function plot(title, task) {
  const [w, h, left, bottom] = [720, 140, 40, 20];
  const n = task.buckets.length;
  const step = (w - left) / Math.max(n, 1);
  const y = (share, top) => (h - bottom) - Math.min(share / top, 1) * (h - bottom - 10);
  const g = svg("svg", { viewBox: `0 0 ${w} ${h}`, width: w, height: h, role: "img", "data-task": task.task_id });
  g.append(svg("title", {}, `${title}: occupancy and abandons per 5 minutes`));
  for (const [share, label] of [[0, "0"], [0.5, "50 %"], [1, "100 %"]]) {
    g.append(svg("line", { x1: left, x2: w, y1: y(share, 1), y2: y(share, 1), stroke: "#ccc" }));
    g.append(svg("text", { x: 0, y: y(share, 1) + 4, "font-size": 10 }, label));
  }
  g.append(svg("text", { x: w - 150, y: 8, "font-size": 10, fill: "#c0392b" }, "bars: abandoned, 0–10 % of answers"));
  const points = [];
  task.buckets.forEach((b, i) => {
    const x = left + i * step;
    if (b.answered > 0 && b.abandoned > 0) {
      const top = y(b.abandoned / b.answered, 0.1);
      g.append(svg("rect", { class: "abandon", x, y: top, width: Math.max(step - 1, 1), height: (h - bottom) - top, fill: "#c0392b" },
        svg("title", {}, `${b.start}: ${b.abandoned} of ${b.answered} abandoned`)));
    }
    if (b.occupancy !== null) {
      const [cx, cy] = [x + step / 2, y(b.occupancy, 1)];
      points.push(`${cx.toFixed(1)},${cy.toFixed(1)}`);
      g.append(svg("circle", { cx, cy, r: 2.5, fill: "#1f6feb" },
        svg("title", {}, `${b.start}: occupancy ${(b.occupancy * 100).toFixed(1)} %`)));
    }
    if (i % 12 === 0) {
      const t = new Date(b.start);
      g.append(svg("text", { x, y: h - 4, "font-size": 10 }, `${String(t.getHours()).padStart(2, "0")}:${String(t.getMinutes()).padStart(2, "0")}`));
    }
  });
  if (points.length) g.append(svg("polyline", { class: "occupancy", points: points.join(" "), fill: "none", stroke: "#1f6feb", "stroke-width": 2 }));
  return el("figure", { class: "plot" }, el("figcaption", { text: title }), g);
}
