// How numbers, money and times read on the page. Money stays per currency: never summed.
const LOCALE = navigator.language || "en-US";
const moneyFormats = new Map();

function moneyFormat(currency, compact) {
  const key = `${currency}:${compact}`;
  if (!moneyFormats.has(key)) {
    let format;
    try {
      format = new Intl.NumberFormat(LOCALE, compact
        ? { style: "currency", currency, notation: "compact", maximumFractionDigits: 1 }
        : { style: "currency", currency });
    } catch {  // a code Intl does not know still reads as "12.50 XYZ"
      format = { format: (n) => `${n.toFixed(2)} ${currency}` };
    }
    moneyFormats.set(key, format);
  }
  return moneyFormats.get(key);
}

/** "$1,234.50" for {amount: "1234.5", currency: "USD"}. */
export function money(entry, compact = false) {
  return moneyFormat(entry.currency, compact).format(Number(entry.amount));
}

/** The amount of `currency` in a per-currency list, 0 when absent. */
export function amountIn(list, currency) {
  const found = (list || []).find((m) => m.currency === currency);
  return found ? Number(found.amount) : 0;
}

/** The list, largest amount first (the headline currency leads). */
export function byAmount(list) {
  return [...(list || [])].sort((a, b) => Number(b.amount) - Number(a.amount));
}

const integers = new Intl.NumberFormat(LOCALE);
export const count = (n) => integers.format(n ?? 0);

const percents = new Intl.NumberFormat(LOCALE, { style: "percent", maximumFractionDigits: 1 });
export const percent = (ratio) => percents.format(ratio);

const clock = new Intl.DateTimeFormat(LOCALE, { hour: "2-digit", minute: "2-digit" });
export const time = (at) => clock.format(new Date(at));

const day = new Intl.DateTimeFormat(LOCALE, {
  weekday: "long", day: "numeric", month: "long", timeZone: "UTC",
});
export const utcDay = (at) => day.format(new Date(at));

const relative = new Intl.RelativeTimeFormat(LOCALE, { numeric: "auto" });
/** "just now", "3 minutes ago", "yesterday". */
export function ago(at, now = Date.now()) {
  const seconds = Math.round((new Date(at).getTime() - now) / 1000);
  if (seconds > -10) return "just now";
  for (const [unit, size] of [["day", 86400], ["hour", 3600], ["minute", 60]]) {
    if (Math.abs(seconds) >= size) return relative.format(Math.round(seconds / size), unit);
  }
  return relative.format(seconds, "second");
}

/** A short, stable reference for an opaque id: "#3f9a1c". */
export const ref = (id) => `#${String(id).slice(-6)}`;
