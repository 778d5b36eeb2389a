// The activity feed: each pushed event as one readable line, newest first, shown once.
import { ago, count, money, ref } from "./dashboard-format.js";

const LIMIT = 200;    // items kept on the page; older ones scroll off
const SEEN = 50000;   // event ids remembered against replays (a day of a busy shop)
// An order's status: its chip's label and colour.
const STATUS = {
  pending: ["Pending", "order"],
  stock_reserved: ["Stock reserved", "order"],
  paid: ["Paid", "money"],
  delivered: ["Delivered", "money"],
  completed: ["Completed", "done"],
  rejected: ["Out of stock", "bad"],
  payment_failed: ["Payment failed", "bad"],
  cancelled: ["Cancelled", "bad"],
  refunded: ["Refunded", "bad"],
};

function humanize(type) {
  const words = type.replace(/[._]/g, " ").trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** {kind, headline, detail} for an event envelope. */
export function describe(event) {
  const d = event.data || {};
  switch (event.type) {
    case "order.placed": {
      const units = (d.items || []).reduce((n, line) => n + (line.quantity || 0), 0);
      return { kind: "order", headline: `New order ${ref(d.orderId)}`,
        detail: `${count(units)} ${units === 1 ? "item" : "items"} · ${money({ amount: d.total, currency: d.currency })}` };
    }
    case "order.status_changed":  // an order first seen by a later step (older than the replay)
      return { kind: "order", headline: `Order ${ref(d.orderId)}`, detail: d.reason || "" };
    case "notification.created":
      return { kind: "notification", headline: d.title || "Notification", detail: d.body || "" };
    case "user.registered":
      return { kind: "account", headline: "Welcome to Mercato", detail: `Account created for ${d.name} (${d.email})` };
    case "user.profile_updated":
      return { kind: "account", headline: "Profile updated", detail: `Name: ${d.name}` };
    case "user.roles_changed":
      return { kind: "account", headline: "Roles changed", detail: (d.roles || []).join(", ") };
    case "user.password_changed":
      return { kind: "account", headline: "Password changed", detail: "Other sessions were signed out" };
    case "file.uploaded":
      return { kind: "file", headline: "File uploaded", detail: `${d.name} · ${count(Math.ceil((d.size || 0) / 1024))} KB` };
    default: {
      const strings = Object.values(d).filter((v) => typeof v === "string" && v.length < 60);
      return { kind: "other", headline: humanize(event.type), detail: strings.slice(0, 2).join(" · ") };
    }
  }
}

export class Feed {
  constructor(list, empty) {
    this.list = list;
    this.empty = empty;
    this.seen = new Set();  // event ids: a replay after a reconnect never shows one twice
    this.orders = new Map(); // order id -> its line
  }

  clear() {
    this.seen.clear();
    this.orders.clear();
    this.list.replaceChildren();
    this.empty.hidden = false;
  }

  /** Show `event` (pushed on `channel` at position `id`) unless it was shown already. */
  add(channel, id, event, unread) {
    if (this.seen.has(event.id)) return null;
    this.seen.add(event.id);
    if (this.seen.size > SEEN) this.seen.delete(this.seen.values().next().value);
    const orderId = event.type.startsWith("order.") ? event.data?.orderId : null;
    // One line per order, brought up to date (and to the top) by each step it takes.
    if (orderId && this.orders.has(orderId)) return this.advance(this.orders.get(orderId), event);
    const { kind, headline, detail } = describe(event);
    const item = document.createElement("li");
    Object.assign(item.dataset, {
      position: id ?? "", channel, type: event.type, at: event.occurredAt, kind, eventId: event.id,
    });
    if (event.type === "notification.created") item.dataset.notificationId = event.data.notificationId;
    if (unread) item.classList.add("unread");
    const icon = document.createElement("span");
    icon.className = `icon icon-${kind}`;
    const body = document.createElement("div");
    body.className = "body";
    const line = document.createElement("div");
    line.className = "line";
    const title = document.createElement("strong");
    title.textContent = headline;
    line.append(title);
    const text = document.createElement("span");
    text.textContent = detail;
    text.dataset.base = detail;
    body.append(line, text);
    const when = document.createElement("time");
    item.append(icon, body, when);
    if (orderId) {
      item.dataset.orderId = orderId;
      this.orders.set(orderId, item);
      if (event.type === "order.placed") item.dataset.status = "pending";
      else this.advance(item, event, true);
    }
    this.place(item, event.occurredAt);
    this.empty.hidden = true;
    return item;
  }

  /** Another step of an order already shown: its status chip, its time, its place. */
  advance(item, event, first = false) {
    const d = event.data || {};
    if (event.type === "order.placed") {  // the placement came after a step (a replay): fill in
      const placed = describe(event);
      item.querySelector("strong").textContent = placed.headline;
      const text = item.querySelector(".body > span");
      text.dataset.base = placed.detail;
      text.textContent = [placed.detail, text.dataset.reason].filter(Boolean).join(" · ");
      item.dataset.type = event.type;
    } else if (event.type === "order.status_changed") {
      const [label, kind] = STATUS[d.status] || [humanize(d.status || "updated"), "order"];
      item.dataset.status = d.status;
      item.querySelector(".icon").className = `icon icon-${kind}`;
      let chip = item.querySelector(".chip");
      if (!chip) {
        chip = document.createElement("em");
        item.querySelector(".line").append(chip);
      }
      chip.className = `chip chip-${kind}`;
      chip.textContent = label;
      if (d.reason) {
        const text = item.querySelector(".body > span");
        text.dataset.reason = d.reason;
        text.textContent = [text.dataset.base, d.reason].filter(Boolean).join(" · ");
      }
    }
    item.dataset.steps = String(Number(item.dataset.steps || 0) + 1);
    if (!first && Date.parse(event.occurredAt) >= Date.parse(item.dataset.at)) {
      this.place(item, event.occurredAt);
    }
    return item;
  }

  place(item, at) {
    item.dataset.at = at;
    const when = item.querySelector("time");
    when.dateTime = at;
    when.textContent = ago(at);
    item.classList.remove("fresh");
    if (Date.now() - Date.parse(at) < 60000) {
      void item.offsetWidth;  // restart the highlight
      item.classList.add("fresh");
    }
    this.insert(item);
  }

  // Newest first by the time it happened: a replay and live events may interleave.
  insert(item) {
    item.remove();
    const at = Date.parse(item.dataset.at);
    let before = this.list.firstElementChild;
    while (before && Date.parse(before.dataset.at) > at) before = before.nextElementSibling;
    this.list.insertBefore(item, before);
    while (this.list.children.length > LIMIT) {
      const gone = this.list.lastElementChild;
      if (gone.dataset.orderId) this.orders.delete(gone.dataset.orderId);
      gone.remove();
    }
  }

  /** Refresh the "3 minutes ago" labels. */
  tick() {
    for (const when of this.list.querySelectorAll("time")) when.textContent = ago(when.dateTime);
  }
}
