// Today's tiles and the top products table, from one snapshot (or none: dashes).
import { byAmount, count, money, percent } from "./dashboard-format.js";

const $ = (id) => document.getElementById(id);

/** A per-currency list as stable text for tests and tools: "EUR 10.00|USD 30.00". */
const machine = (list) => [...(list || [])]
  .sort((a, b) => a.currency.localeCompare(b.currency))
  .map((m) => `${m.currency} ${Number(m.amount).toFixed(2)}`).join("|");

function tile(id, value, sub, raw) {
  const node = $(id);
  const shown = node.querySelector(".value");
  if (shown.textContent !== value && shown.textContent !== "—" && value !== "—") {
    node.classList.remove("changed");
    void node.offsetWidth;  // restart the highlight animation
    node.classList.add("changed");
  }
  shown.textContent = value;
  shown.dataset.value = raw ?? "";
  if (sub !== undefined) node.querySelector(".sub").textContent = sub;
}

/** The headline amount and the other currencies beside it. */
function perCurrency(list, none) {
  const sorted = byAmount(list).filter((m) => Number(m.amount) !== 0 || list.length === 1);
  if (!sorted.length) return ["—", none];
  const [first, ...rest] = sorted;
  return [money(first), rest.length ? `+ ${rest.map((m) => money(m)).join(" · ")}` : null];
}

export function renderTiles(snapshot) {
  if (!snapshot) {
    for (const id of ["tile-orders", "tile-revenue", "tile-net", "tile-aov", "tile-conversion", "tile-visitors"]) {
      tile(id, "—", id === "tile-visitors" ? "seen in the last 5 minutes" : "", "");
    }
    return;
  }
  const today = snapshot.today || {};
  tile("tile-orders", count(today.orders), `${count(today.units)} units sold`, String(today.orders ?? 0));
  const [revenue, revenueSub] = perCurrency(today.revenue, "No sales yet today");
  tile("tile-revenue", revenue, revenueSub ?? "gross, before refunds", machine(today.revenue));
  const [net, netSub] = perCurrency(today.netRevenue, "No sales yet today");
  const refunds = byAmount(today.refunds).filter((m) => Number(m.amount) > 0);
  const refunded = refunds.length ? `after ${refunds.map((m) => money(m)).join(" · ")} refunded` : "after refunds";
  tile("tile-net", net, netSub && net !== "—" ? `${netSub}\n${refunded}` : refunded, machine(today.netRevenue));
  const [aov, aovSub] = perCurrency(today.averageOrderValue, "per order");
  tile("tile-aov", aov, aovSub ?? "per order", machine(today.averageOrderValue));
  // Orders per distinct viewer of the products: no viewers yet is no rate, not 0 %.
  const rate = today.productViews > 0 && typeof today.conversionRate === "number" ? today.conversionRate : null;
  tile("tile-conversion", rate === null ? "—" : percent(rate),
    rate === null ? "no product views yet" : `of product viewers · ${count(today.productViews)} views`,
    rate === null ? "" : rate.toFixed(4));
  // Sign-ups and active users are marketplace-wide: only the marketplace's snapshot has them.
  const people = snapshot.scope?.sellerId == null && (today.registrations || today.activeUsers)
    ? `\n${count(today.activeUsers)} active today · ${count(today.registrations)} sign-ups` : "";
  tile("tile-visitors", count(snapshot.visitorsNow), `seen in the last 5 minutes${people}`,
    String(snapshot.visitorsNow ?? 0));
}

export function renderTop(snapshot) {
  const body = $("top");
  const rows = snapshot?.topProducts || [];
  const most = Math.max(1, ...rows.map((p) => p.orders || 0));  // ranked by orders, as served
  body.replaceChildren(...rows.map((p, i) => {
    const row = document.createElement("tr");
    row.dataset.productId = p.productId;
    const cells = [String(i + 1), p.name || p.productId, count(p.orders), count(p.units),
      byAmount(p.revenue).map((m) => money(m)).join(" · ") || "—"];
    cells.forEach((text, c) => {
      const cell = document.createElement("td");
      if (c === 1) {
        const name = document.createElement("span");
        name.textContent = text;
        const bar = document.createElement("i");
        bar.className = "share";
        bar.style.width = `${Math.round(((p.orders || 0) / most) * 100)}%`;
        cell.append(name, bar);
      } else {
        cell.textContent = text;
      }
      if (c >= 2) cell.className = "num";
      if (c === 0) cell.className = "rank";
      row.appendChild(cell);
    });
    return row;
  }));
  $("top-empty").hidden = rows.length > 0;
}
