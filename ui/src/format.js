// Formatting and small pure helpers shared by the components. No Lit here, so Node's test runner
// can exercise them directly.

// Amounts arrive as decimal strings ("12.5"). Intl.NumberFormat formats a numeric string
// exactly (no binary float in between), in the browser's locale unless one is given.
export function formatCredits(value, locale) {
  if (value === null || value === undefined || value === "") return "—";
  return new Intl.NumberFormat(locale, { maximumFractionDigits: 6 }).format(String(value));
}

export function formatMoney(value, currency, locale) {
  if (value === null || value === undefined) return "—";
  return new Intl.NumberFormat(locale, {
    style: "currency",
    currency: String(currency || "usd").toUpperCase(),
  }).format(String(value));
}

export function formatPercent(value, locale) {
  if (value === null || value === undefined) return "—";
  return new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 1 }).format(
    Number(value) / 100,
  );
}

// Dates and times are ISO 8601 UTC; a billing period starts at UTC midnight, so dates are shown
// in UTC to name the same day the API means.
export function formatDate(iso, locale) {
  if (!iso) return "—";
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeZone: "UTC" }).format(
    new Date(iso),
  );
}

export function formatDateTime(iso, locale) {
  if (!iso) return "—";
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" }).format(
    new Date(iso),
  );
}

// The token's claims, for display only: the server checks the signature and enforces access.
export function tokenClaims(token) {
  if (!token || typeof token !== "string") return {};
  const part = token.split(".")[1];
  if (!part) return {};
  try {
    const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return {};
  }
}

export function tokenRole(token) {
  const claims = tokenClaims(token);
  return claims.role || claims["custom:role"] || null;
}

// Who manages the wallet (top-ups, limits, budgets), as docs/access.md lists it.
export function isManager(role) {
  return role === "owner" || role === "admin";
}

// A member sees only their own data; every other person's role may read the wallet's reports.
export function readsReports(role) {
  return role !== "member";
}

// A ledger row whose credits came back: a released or expired hold, a refunded entry.
export function isReturned(item) {
  return Boolean(item.refunded) || item.status === "released" || item.status === "expired";
}

// One bar per point of a usage series, with its groups stacked in a stable order of keys.
export function stackBars(points, height) {
  const totals = points.map((p) => Number(p.credits));
  const max = Math.max(0, ...totals);
  const keys = [];
  for (const p of points) {
    for (const g of p.groups || []) {
      const key = g.key ?? "(none)";
      if (!keys.includes(key)) keys.push(key);
    }
  }
  const bars = points.map((p, i) => {
    let y = height;
    const segments = [];
    for (const g of p.groups || []) {
      const h = max > 0 ? (Number(g.credits) / max) * height : 0;
      y -= h;
      segments.push({ key: g.key ?? "(none)", credits: g.credits, y, h });
    }
    if (!segments.length && totals[i] > 0) {
      const h = (totals[i] / max) * height;
      segments.push({ key: "(none)", credits: p.credits, y: height - h, h });
    }
    return { label: p.date, credits: p.credits, segments };
  });
  return { bars, keys, max };
}
