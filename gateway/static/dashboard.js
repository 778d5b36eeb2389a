// The live dashboard: sign in, pick whose numbers (admins), follow them as they change.
// Its modules, /static/dashboard-*.js: session (tokens), stream (push), chart, tiles, feed.
import { drawChart, emptyHour } from "./dashboard-chart.js";
import { ago, byAmount, utcDay } from "./dashboard-format.js";
import { Feed } from "./dashboard-feed.js";
import * as session from "./dashboard-session.js";
import { Push } from "./dashboard-stream.js";
import { renderTiles, renderTop } from "./dashboard-tiles.js";

const $ = (id) => document.getElementById(id);
// Snapshots are pushed only when something changed; a refetch now and then keeps the
// decaying numbers (visitors now) honest. Without a push channel the page polls.
const REFETCH_MS = { pushed: 60000, polled: 5000, missing: 30000, failed: 10000 };
const HEALTH_MS = 15000;
const CONNECTION = {
  connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", offline: "Offline",
};

const feed = new Feed($("events"), $("feed-empty"));
const push = new Push({ onEvent, onState: connectionState, onLiveOpen, onLiveRefused });
let me = null;
let scope = null;          // {sellerId: null|ID, channel, label}
let snapshot = null;       // the newest snapshot of the current scope
let pushed = false;        // whether the scope's channel accepted our subscription
let currency = null;       // the chart's revenue currency, once the user picked one
let snapshotTimer = null, snapshotCall = 0;
let unreadIds = new Set(); // unread notifications (ids) as far as the page knows
let unreadCount = null;    // the gateway's count, when it serves one
const loadedAt = Date.now();  // notifications created after this are new, hence unread

// ---- signing in and out ----------------------------------------------------------

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const button = event.target.querySelector("button");
  button.disabled = true;
  try {
    await session.signIn(form.get("email"), form.get("password"));
    await start();
  } catch (err) {
    showError(err.status === 401 ? "That email and password do not match an account." : err.message);
  } finally {
    button.disabled = false;
  }
});

$("signout").addEventListener("click", async () => {
  stop();
  await session.signOut();
  showSignIn();
});

session.onEnded((message) => {
  stop();
  showSignIn();
  showError(message);
});

function showError(message) {
  $("login-error").textContent = message;
  $("login-error").hidden = false;
}

function showSignIn() {
  $("app").hidden = true;
  $("signin").hidden = false;
  document.title = "Mercato · Sign in";
}

function stop() {
  push.stop();
  clearTimeout(snapshotTimer);
  snapshot = null;
  feed.clear();
}

async function start() {
  me = await session.api("GET", "/v1/users/me");
  $("who").textContent = me.name;
  $("role").textContent = me.roles.includes("admin") ? "Administrator"
    : me.roles.includes("seller") ? "Seller" : "Buyer";
  $("avatar").textContent = (me.name || me.email).trim().charAt(0).toUpperCase();
  $("signin").hidden = true;
  $("login-error").hidden = true;
  $("app").hidden = false;
  const admin = me.roles.includes("admin");
  const seller = me.roles.includes("seller");
  document.body.classList.toggle("no-analytics", !admin && !seller);
  $("seller-picker").hidden = !admin;
  $("scope-label").hidden = admin;  // the picker says whose numbers these are
  setScope(admin ? marketplace() : seller ? own() : null);
  push.start(`user:${me.userId}`, scope?.channel ?? null);
  loadNotifications();
  if (admin) loadSellers();
}

const marketplace = () => ({ sellerId: null, channel: "dashboard", label: "Marketplace" });
const own = () => ({ sellerId: me.userId, channel: `dashboard:${me.userId}`, label: "Your shop" });

function setScope(next) {
  scope = next;
  snapshot = null;
  pushed = Boolean(next);
  $("scope-label").textContent = next ? next.label : "Your account";
  document.title = `Mercato · ${next ? next.label : "Activity"}`;
  render();
  if (!next) {
    notice("Sales analytics are for sellers and operators",
      "This is a buyer account, so there is no shop to report on. Your orders and messages still appear live in the activity feed.");
  }
}

// ---- the snapshot ----------------------------------------------------------------

async function loadSnapshot() {
  if (!scope) return;
  clearTimeout(snapshotTimer);
  const call = ++snapshotCall;
  const asked = scope;
  const query = me.roles.includes("admin") && asked.sellerId ? `?sellerId=${encodeURIComponent(asked.sellerId)}` : "";
  let next = REFETCH_MS.failed;
  try {
    const body = await session.api("GET", `/v1/analytics/dashboard${query}`);
    if (call !== snapshotCall || asked !== scope) return;
    notice(null);
    apply(body);
    next = pushed ? REFETCH_MS.pushed : REFETCH_MS.polled;
  } catch (err) {
    if (call !== snapshotCall || asked !== scope) return;
    if (err.status === 404) {
      notice("Live analytics are not available yet",
        "This gateway does not serve the analytics snapshot (GET /v1/analytics/dashboard answered 404). " +
        "The numbers appear here by themselves once it does; orders and notifications already show live below.");
      next = REFETCH_MS.missing;
    } else if (err.status === 403) {
      notice("These numbers are not yours to see", "Ask an administrator for access to this shop's dashboard.");
      next = REFETCH_MS.missing;
    } else if (err.status !== 401) {
      notice("Could not load the numbers", `${err.message}. Retrying in a few seconds.`);
    }
  }
  snapshotTimer = setTimeout(loadSnapshot, next);
}

// A (re)opened stream: the channel is followed again, and what it missed is fetched.
function onLiveOpen() {
  pushed = Boolean(scope);
  loadSnapshot();
}

function onLiveRefused(channel, code) {
  if (!scope || channel !== scope.channel) return;
  pushed = false;  // poll instead
  console.warn(`push: ${channel} refused (${code}); polling the snapshot instead`);
  clearTimeout(snapshotTimer);
  snapshotTimer = setTimeout(loadSnapshot, REFETCH_MS.polled);
}

/** Show `next` unless it is older than what is shown, or of another scope. */
function apply(next) {
  if (!next || !scope) return;
  const sellerId = next.scope?.sellerId ?? null;
  if (sellerId !== scope.sellerId) return;
  if (snapshot && Date.parse(next.asOf) < Date.parse(snapshot.asOf)) return;
  snapshot = next;
  render();
}

function render() {
  renderTiles(snapshot);
  renderTop(snapshot);
  renderChart();
  renderAsOf();
  const whose = scope ? ` · ${scope.label}` : "";
  $("subtitle").textContent = `${utcDay(snapshot?.asOf ?? Date.now())} (UTC)${whose}`;
}

function renderAsOf() {
  $("asof").textContent = snapshot ? `Updated ${ago(snapshot.asOf)}` : "";
}

function currencies() {
  const seen = new Set(byAmount(snapshot?.today?.revenue).map((m) => m.currency));
  for (const bucket of snapshot?.lastHour || []) for (const m of bucket.revenue || []) seen.add(m.currency);
  return [...seen];
}

function renderChart() {
  const options = currencies();
  const shown = options.includes(currency) ? currency : options[0] ?? null;
  const chips = $("currencies");
  chips.replaceChildren(...(options.length > 1 ? options : []).map((code) => {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.textContent = code;
    chip.setAttribute("aria-pressed", String(code === shown));
    chip.addEventListener("click", () => { currency = code; renderChart(); });
    return chip;
  }));
  const buckets = snapshot?.lastHour?.length ? snapshot.lastHour : emptyHour();
  drawChart($("chart"), $("tooltip"), buckets, shown);
}

function notice(title, text) {
  $("notice").hidden = !title;
  if (title) {
    $("notice-title").textContent = title;
    $("notice-text").textContent = text;
  }
}

// ---- push --------------------------------------------------------------------------

function onEvent(channel, id, event) {
  if (event.type === "analytics.snapshot") {
    if (scope && channel === scope.channel) apply(event.data);
    return;
  }
  if (event.type === "notification.unread_changed") {
    unreadCount = event.data?.unread ?? unreadCount;
    badge();
    return;
  }
  const live = event.type === "notification.created" && Date.parse(event.occurredAt) > loadedAt;
  const unread = event.type === "notification.created" && (live || unreadIds.has(event.data.notificationId));
  const item = feed.add(channel, id, event, unread);
  if (item && live && unreadCount === null) {
    unreadIds.add(event.data.notificationId);
    badge();
  }
  if (item && unread) item.addEventListener("click", () => markRead(item), { once: true });
}

function connectionState(state, transport) {
  const shown = !navigator.onLine && state !== "live" ? "offline" : state;
  const pill = $("conn");
  pill.dataset.state = shown;
  pill.dataset.transport = transport;
  pill.querySelector("span").textContent =
    shown === "live" ? `Live · ${transport === "ws" ? "WebSocket" : "SSE"}` : CONNECTION[shown];
}

// ---- notifications ---------------------------------------------------------------

async function loadNotifications() {
  try {
    const page = await session.api("GET", "/v1/notifications?unread=true&limit=100");
    unreadIds = new Set(page.data.map((n) => n.notificationId));
    for (const item of $("events").querySelectorAll("li[data-notification-id]")) {
      if (unreadIds.has(item.dataset.notificationId) && !item.classList.contains("unread")) {
        item.classList.add("unread");
        item.addEventListener("click", () => markRead(item), { once: true });
      }
    }
  } catch (err) {
    console.warn("notifications:", err.message);
  }
  try {
    unreadCount = (await session.api("GET", "/v1/notifications/unread-count")).unread;
  } catch {
    unreadCount = null;  // an older gateway: count what the page knows
  }
  badge();
}

async function markRead(item) {
  if (!item.classList.contains("unread")) return;
  item.classList.remove("unread");
  const id = item.dataset.notificationId;
  unreadIds.delete(id);
  if (unreadCount !== null) unreadCount = Math.max(0, unreadCount - 1);
  badge();
  await session.api("POST", `/v1/notifications/${encodeURIComponent(id)}/read`).catch(() => {});
}

// Every notification of the user, read by one call (not only those the page shows). The
// agent reads those created up to the request and pushes the new count; one that arrives
// meanwhile stays unread, so the page clears only the lines it had and asks for the count.
$("read-all").addEventListener("click", async () => {
  const items = [...$("events").querySelectorAll("li.unread")];
  try {
    await session.api("POST", "/v1/notifications/read-all");
  } catch (err) {
    notice("Could not mark the notifications read", `${err.message}. Try again in a moment.`);
    return;
  }
  for (const item of items) {
    item.classList.remove("unread");
    unreadIds.delete(item.dataset.notificationId);
  }
  if (unreadCount !== null) {
    unreadCount = (await session.api("GET", "/v1/notifications/unread-count").catch(() => null))?.unread ?? unreadCount;
  }
  badge();
});

function badge() {
  const unread = unreadCount ?? unreadIds.size;
  $("read-all").hidden = unread === 0;
  for (const node of [$("unread"), $("tab-unread")]) {
    node.hidden = unread === 0;
    node.textContent = unread > 99 ? "99+" : String(unread);
    node.dataset.count = String(unread);
  }
  $("bell").setAttribute("aria-label", `Notifications: ${unread} unread`);
}

function filter(kind) {
  $("events").dataset.filter = kind;
  for (const tab of document.querySelectorAll(".tabs [role=tab]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.filter === kind));
  }
}

for (const tab of document.querySelectorAll(".tabs [role=tab]")) {
  tab.addEventListener("click", () => filter(tab.dataset.filter));
}
$("bell").addEventListener("click", () => {
  filter("notification");
  $("feed").scrollIntoView({ behavior: "smooth", block: "start" });
});

// ---- an admin's seller picker ----------------------------------------------------

async function loadSellers() {
  const picker = $("seller-picker");
  picker.replaceChildren(new Option("Whole marketplace", ""));
  const sellers = new Set();
  let cursor = "";
  try {
    for (let pages = 0; pages < 5; pages += 1) {
      const page = await session.api("GET", `/v1/products?status=all&limit=100${cursor}`);
      page.data.forEach((p) => sellers.add(p.sellerId));
      if (!page.pagination.hasMore) break;
      cursor = `&cursor=${encodeURIComponent(page.pagination.nextCursor)}`;
    }
  } catch (err) {
    console.warn("sellers:", err.message);
  }
  const named = await Promise.all([...sellers].slice(0, 50).map(async (id) => {
    try {
      const user = await session.api("GET", `/v1/users/${encodeURIComponent(id)}`);
      return { id, label: `${user.name} · ${user.email}` };
    } catch {
      return { id, label: `Seller ${id.slice(-6)}` };
    }
  }));
  named.sort((a, b) => a.label.localeCompare(b.label));
  const whole = new Option("Whole marketplace", "");
  picker.replaceChildren(whole, ...named.map((s) => new Option(s.label, s.id)));
}

$("seller-picker").addEventListener("change", (event) => {
  const id = event.target.value;
  const label = event.target.selectedOptions[0].textContent.split(" · ")[0];
  setScope(id ? { sellerId: id, channel: `dashboard:${id}`, label } : marketplace());
  push.switchLive(scope.channel);
});

// ---- the platform's health, and the clock ----------------------------------------

async function health() {
  const pill = $("health");
  try {
    const body = await (await fetch("/health/ready")).json();
    const bad = Object.entries(body.checks).filter(([, c]) => !c.ok).map(([name]) => name);
    pill.dataset.ok = String(!bad.length);
    pill.querySelector("span").textContent = bad.length
      ? `Degraded: ${bad.join(", ")}` : "All systems operational";
  } catch {
    pill.dataset.ok = "false";
    pill.querySelector("span").textContent = "The platform cannot be reached";
  }
}

// A visit to this page is a client event like any other (its failure changes nothing here).
function pageViewed() {
  let sessionId = sessionStorage.getItem("mercato.sessionId");
  if (!sessionId) {
    sessionId = crypto.randomUUID();
    sessionStorage.setItem("mercato.sessionId", sessionId);
  }
  const body = { events: [{ type: "page.viewed", sessionId, properties: { path: location.pathname } }] };
  session.call("POST", "/v1/analytics/events", body, session.accessToken()).catch(() => {});
}

window.addEventListener("resize", () => { if (!$("app").hidden) renderChart(); });
window.addEventListener("offline", () => connectionState("offline", push.transport));
window.addEventListener("online", () => push.kick());
let ticks = 0;
setInterval(() => { renderAsOf(); if (++ticks % 15 === 0) feed.tick(); }, 1000);
health();
setInterval(health, HEALTH_MS);
if (await session.restore()) await start().catch(() => showSignIn());
pageViewed();
