// The last hour, one bar per minute (orders) under a line (revenue in one currency), drawn
// as inline SVG by the page itself: no chart library, nothing fetched.
import { amountIn, count, money, time } from "./dashboard-format.js";

// The SVG namespace as the HTML parser assigns it (no static file spells out a host).
const SVG = (() => {
  const probe = document.createElement("template");
  probe.innerHTML = "<svg></svg>";
  return probe.content.firstChild.namespaceURI;
})();
const HEIGHT = 280;
const PAD = { top: 18, right: 64, bottom: 30, left: 40 };
const GRID = 4;

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (parent) parent.appendChild(node);
  return node;
}

/** A round axis maximum at or above `value` with GRID even steps (1, 2, 2.5, 5 × 10^n). */
function niceMax(value, integer) {
  if (value <= 0) return integer ? GRID : 1;
  const step = value / GRID;
  const power = 10 ** Math.floor(Math.log10(step));
  const nice = [1, 2, 2.5, 5, 10].find((m) => m * power >= step) * power;
  return Math.max(integer ? Math.ceil(nice) : nice, integer ? 1 : 0) * GRID;
}

/**
 * Draw `buckets` ([{start, orders, revenue, productViews}], oldest first) into `host`.
 * `currency` picks the revenue line; null draws bars only.
 */
export function drawChart(host, tooltip, buckets, currency) {
  const width = Math.max(host.clientWidth, 320);
  host.querySelector("svg")?.remove();
  const svg = el("svg", {
    viewBox: `0 0 ${width} ${HEIGHT}`, width, height: HEIGHT, role: "img", class: "chart-svg",
  });
  const orders = buckets.map((b) => b.orders || 0);
  const revenue = buckets.map((b) => (currency ? amountIn(b.revenue, currency) : 0));
  const totalOrders = orders.reduce((a, b) => a + b, 0);
  const totalRevenue = revenue.reduce((a, b) => a + b, 0);
  svg.dataset.buckets = buckets.length;
  svg.dataset.orders = totalOrders;
  svg.dataset.revenue = totalRevenue.toFixed(2);
  svg.dataset.currency = currency || "";
  el("title", {}, svg).textContent =
    `Last hour: ${count(totalOrders)} orders` + (currency ? `, ${money({ amount: totalRevenue, currency })}` : "");

  const plotW = width - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const maxOrders = niceMax(Math.max(...orders, 0), true);
  const maxRevenue = niceMax(Math.max(...revenue, 0), false);
  const slot = plotW / Math.max(buckets.length, 1);
  const x = (i) => PAD.left + i * slot;
  const yOrders = (v) => PAD.top + plotH - (v / maxOrders) * plotH;
  const yRevenue = (v) => PAD.top + plotH - (v / maxRevenue) * plotH;

  const defs = el("defs", {}, svg);
  const gradient = el("linearGradient", { id: "revenue-fill", x1: 0, y1: 0, x2: 0, y2: 1 }, defs);
  el("stop", { offset: "0%", "stop-color": "#0d9488", "stop-opacity": 0.22 }, gradient);
  el("stop", { offset: "100%", "stop-color": "#0d9488", "stop-opacity": 0 }, gradient);

  const grid = el("g", { class: "grid" }, svg);
  for (let i = 0; i <= GRID; i += 1) {
    const y = PAD.top + plotH - (i / GRID) * plotH;
    el("line", { x1: PAD.left, x2: width - PAD.right, y1: y, y2: y }, grid);
    el("text", { x: PAD.left - 8, y: y + 4, class: "axis axis-left" }, grid).textContent =
      count((maxOrders / GRID) * i);
    if (currency) {
      el("text", { x: width - PAD.right + 8, y: y + 4, class: "axis axis-right" }, grid).textContent =
        money({ amount: (maxRevenue / GRID) * i, currency }, true);
    }
  }

  const bars = el("g", { class: "bars" }, svg);
  const gap = Math.min(3, slot * 0.25);
  orders.forEach((value, i) => {
    if (!value) return;
    const y = yOrders(value);
    el("rect", {
      x: x(i) + gap / 2, y, width: Math.max(slot - gap, 1), height: PAD.top + plotH - y,
      rx: Math.min(3, slot / 4), "data-orders": value,
    }, bars);
  });

  if (currency && totalRevenue > 0) {
    const points = revenue.map((v, i) => [x(i) + slot / 2, yRevenue(v)]);
    const stroke = monotone(points);
    const base = PAD.top + plotH;
    el("path", {
      d: `${stroke}L${points.at(-1)[0].toFixed(1)},${base}L${points[0][0].toFixed(1)},${base}Z`,
      class: "area", fill: "url(#revenue-fill)",  // an attribute: the stylesheet names no url()
    }, svg);
    el("path", { d: stroke, class: "line" }, svg);
  }

  const labels = el("g", { class: "x-labels" }, svg);
  const every = plotW < 560 ? 20 : 10;  // minutes between time labels: room for each
  const last = buckets.length - 1;
  buckets.forEach((bucket, i) => {
    const minute = new Date(bucket.start).getUTCMinutes();
    if (minute % every !== 0 && i !== last) return;
    if (i !== last && (last - i) * slot < 56) return;  // not over "now"
    el("text", { x: x(i) + slot / 2, y: HEIGHT - 8, class: "axis axis-x" }, labels).textContent =
      i === last ? "now" : time(bucket.start);
  });

  if (totalOrders === 0) {
    el("text", { x: PAD.left + plotW / 2, y: PAD.top + plotH * 0.375 + 4, class: "chart-empty" }, svg)
      .textContent = "No orders in the last hour yet";
  }

  // Hovering a minute shows its numbers; a redraw (a new snapshot) keeps the minute shown.
  const cursor = el("rect", { class: "cursor", x: 0, y: PAD.top, width: slot, height: plotH, visibility: "hidden" }, svg);
  const hit = el("rect", { x: PAD.left, y: PAD.top, width: plotW, height: plotH, class: "hit" }, svg);
  const show = (i) => {
    const bucket = buckets[i];
    if (!bucket) return;
    host.dataset.hover = String(i);
    cursor.setAttribute("x", x(i));
    cursor.setAttribute("visibility", "visible");
    const head = document.createElement("strong");
    head.textContent = time(bucket.start);
    tooltip.replaceChildren(head, line(`${count(bucket.orders || 0)} orders`));
    for (const entry of bucket.revenue || []) tooltip.append(line(money(entry)));
    if (bucket.productViews) tooltip.append(line(`${count(bucket.productViews)} product views`));
    tooltip.hidden = false;
    tooltip.style.left = `${Math.min(x(i) + slot + 8, width - 170)}px`;
    tooltip.style.top = `${PAD.top}px`;
  };
  hit.addEventListener("mousemove", (event) => {
    const box = svg.getBoundingClientRect();
    show(Math.min(buckets.length - 1, Math.max(0, Math.floor((event.clientX - box.left - PAD.left) / slot))));
  });
  hit.addEventListener("mouseleave", () => {
    delete host.dataset.hover;
    cursor.setAttribute("visibility", "hidden");
    tooltip.hidden = true;
  });
  if (host.dataset.hover !== undefined) show(Number(host.dataset.hover));
  host.prepend(svg);
}

/** An SVG path through `points` that never overshoots them (monotone cubic, Fritsch-Carlson). */
function monotone(points) {
  const n = points.length;
  if (n < 3) return points.map(([px, py], i) => `${i ? "L" : "M"}${px},${py}`).join("");
  const dx = [], slope = [];
  for (let i = 0; i < n - 1; i += 1) {
    dx.push(points[i + 1][0] - points[i][0]);
    slope.push((points[i + 1][1] - points[i][1]) / dx[i]);
  }
  const tangent = [slope[0]];
  for (let i = 1; i < n - 1; i += 1) {
    tangent.push(slope[i - 1] * slope[i] <= 0 ? 0 : (slope[i - 1] + slope[i]) / 2);
  }
  tangent.push(slope[n - 2]);
  for (let i = 0; i < n - 1; i += 1) {
    if (slope[i] === 0) { tangent[i] = 0; tangent[i + 1] = 0; continue; }
    const a = tangent[i] / slope[i], b = tangent[i + 1] / slope[i], h = Math.hypot(a, b);
    if (h > 3) { tangent[i] = (3 * a * slope[i]) / h; tangent[i + 1] = (3 * b * slope[i]) / h; }
  }
  const f = (v) => v.toFixed(1);
  let d = `M${f(points[0][0])},${f(points[0][1])}`;
  for (let i = 0; i < n - 1; i += 1) {
    const [x0, y0] = points[i], [x1, y1] = points[i + 1], third = dx[i] / 3;
    d += `C${f(x0 + third)},${f(y0 + tangent[i] * third)} ${f(x1 - third)},${f(y1 - tangent[i + 1] * third)} ${f(x1)},${f(y1)}`;
  }
  return d;
}

function line(text) {
  const node = document.createElement("span");
  node.textContent = text;
  return node;
}

/** Sixty empty minutes ending now, for a page that has no snapshot yet. */
export function emptyHour(now = Date.now()) {
  const start = Math.floor(now / 60000) * 60000 - 59 * 60000;
  return Array.from({ length: 60 }, (_, i) => ({
    start: new Date(start + i * 60000).toISOString(), orders: 0, revenue: [], productViews: 0,
  }));
}
