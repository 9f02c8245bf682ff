// The console's link to dialerd: the JSON API with a token held in memory only (never in
// storage or a URL), event WebSockets that reconnect by themselves with `since`, and small
// DOM helpers shared by the agent and supervisor pages.

/** A problem answer of the API (RFC 9457), or a network failure (status 0). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.field = problem.field || null;
  }
}

/** The API for one signed-in user; the token lives in this object only. */
export class Api {
  #token = null;

  get signedIn() {
    return this.#token !== null;
  }

  /** Logs in with a name and password; returns the user (`GET /api/v1/me`). */
  async login(name, password) {
    const t = await this.call("POST", "/api/v1/login", { name, password });
    this.#token = t.token;
    return this.call("GET", "/api/v1/me");
  }

  /** Forgets the token. */
  forget() {
    this.#token = null;
  }

  /** One request; resolves to the JSON answer (null when empty), rejects with ApiError. */
  async call(method, path, body) {
    const headers = { Accept: "application/json" };
    if (this.#token) headers.Authorization = `Bearer ${this.#token}`;
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, { detail: `dialerd is not reachable (${e.message})` });
    }
    const text = await resp.text();
    const value = text ? JSON.parse(text) : null;
    if (!resp.ok) throw new ApiError(resp.status, value || {});
    return value;
  }

  /** A single-use ticket for an event WebSocket. */
  async ticket() {
    return (await this.call("POST", "/api/v1/agent/ticket")).ticket;
  }
}

/**
 * An event WebSocket (`path` without the ticket) that reconnects by itself: each time with a
 * fresh ticket and, when `resume` is set, `since` the last `seq` seen. `onEvent(event)` gets
 * each message; `onLink(up, attempt)` says when the link is lost and back.
 */
export class EventStream {
  constructor(api, path, { onEvent, onLink, resume = true }) {
    this.api = api;
    this.path = path;
    this.onEvent = onEvent;
    this.onLink = onLink || (() => {});
    this.resume = resume;
    this.lastSeq = null;
    this.attempt = 0;
    this.socket = null;
    this.closed = false;
    this.timer = null;
  }

  /** Opens the stream (again). */
  async open() {
    if (this.closed) return;
    let ticket;
    try {
      ticket = await this.api.ticket();
    } catch (e) {
      if (e.status === 401 || e.status === 403) return this.close();
      return this.#retry();
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let url = `${scheme}//${location.host}${this.path}?ticket=${encodeURIComponent(ticket)}`;
    if (this.resume && this.lastSeq !== null) url += `&since=${this.lastSeq}`;
    const ws = new WebSocket(url);
    this.socket = ws;
    ws.onopen = () => {
      const was = this.attempt;
      this.attempt = 0;
      this.onLink(true, was);
    };
    ws.onmessage = (m) => {
      let e;
      try {
        e = JSON.parse(m.data);
      } catch {
        return;
      }
      if (typeof e.seq === "number" && (e.type !== "queue")) {
        this.lastSeq = Math.max(this.lastSeq ?? 0, e.seq);
      }
      this.onEvent(e);
    };
    ws.onclose = () => {
      if (this.socket !== ws || this.closed) return;
      this.socket = null;
      this.#retry();
    };
  }

  #retry() {
    if (this.closed) return;
    this.attempt += 1;
    this.onLink(false, this.attempt);
    // 0.5 s, 1 s, 2 s … at most 5 s between tries.
    const wait = Math.min(5000, 250 * 2 ** this.attempt);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), wait);
  }

  /** Drops the link on purpose (no reconnect). */
  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close();
    this.socket = null;
  }

  /** Drops the link as a network failure would, to test the reconnect. */
  drop() {
    if (this.socket) this.socket.close();
  }
}

/** `el("div", {class: "x"}, child, "text")`: an element (text is never parsed as HTML). */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/** The element of an id. */
export const $ = (id) => document.getElementById(id);

/** Shows or hides an element. */
export function show(e, visible) {
  e.hidden = !visible;
}

/** Seconds as `h:mm:ss` or `m:ss`. */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** Milliseconds of a `time_zone`'s offset from UTC at the instant `ms`. */
function zoneOffset(ms, zone) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  }).formatToParts(new Date(ms));
  const n = (t) => Number(parts.find((p) => p.type === t).value);
  const wall = Date.UTC(n("year"), n("month") - 1, n("day"), n("hour"), n("minute"), n("second"));
  return wall - Math.floor(ms / 1000) * 1000;
}

/** A wall-clock `YYYY-MM-DDTHH:MM` in `zone` as an RFC 3339 instant (UTC). */
export function wallToInstant(wall, zone) {
  const [d, t] = wall.split("T");
  const [y, mo, da] = d.split("-").map(Number);
  const [h, mi] = t.split(":").map(Number);
  const guess = Date.UTC(y, mo - 1, da, h, mi);
  let ms = guess - zoneOffset(guess, zone);
  ms = guess - zoneOffset(ms, zone);
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Shows a message in the page's notice bar (`kind`: info, warn, error); empty hides it. */
export function notice(text, kind = "info") {
  const bar = $("notice");
  bar.textContent = text;
  bar.className = `notice ${kind}`;
  show(bar, Boolean(text));
}

/** Runs an action, showing its failure in the notice bar; resolves to its value or null. */
export async function attempt(what, action) {
  try {
    return await action();
  } catch (e) {
    notice(`${what}: ${e.message}`, "error");
    return null;
  }
}
