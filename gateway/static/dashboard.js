// The live page: sign in, take a stream ticket, follow channels over the WebSocket.
"use strict";
const $ = (id) => document.getElementById(id);
let token = null, userId = null, socket = null;
const positions = {};

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { method, headers, body: body && JSON.stringify(body) });
  const data = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(`${data.title}: ${data.detail} (${data.code})`);
  return data;
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

function show(frame, position) {
  const row = document.createElement("tr");
  row.className = "fresh";
  const cells = [position, frame.channel, frame.event.type, frame.event.occurredAt, JSON.stringify(frame.event.data)];
  cells.forEach((text, i) => {
    const cell = document.createElement("td");
    cell.textContent = text;
    if (i === 4) cell.className = "data";
    row.appendChild(cell);
  });
  $("events").prepend(row);
}

async function follow(channels) {
  if (socket) { socket.onclose = null; socket.close(); }
  const { ticket } = await api("POST", "/v1/stream-tickets");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/v1/ws?token=${encodeURIComponent(ticket)}`);
  const state = $("stream-state");
  socket.onopen = () => {
    state.textContent = "live"; state.className = "pill ok";
    for (const channel of channels.split(",").map((c) => c.trim()).filter(Boolean)) {
      // Resume each channel after the last event seen (from the start the first time).
      socket.send(JSON.stringify({ type: "resume", channel, after: positions[channel] || "0" }));
    }
  };
  socket.onmessage = (message) => {
    const frame = JSON.parse(message.data);
    if (frame.type === "event") { positions[frame.channel] = frame.id; show(frame, frame.id); }
    else if (frame.type === "error") { console.warn(frame); state.textContent = frame.code; state.className = "pill bad"; }
  };
  socket.onclose = () => {
    // Tickets are short-lived: reconnect with a fresh one and resume where we were.
    state.textContent = "reconnecting"; state.className = "pill bad";
    setTimeout(() => follow(channels).catch(console.error), 2000);
  };
}

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  try {
    const tokens = await api("POST", "/v1/auth/login", { email: form.get("email"), password: form.get("password") });
    token = tokens.accessToken;
    const me = await api("GET", "/v1/users/me");
    userId = me.userId;
    $("who").textContent = `${me.name} · ${me.roles.join(", ")}`;
    $("signin").hidden = true; $("live").hidden = false;
    const channels = [`user:${userId}`].concat(me.roles.includes("admin") ? ["dashboard"] : []).join(",");
    $("channels").elements.channels.value = channels;
    await follow(channels);
  } catch (err) {
    $("login-error").textContent = err.message; $("login-error").hidden = false;
  }
});

$("channels").addEventListener("submit", (e) => {
  e.preventDefault();
  follow(e.target.elements.channels.value).catch((err) => alert(err.message));
});

health();
setInterval(health, 5000);
