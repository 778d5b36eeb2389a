// The live page: sign in, keep the session fresh, follow channels over the WebSocket.
"use strict";
const $ = (id) => document.getElementById(id);
const REFRESH_AT = 0.8;      // refresh when this share of the access token's life has passed
const RETRY_MS = 2000;       // wait before retrying a stream or a refresh that failed
const SESSION_ENDED = 4401;  // close code: the credentials that opened the stream ended
let session = null;          // the current token pair; null when signed out
let refreshTimer = null, refreshing = null, socket = null, channels = "";
const positions = {};        // channel -> id of the last event shown on it

async function call(method, path, body, token) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { method, headers, body: body && JSON.stringify(body) });
  const data = response.status === 204 ? null : await response.json();
  if (!response.ok) {
    throw Object.assign(new Error(`${data.title}: ${data.detail} (${data.code})`), { status: response.status });
  }
  return data;
}

// A call as the signed-in user. A 401 means the access token ran out meanwhile: refresh once, retry.
async function api(method, path, body) {
  try {
    return await call(method, path, body, session.accessToken);
  } catch (err) {
    if (err.status !== 401) throw err;
    await refresh();
    return call(method, path, body, session.accessToken);
  }
}

function keep(tokens) {
  session = tokens;
  schedule(tokens.expiresIn * REFRESH_AT * 1000);
}

function schedule(ms) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => refresh().catch(console.warn), ms);
}

// One refresh at a time: refresh tokens rotate, and presenting a used one ends the whole session.
function refresh() {
  if (!session) return Promise.reject(new Error("signed out"));
  refreshing ??= call("POST", "/v1/auth/refresh", { refreshToken: session.refreshToken })
    .then(keep, (err) => {
      if (err.status === 401) signOut("Your session has ended: sign in again.");
      else schedule(RETRY_MS);  // the gateway is unreachable or busy: the pair still holds
      throw err;
    })
    .finally(() => { refreshing = null; });
  return refreshing;
}

function signOut(message) {
  session = null;
  clearTimeout(refreshTimer);
  if (socket) { const old = socket; socket = null; old.close(); }
  $("live").hidden = true; $("signin").hidden = false;
  $("login-error").textContent = message; $("login-error").hidden = false;
}

async function health() {
  const pill = $("health");
  try {
    const response = await fetch("/health/ready");
    const body = await response.json();
    const bad = Object.entries(body.checks).filter(([, c]) => !c.ok).map(([n]) => n);
    pill.textContent = bad.length ? `degraded: ${bad.join(", ")}` : `ready · worker lag ${body.checks.worker.lag}`;
    pill.className = "pill " + (bad.length ? "bad" : "ok");
  } catch (err) {
    pill.textContent = "gateway unreachable"; pill.className = "pill bad";
  }
}

function streamState(text, ok) {
  $("stream-state").textContent = text;
  $("stream-state").className = "pill " + (ok ? "ok" : "bad");
}

function show(frame) {
  const row = document.createElement("tr");
  row.className = "fresh";
  const cells = [frame.id, frame.channel, frame.event.type, frame.event.occurredAt, JSON.stringify(frame.event.data)];
  cells.forEach((text, i) => {
    const cell = document.createElement("td");
    cell.textContent = text;
    if (i === 4) cell.className = "data";
    row.appendChild(cell);
  });
  $("events").prepend(row);
}

// (Re)open the stream for `channels`, resuming each channel after the last event shown.
async function follow() {
  if (socket) { const old = socket; socket = null; old.close(); }
  if (!session) return;
  const { ticket } = await api("POST", "/v1/stream-tickets");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/v1/ws?token=${encodeURIComponent(ticket)}`);
  socket = ws;
  ws.onopen = () => {
    streamState("live", true);
    for (const channel of channels.split(",").map((c) => c.trim()).filter(Boolean)) {
      ws.send(JSON.stringify({ type: "resume", channel, after: positions[channel] || "0" }));
    }
  };
  ws.onmessage = (message) => {
    const frame = JSON.parse(message.data);
    if (frame.type === "event") { positions[frame.channel] = frame.id; show(frame); }
    else if (frame.type === "error") { console.warn(frame); streamState(frame.code, false); }
  };
  ws.onclose = (event) => {
    if (socket !== ws) return;  // replaced, or signed out
    socket = null;
    streamState("reconnecting", false);
    // A stream lives as long as the credentials that opened it: renew them, then resume at once.
    if (event.code === SESSION_ENDED) refresh().then(() => reconnect(0), () => reconnect(RETRY_MS));
    else reconnect(RETRY_MS);
  };
}

function reconnect(ms) {
  setTimeout(() => follow().catch(() => session && reconnect(RETRY_MS)), ms);
}

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  try {
    keep(await call("POST", "/v1/auth/login", { email: form.get("email"), password: form.get("password") }));
    const me = await api("GET", "/v1/users/me");
    $("who").textContent = `${me.name} · ${me.roles.join(", ")}`;
    $("signin").hidden = true; $("live").hidden = false; $("login-error").hidden = true;
    channels = [`user:${me.userId}`].concat(me.roles.includes("admin") ? ["dashboard"] : []).join(",");
    $("channels").elements.channels.value = channels;
    await follow();
  } catch (err) {
    $("login-error").textContent = err.message; $("login-error").hidden = false;
  }
});

$("channels").addEventListener("submit", (e) => {
  e.preventDefault();
  channels = e.target.elements.channels.value;
  follow().catch((err) => alert(err.message));
});

health();
setInterval(health, 5000);
