// The agent console: log in, choose tasks and a phone, ready / pause / hang up, the screen
// pop before the audio joins, preview dial or skip, the result with a wrap-up countdown.
// Everything comes pushed over the agent's event WebSocket; nothing is polled.

import { $, Api, EventStream, attempt, clock, el, notice, show, wallToInstant } from "./api.js";
import { BrowserAudio } from "./audio.js";

const api = new Api();
let stream = null;
let choices = { pause_reasons: [], tasks: [], forms: {} };
let agent = { state: "logged_out", reason: null, since: Date.now() };
// The contact on screen: {call, task, contact, direction, fields, phones, campaign, zone}.
let current = null;
let offerPending = false;
let wrapDeadline = null;
let calls = 0;
let talkMs = 0;
let talkingSince = null;
// Events seen: an action's answer older than the last event is not applied over it.
let eventCount = 0;
// The browser's audio leg, when the session's audio is this browser.
let audio = null;
let muted = false;

const STATE_NAMES = {
  logged_out: "logged out",
  paused: "paused",
  ready: "ready",
  reserved: "reserved",
  talking: "talking",
  wrap_up: "wrap-up",
};

// ---- log in and session start ----

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const me = await attempt("Log in", () =>
    api.login($("login-name").value.trim(), $("login-password").value),
  );
  $("login-password").value = "";
  if (!me) return;
  if (me.role !== "agent") {
    api.forget();
    notice(`${me.name} is ${me.role}, not an agent: supervisors use /supervisor/`, "error");
    return;
  }
  notice("");
  $("who").textContent = me.name;
  choices = (await attempt("Loading tasks", () => api.call("GET", "/api/v1/agent/choices"))) || choices;
  fillSetup();
  fillPauseReasons();
  show($("login"), false);
  stream = new EventStream(api, "/api/v1/agent/events", { onEvent, onLink });
  await resync();
  stream.open();
});

function fillSetup() {
  const box = $("setup-tasks");
  box.replaceChildren();
  for (const t of choices.tasks) {
    box.append(
      el("label", {}, el("input", { type: "checkbox", name: "task", value: t.id, checked: choices.tasks.length === 1 }),
        ` ${t.campaign} — ${t.name} (${t.dial_mode})`),
    );
  }
  if (choices.tasks.length === 0) box.append(el("p", { text: "No call task is open to you." }));
}

function fillPauseReasons() {
  const sel = $("pause-reason");
  sel.replaceChildren(...choices.pause_reasons.map((r) => el("option", { value: r, text: r })));
}

$("setup-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const tasks = [...document.querySelectorAll("#setup-tasks input:checked")].map((i) => Number(i.value));
  const kind = document.querySelector("input[name=phone-kind]:checked").value;
  const phone = kind === "number" ? $("setup-number").value.trim() : kind;
  if (tasks.length === 0) return notice("Choose at least one task.", "warn");
  $("setup-start").disabled = true;
  const before = eventCount;
  let view;
  cancelReconnect();
  audioTasks = null;
  if (phone === "webrtc") {
    view = await startBrowserAudio(tasks);
  } else {
    notice(phone === "sip" ? "Calling your SIP phone…" : `Calling ${phone}…`, "info");
    view = await attempt("Starting the session", () =>
      api.call("POST", "/api/v1/agent/session", { tasks, phone }),
    );
  }
  $("setup-start").disabled = false;
  if (!view) return;
  notice("");
  $("audio-phone").textContent = { sip: "your SIP phone", webrtc: "this browser" }[phone] || phone;
  calls = 0;
  talkMs = 0;
  if (eventCount === before) applyView(view);
});

// ---- browser audio ----

// The tasks of a session whose audio is this browser: while set, lost audio logs in again.
let audioTasks = null;
// The pending reconnect: {timer, attempt}.
let reconnect = null;
// A reconnect logged in again: the page says so once the session is up.
let backSoon = false;

/** Connects this browser's audio as the session's leg: the offer goes with the login. With
 * `quiet`, failures are left to the caller (a reconnect says them its own way). */
async function startBrowserAudio(tasks, quiet = false) {
  stopBrowserAudio();
  if (!quiet) notice("Connecting this browser's audio…", "info");
  const leg = new BrowserAudio((why) => {
    if (audio !== leg) return;
    audioLost(why);
  });
  let sdp;
  try {
    sdp = await leg.offer();
  } catch (e) {
    leg.close();
    if (!quiet) notice(`The microphone is not available: ${e.message}`, "error");
    return null;
  }
  const login = () => api.call("POST", "/api/v1/agent/session", { tasks, phone: "webrtc", sdp });
  const view = quiet ? await login().catch(() => null) : await attempt("Starting the session", login);
  if (!view) {
    leg.close();
    return null;
  }
  try {
    await leg.answer(view.sdp);
  } catch (e) {
    // dialerd times the session out when the audio never connects.
    leg.close();
    if (!quiet) notice(`dialerd's audio answer was refused by this browser: ${e.message}`, "error");
    return view;
  }
  audio = leg;
  audioTasks = tasks;
  muted = false;
  $("mute").textContent = "Mute";
  $("webrtc-status").textContent = "Browser audio connected.";
  show($("webrtc-controls"), true);
  return view;
}

function stopBrowserAudio() {
  if (audio) audio.close();
  audio = null;
  show($("webrtc-controls"), false);
}

/** The browser's audio is gone (its connection failed, or dialerd ended the session with
 * `leg_lost`): says so and logs in again with the same tasks, backing off. */
function audioLost(why) {
  if (!audioTasks || reconnect) return;
  stopBrowserAudio();
  scheduleReconnect(1, why);
}

function scheduleReconnect(attempt, why) {
  const delay = Math.min(30, 2 ** (attempt - 1));
  $("webrtc-status").textContent = `Browser audio lost (${why}).`;
  notice(`Browser audio lost (${why}) — reconnecting in ${delay} s (try ${attempt})…`, "warn");
  reconnect = { attempt, timer: setTimeout(() => reconnectAudio(attempt, why), delay * 1000) };
}

function cancelReconnect() {
  if (reconnect) clearTimeout(reconnect.timer);
  reconnect = null;
}

async function reconnectAudio(attempt, why) {
  const tasks = audioTasks;
  if (!tasks || !reconnect) return;
  notice(`Reconnecting browser audio (try ${attempt})…`, "warn");
  // Until dialerd has ended the old session (its leg times out), a new login is refused; a
  // session someone logged out meanwhile stays logged out.
  let v = null;
  try {
    v = await api.call("GET", "/api/v1/agent/session");
  } catch (e) {
    if (e.status !== 409) v = { state: "unknown" };
  }
  const live = v && (v.state !== "logged_out" || v.reason === "connecting");
  if (v && !live && !["leg_lost", "leg_failed", "timeout"].includes(v.reason)) {
    cancelReconnect();
    audioTasks = null;
    applyView(v);
    return;
  }
  const before = eventCount;
  const view = live ? null : await startBrowserAudio(tasks, true);
  if (!reconnect || reconnect.attempt !== attempt) return;
  reconnect = null;
  if (!view) {
    scheduleReconnect(attempt + 1, why);
    return;
  }
  backSoon = true;
  notice("Browser audio reconnected: waiting for dialerd…", "info");
  if (eventCount === before) applyView(view);
}

$("mute").addEventListener("click", () => {
  if (!audio) return;
  muted = !muted;
  audio.mute(muted);
  $("mute").textContent = muted ? "Unmute" : "Mute";
});

// The keypad sends tones to whom the agent talks to (an IVR's menu, an extension).
for (const key of document.querySelectorAll("#keypad [data-digit]")) {
  key.addEventListener("click", () => {
    if (audio && !audio.sendDigits(key.dataset.digit)) {
      notice("This call's audio cannot carry keypad tones.", "warn");
    }
  });
}

// The meters follow the audio; tests read the same figures through this hook.
window.dialerdAudio = () => (audio ? audio.levels() : null);
setInterval(() => {
  const l = audio ? audio.levels() : { mic: 0, heard: 0 };
  $("mic-level").value = l.mic;
  $("heard-level").value = l.heard;
}, 100);

$("setup-logout").addEventListener("click", () => {
  cancelReconnect();
  audioTasks = null;
  stopBrowserAudio();
  if (stream) stream.close();
  api.forget();
  location.reload();
});

// ---- state bar ----

function applyState(state, reason, sinceMs) {
  const was = agent.state;
  agent = { state, reason, since: sinceMs };
  const bar = $("state");
  bar.textContent = STATE_NAMES[state] || state;
  bar.className = `state s-${state}`;
  $("reason").textContent = reason ? `(${reason})` : "";
  const loggedIn = state !== "logged_out";
  show($("setup"), !loggedIn && api.signedIn);
  show($("desk"), loggedIn);
  $("ready").disabled = !["paused", "wrap_up"].includes(state);
  $("pause").disabled = !["ready", "reserved", "talking", "wrap_up"].includes(state);
  $("hangup").disabled = !(state === "talking" || (state === "reserved" && !offerPending));
  if (state === "ready" || state === "paused" || state === "logged_out") {
    if (was === "wrap_up" || was === "reserved" || !loggedIn) clearCall();
  }
  if (state !== "wrap_up") {
    wrapDeadline = null;
  }
  const ended = { leg_lost: "your phone hung up or went silent", leg_failed: "your phone did not answer", timeout: "your phone did not answer in time" };
  if (!loggedIn && reason !== "connecting") {
    if (audioTasks && reason === "leg_lost") {
      // This browser's audio was the leg: it comes back by itself.
      audioLost("dialerd lost the connection");
      return;
    }
    // Logged out on purpose (here, by a supervisor, or the audio never connected).
    cancelReconnect();
    audioTasks = null;
    backSoon = false;
    stopBrowserAudio();
  }
  if (loggedIn && backSoon) {
    backSoon = false;
    notice("Browser audio is back: you are paused; go ready when you are.", "info");
  }
  if (state === "logged_out" && was !== "logged_out" && ended[reason]) {
    notice(`Session ended: ${ended[reason]}.`, "warn");
  }
}

function applyView(v) {
  applyState(v.state, v.reason, v.since ? Date.parse(v.since) : Date.now());
}

/** Reads the session and the contact on screen again (at log-in and after a lost link). */
async function resync() {
  let v;
  try {
    v = await api.call("GET", "/api/v1/agent/session");
  } catch (e) {
    if (e.status === 409) v = { state: "logged_out", reason: null, since: null };
    else return notice(`Reading the session: ${e.message}`, "error");
  }
  applyView(v);
  if (v.call_id && (!current || current.call !== v.call_id)) {
    const k = await api.call("GET", "/api/v1/agent/contact").catch(() => null);
    if (k) {
      const task = (v.tasks || [])[0];
      showPop({ call: v.call_id, task, contact: k.id, fields: k.fields, phones: k.phones, direction: "call" });
      renderContact(k);
    }
  }
}

for (const [id, action] of [
  ["ready", () => api.call("POST", "/api/v1/agent/ready")],
  ["pause", () => api.call("POST", "/api/v1/agent/pause", { reason: $("pause-reason").value })],
  ["hangup", () => api.call("POST", "/api/v1/agent/hangup")],
  ["logout", () => api.call("DELETE", "/api/v1/agent/session")],
  ["preview-dial", () => api.call("POST", "/api/v1/agent/preview/dial")],
  ["preview-skip", () => api.call("POST", "/api/v1/agent/preview/skip")],
]) {
  $(id).addEventListener("click", async () => {
    if (id === "preview-dial") $("pop-status").textContent = "Dialling…";
    const before = eventCount;
    const v = await attempt($(id).textContent, action);
    if (!v) return;
    if (id.startsWith("preview-")) {
      offerPending = false;
      show($("preview-actions"), false);
      if (id === "preview-skip" && eventCount === before) clearCall();
    }
    // An event newer than the request already says more than its answer.
    if (eventCount === before) applyView(v);
  });
}

// ---- events ----

function onLink(up, attempt) {
  const dot = $("link");
  dot.className = up ? "link up" : "link down";
  if (!up) {
    notice(`Connection to dialerd lost — reconnecting (try ${attempt})…`, "warn");
  } else if (attempt > 0) {
    notice("Reconnected to dialerd.", "info");
    setTimeout(() => {
      if ($("notice").textContent === "Reconnected to dialerd.") notice("");
    }, 3000);
    resync();
  }
}

function onEvent(e) {
  eventCount += 1;
  const at = e.at ? Date.parse(e.at) : Date.now();
  switch (e.type) {
    case "state":
      applyState(e.state, e.reason, at);
      break;
    case "preview.offer":
      offerPending = true;
      showPop({ ...e, direction: "preview" });
      $("pop-status").textContent = "Preview: dial this contact or skip it.";
      show($("preview-actions"), true);
      $("hangup").disabled = true;
      break;
    case "call.offered":
      offerPending = false;
      show($("preview-actions"), false);
      showPop(e);
      $("pop-status").textContent = "Putting the customer through…";
      break;
    case "call.connected":
      calls += 1;
      talkingSince = at;
      $("pop-status").textContent = "Talking.";
      break;
    case "call.customer_hangup":
      $("pop-status").textContent = "The customer hung up.";
      break;
    case "call.ended":
      if ($("pop-status").textContent === "Talking.") $("pop-status").textContent = "Call ended.";
      if (talkingSince !== null) talkMs += Math.max(0, at - talkingSince);
      talkingSince = null;
      break;
    case "wrap_up":
      wrapDeadline = Date.parse(e.deadline);
      showResult();
      break;
    default:
      break;
  }
  tick();
}

// ---- screen pop ----

function showPop(e) {
  const task = choices.tasks.find((t) => t.id === e.task);
  current = {
    call: e.call,
    task: e.task,
    contact: e.contact,
    direction: e.direction,
    fields: e.fields || {},
    phones: e.phones || [],
    campaign: task ? task.campaign_id : null,
    zone: null,
  };
  const pop = $("pop");
  pop.dataset.direction = e.direction;
  pop.className = `card pop dir-${e.direction}`;
  $("pop-direction").textContent = e.direction;
  $("pop-title").textContent = `contact ${e.contact}${task ? ` — ${task.campaign}` : ""}`;
  $("pop-phones").replaceChildren(...current.phones.map((p) => el("li", { text: p })));
  renderFields(current.fields);
  $("pop-history").replaceChildren();
  show(pop, true);
  show($("result"), false);
  // The history and time zone come from the contact itself.
  api
    .call("GET", "/api/v1/agent/contact")
    .then((k) => {
      if (current && current.contact === k.id) renderContact(k);
    })
    .catch(() => {});
}

function renderFields(fields) {
  $("pop-fields").replaceChildren(
    ...Object.entries(fields).flatMap(([k, v]) => [
      el("dt", { text: fieldTitle(k) }),
      el("dd", { text: v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v) }),
    ]),
  );
}

function fieldTitle(key) {
  const form = current && current.campaign !== null ? choices.forms[current.campaign] || [] : [];
  const f = form.find((f) => f.key === key);
  return f && f.title ? f.title : key;
}

function renderContact(k) {
  current.fields = k.fields || current.fields;
  current.zone = k.time_zone || null;
  current.campaign = current.campaign ?? k.campaign_id;
  renderFields(current.fields);
  const items = (k.history || []).slice(-20).reverse().map((h) => {
    const c = h.change || {};
    const what = [c.op, c.result, c.status, c.detail, c.note].filter(Boolean).join(" · ");
    return el("li", {}, el("time", { text: h.at.replace("T", " ").slice(0, 16) }), ` ${h.actor}: ${what || JSON.stringify(c)}`);
  });
  $("pop-history").replaceChildren(...(items.length ? items : [el("li", { text: "no earlier calls" })]));
  if (!$("result").hidden) fillResultFields();
}

function clearCall() {
  current = null;
  offerPending = false;
  show($("pop"), false);
  show($("result"), false);
  show($("preview-actions"), false);
  $("result-form").reset();
}

// ---- result ----

function showResult() {
  if (!current) return;
  $("result-form").reset();
  $("result-zone").textContent = current.zone ? `(${current.zone})` : "(your time)";
  fillResultFields();
  show($("result"), true);
  $("result-detail").focus();
}

function fillResultFields() {
  const form = current.campaign !== null ? choices.forms[current.campaign] || [] : [];
  const box = $("result-fields");
  box.replaceChildren();
  for (const f of form) {
    const v = current.fields[f.key];
    let input;
    const common = { "data-key": f.key, "data-type": f.type, id: `field-${f.key}`, disabled: f.read_only, required: f.required && !f.read_only };
    switch (f.type) {
      case "choice":
        input = el("select", common, el("option", { value: "", text: "—" }),
          f.choices.map((c) => el("option", { value: c, text: c, selected: v === c })));
        break;
      case "multi_choice":
        input = el("select", { ...common, multiple: true },
          f.choices.map((c) => el("option", { value: c, text: c, selected: Array.isArray(v) && v.includes(c) })));
        break;
      case "bool":
        input = el("input", { ...common, type: "checkbox", checked: v === true, required: false });
        break;
      case "note":
        input = el("textarea", common);
        input.value = v ?? "";
        break;
      case "number":
        input = el("input", { ...common, type: "number", step: "any", value: v ?? "" });
        break;
      case "date":
        input = el("input", { ...common, type: "date", value: v ?? "" });
        break;
      default:
        input = el("input", { ...common, type: f.type === "email" ? "email" : "text", value: v ?? "" });
    }
    box.append(el("label", { title: f.help || "" }, `${f.title || f.key}${f.required ? " *" : ""} `, input));
  }
  show($("result-fields-box"), form.length > 0);
}

/** The fields the agent changed, typed as the form wants; null (and a notice) when a required
 * field is empty. */
function editedFields() {
  const out = {};
  for (const input of document.querySelectorAll("#result-fields [data-key]")) {
    if (input.disabled) continue;
    const key = input.dataset.key;
    const type = input.dataset.type;
    let v;
    if (type === "bool") v = input.checked;
    else if (type === "multi_choice") v = [...input.selectedOptions].map((o) => o.value);
    else if (type === "number") v = input.value === "" ? null : Number(input.value);
    else v = input.value.trim() === "" ? null : input.value.trim();
    const empty = v === null || (Array.isArray(v) && v.length === 0);
    if (input.required && empty) {
      input.focus();
      notice(`${fieldTitle(key)} is required.`, "warn");
      return null;
    }
    const was = current.fields[key] ?? null;
    if (JSON.stringify(was) !== JSON.stringify(v) && !(empty && was === null)) out[key] = v;
  }
  return out;
}

// A warning about the form goes once the agent edits it.
$("result-form").addEventListener("input", () => {
  if ($("notice").classList.contains("warn")) notice("");
});

$("result-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!current) return;
  const fields = editedFields();
  if (fields === null) return;
  const body = {
    status: $("result-status").value,
    detail: $("result-detail").value.trim(),
    follow_up: document.querySelector("input[name=follow-up]:checked").value,
    fields,
  };
  if (!body.detail) return notice("Detail is required.", "warn");
  if (body.follow_up === "particular") {
    const wall = $("result-at").value;
    if (!wall) return notice("A particular follow-up needs a date and time.", "warn");
    const zone = current.zone || Intl.DateTimeFormat().resolvedOptions().timeZone;
    body.follow_up_at = wallToInstant(wall, zone);
  }
  $("result-submit").disabled = true;
  const before = eventCount;
  const v = await attempt("Submitting the result", () => api.call("POST", "/api/v1/agent/result", body));
  $("result-submit").disabled = false;
  if (!v) return;
  notice("Result saved.", "info");
  if (eventCount === before) {
    clearCall();
    applyView(v);
  }
});

// ---- clocks and keys ----

function tick() {
  $("state-time").textContent = clock((Date.now() - agent.since) / 1000);
  $("calls").textContent = String(calls);
  const talking = talkingSince !== null ? Date.now() - talkingSince : 0;
  $("talk-time").textContent = clock((talkMs + talking) / 1000);
  const cd = $("wrap-countdown");
  if (wrapDeadline !== null) {
    const left = (wrapDeadline - Date.now()) / 1000;
    cd.textContent = `wrap-up ${clock(left)}`;
    cd.classList.toggle("late", left < 10);
  } else {
    cd.textContent = "";
  }
}
setInterval(tick, 1000);

const KEYS = { KeyR: "ready", KeyP: "pause", KeyH: "hangup", KeyD: "preview-dial", KeyK: "preview-skip" };
document.addEventListener("keydown", (e) => {
  if (!e.altKey || e.ctrlKey || e.metaKey) return;
  if (e.code === "KeyS") {
    e.preventDefault();
    if (!$("result").hidden) $("result-form").requestSubmit();
    return;
  }
  const id = KEYS[e.code];
  if (!id) return;
  e.preventDefault();
  const b = $(id);
  if (!b.disabled && b.offsetParent !== null) b.click();
});

// For tests and the curious: drop the event link as a network failure would, or stop the
// browser's RTP while its connection stays up.
window.dialerdConsole = {
  dropEvents: () => stream && stream.drop(),
  stopAudio: () => (audio ? audio.stopSending() : null),
};
